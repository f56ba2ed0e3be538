"""Learning diagnostics (model.diagnostics): hand-made outputs with known IoUs, rates and NaNs."""

import math
import subprocess
import sys

import pytest
import torch

from model.diagnostics import (
    KEYS,
    aggregate,
    batch_diagnostics,
    format_diagnostics,
    heldout_diagnostics,
    mask_iou,
)
from model.losses import PairTarget

BIG = 10.0


def _box_mask(box, size):
    m = torch.zeros(size, size)
    x0, y0, x1, y1 = (round(v * size) for v in box)
    m[y0:y1, x0:x1] = 1
    return m


def _target(boxes, size=32):
    if not boxes:
        return PairTarget(torch.zeros(0, 4), torch.zeros(0, size, size))
    return PairTarget(torch.tensor(boxes, dtype=torch.float32),
                      torch.stack([_box_mask(b, size) for b in boxes]))


def _logits(mask):
    return torch.where(mask > 0.5, BIG, -BIG)


def _outputs(masks, logits=None, boxes=None, presence=None, semantic=None):
    """Outputs of B rows with Q queries from (B, Q, h, w) binary masks."""
    B, Q = masks.shape[:2]
    return {
        "pred_logits": torch.full((B, Q), -BIG) if logits is None else logits,
        "pred_boxes": torch.tensor([0.0, 0.0, 0.1, 0.1]).repeat(B, Q, 1) if boxes is None else boxes,
        "pred_masks": _logits(masks),
        "presence_logits": torch.full((B, 1), BIG) if presence is None else presence,
        "semantic_seg": semantic,
    }


A, B_ = [0.0, 0.0, 0.25, 0.5], [0.5, 0.5, 0.75, 1.0]  # disjoint, equal areas


def test_mask_iou_hand_cases():
    a = _box_mask([0, 0, 0.5, 1], 8)[None]
    b = _box_mask([0.25, 0, 0.75, 1], 8)[None]
    assert mask_iou(a > 0, b > 0).item() == pytest.approx(1 / 3)
    empty = torch.zeros(1, 8, 8, dtype=torch.bool)
    assert mask_iou(empty, empty).item() == 1.0  # two empty masks are identical
    assert mask_iou(empty, a > 0).item() == 0.0


@pytest.mark.parametrize("pred_size", [32, 8])  # 8: predictions upsampled to the GT size
def test_perfect_predictions(pred_size):
    target = _target([A, B_], size=32)
    q = 6
    masks = torch.zeros(1, q, pred_size, pred_size)
    boxes = torch.tensor([0.0, 0.0, 0.1, 0.1]).repeat(1, q, 1)
    logits = torch.full((1, q), -BIG)
    for i, qi in enumerate([4, 1]):  # queries 4 and 1 predict GT 0 and 1 exactly
        masks[0, qi] = _box_mask(target.boxes[i].tolist(), pred_size)
        boxes[0, qi] = target.boxes[i]
        logits[0, qi] = BIG
    semantic = _logits(masks[0].amax(0))[None, None]
    d = batch_diagnostics(_outputs(masks, logits, boxes, semantic=semantic), [target])
    assert set(d) == set(KEYS)
    # bilinear upsampling rounds each box's corners off by a pixel: exact only at the GT size
    tol = 0 if pred_size == 32 else 0.02
    for key in ("matched_iou", "oracle_iou", "semantic_iou"):
        assert d[key] == pytest.approx(1.0, abs=tol), key
    for key in ("matched_box_giou", "oracle_hit50", "pos_scored", "presence_acc_pos"):
        assert d[key] == pytest.approx(1.0), key
    assert math.isnan(d["neg_scored"]) and math.isnan(d["presence_acc_neg"])  # no negatives


def test_union_mask_everywhere_scores_one_over_objects():
    target = _target([A, B_])
    union = target.masks.amax(0)
    masks = union.repeat(1, 6, 1, 1)
    d = batch_diagnostics(_outputs(masks), [target])
    assert d["oracle_iou"] == pytest.approx(0.5)
    assert d["matched_iou"] == pytest.approx(0.5)
    assert d["oracle_hit50"] == pytest.approx(1.0)  # IoU 0.5 counts as a hit
    assert d["query_diversity"] == pytest.approx(1.0)


def test_distinct_top_k_masks_have_zero_diversity():
    q, size = 8, 32
    masks = torch.zeros(1, q, size, size)
    for i in range(q):  # disjoint vertical stripes
        masks[0, i, :, 4 * i:4 * i + 4] = 1
    d = batch_diagnostics(_outputs(masks), [_target([])], top_k=5)
    assert d["query_diversity"] == pytest.approx(0.0)
    # the top 3 by score are stripe 0 twice and one other: 2 of 6 ordered pairs identical
    masks[0, 1] = masks[0, 0]
    logits = torch.tensor([[5.0, 4.0, 3.0, -5, -5, -5, -5, -5]])
    d = batch_diagnostics(_outputs(masks, logits=logits), [_target([])], top_k=3)
    assert d["query_diversity"] == pytest.approx(1 / 3)


def test_score_and_presence_rates():
    targets = [_target([A]), _target([B_]), _target([]), _target([]), _target([])]
    masks = torch.zeros(5, 4, 16, 16)
    logits = torch.full((5, 4), -BIG)
    logits[0, 2] = BIG  # pos 0: query score ~1, presence ~1 -> scored
    logits[1, 0] = BIG  # pos 1: query ~1 but presence low -> score ~0 -> not scored
    logits[2, 3] = BIG  # neg 2: scored (false positive), presence high (wrong)
    presence = torch.tensor([[BIG], [-BIG], [BIG], [-BIG], [-BIG]])
    d = batch_diagnostics(_outputs(masks, logits=logits, presence=presence), targets)
    assert d["pos_scored"] == pytest.approx(1 / 2)
    assert d["neg_scored"] == pytest.approx(1 / 3)
    assert d["presence_acc_pos"] == pytest.approx(1 / 2)
    assert d["presence_acc_neg"] == pytest.approx(2 / 3)
    # a looser threshold does not rescue a pair whose presence is low
    d = batch_diagnostics(_outputs(masks, logits=logits, presence=presence), targets,
                          score_threshold=0.1)
    assert d["pos_scored"] == pytest.approx(1 / 2)


def test_semantic_iou_half_overlap_at_gt_size():
    target = _target([[0.0, 0.0, 0.5, 1.0]], size=32)  # left half
    sem = torch.zeros(16, 16)
    sem[:, 4:12] = 1  # the middle half at a coarser grid: overlaps a quarter, union 3/4
    semantic = _logits(sem)[None, None]
    negative = _target([])
    masks = torch.zeros(2, 3, 16, 16)
    d = batch_diagnostics(_outputs(masks, semantic=semantic.repeat(2, 1, 1, 1)), [target, negative])
    assert d["semantic_iou"] == pytest.approx(1 / 3)  # negatives do not count


def test_missing_pieces_give_nan_not_errors():
    masks = torch.zeros(1, 3, 16, 16)
    out = _outputs(masks)
    out.pop("semantic_seg")
    out["presence_logits"] = None
    d = batch_diagnostics(out, [_target([])])  # one negative, no positives, no semantic head
    for key in ("matched_iou", "matched_box_giou", "oracle_iou", "oracle_hit50", "pos_scored",
                "presence_acc_pos", "presence_acc_neg", "semantic_iou"):
        assert math.isnan(d[key]), key
    assert d["neg_scored"] == 0.0  # score falls back to sigmoid(pred_logit) without presence
    assert d["query_diversity"] == 1.0  # three empty masks are identical
    line = format_diagnostics(d)
    assert "n/a" in line and "\n" not in line
    with pytest.raises(ValueError):
        batch_diagnostics(out, [_target([]), _target([])])


def test_given_matches_are_used():
    target = _target([A, B_])
    masks = torch.zeros(1, 3, 32, 32)
    masks[0, 0] = target.masks[0]
    masks[0, 1] = target.masks[1]
    good = [(torch.tensor([0, 1]), torch.tensor([0, 1]))]
    swapped = [(torch.tensor([0, 1]), torch.tensor([1, 0]))]
    assert batch_diagnostics(_outputs(masks), [target], matches=good)["matched_iou"] == 1.0
    d = batch_diagnostics(_outputs(masks), [target], matches=swapped)
    assert d["matched_iou"] == 0.0 and d["oracle_iou"] == 1.0


def test_aggregate_ignores_nan_and_weights():
    rows = [{"a": 1.0, "b": math.nan}, {"a": 0.0, "b": 0.5}, {"c": 0.25}]
    agg = aggregate(rows)
    assert agg == {"a": 0.5, "b": 0.5, "c": 0.25}
    assert aggregate(rows, weights=[3, 1, 1])["a"] == pytest.approx(0.75)
    assert math.isnan(aggregate([{"a": math.nan}])["a"])
    assert aggregate([]) == {}


def test_format_line():
    d = {"matched_iou": 0.41, "matched_box_giou": 0.3, "oracle_iou": 0.22, "oracle_hit50": 0.12,
         "query_diversity": 0.48, "pos_scored": 0.8, "neg_scored": 0.3, "presence_acc_pos": 0.95,
         "presence_acc_neg": 0.4, "semantic_iou": 0.31}
    line = format_diagnostics(d)
    for part in ("matched IoU 0.41", "oracle IoU 0.22 (hit50 12%)", "diversity 0.48",
                 "scored pos 80% / neg 30%", "presence pos 95% / neg 40%", "semantic IoU 0.31"):
        assert part in line, part


def test_module_imports_no_heavy_dependencies():
    code = ("import sys, model.diagnostics; "
            "print([m for m in ('webdataset', 'pycocotools', 'ray') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_heldout_diagnostics_on_tiny_model():
    from model.data import PairBatch
    from model.pair_model import Sam3PairModel
    from model.presets import build_tiny
    from model.preprocess import tokenize

    loaded = build_tiny(seed=0)
    pair_model = Sam3PairModel(loaded.model).train()
    ids, mask = tokenize(loaded.tokenizer, ["red circle", "blue square"], loaded.max_text_len)
    torch.manual_seed(0)
    batch = PairBatch(torch.randn(1, 3, 224, 224), torch.tensor([0, 0]), ids, mask,
                      [_target([A, B_], size=56), _target([], size=56)])
    d = heldout_diagnostics(pair_model, [batch, batch], top_k=4)
    assert set(d) == set(KEYS)
    for key, value in d.items():
        lo = -1.0 if key == "matched_box_giou" else 0.0
        assert math.isnan(value) or lo <= value <= 1.0, (key, value)
    assert not math.isnan(d["oracle_iou"]) and not math.isnan(d["presence_acc_neg"])
    assert pair_model.training and all(m.training for m in pair_model.modules())
    # modules left in eval on purpose (e.g. frozen parts) stay in eval
    pair_model.model.vision_encoder.eval()
    heldout_diagnostics(pair_model, [batch])
    assert pair_model.training and not pair_model.model.vision_encoder.training
