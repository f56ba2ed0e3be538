"""SAM 3-style losses: hand-checkable matching and loss cases."""

import math

import torch

from model.losses import (
    LossConfig,
    PairTarget,
    elementwise_giou,
    hungarian_match,
    pairwise_giou,
    sam3_loss,
    sigmoid_focal_loss,
)

BIG = 20.0


def _box_mask(box, size=32):
    m = torch.zeros(size, size)
    x0, y0, x1, y1 = (round(v * size) for v in box)
    m[y0:y1, x0:x1] = 1
    return m


def _perfect(gt_boxes, q=6, order=None, size=32):
    """Outputs whose queries `order[i]` predict GT i perfectly; the other queries are off."""
    n = len(gt_boxes)
    order = order or list(range(n))
    logits = torch.full((1, q), -BIG)
    boxes = torch.tensor([[0.0, 0.0, 0.05, 0.05]]).repeat(1, q, 1)
    masks = torch.full((1, q, size, size), -BIG)
    for i, qi in enumerate(order):
        logits[0, qi] = BIG
        boxes[0, qi] = torch.tensor(gt_boxes[i])
        masks[0, qi] = torch.where(_box_mask(gt_boxes[i], size) > 0, BIG, -BIG)
    outputs = {
        "pred_logits": logits, "pred_boxes": boxes, "pred_masks": masks,
        "presence_logits": torch.tensor([[BIG]]),
    }
    target = PairTarget(
        boxes=torch.tensor(gt_boxes, dtype=torch.float32),
        masks=torch.stack([_box_mask(b, 64) for b in gt_boxes]),  # GT at a finer size than the preds
    )
    return outputs, target


GT = [[0.1, 0.1, 0.4, 0.5], [0.5, 0.25, 0.9, 0.75], [0.25, 0.625, 0.5, 0.875]]


def test_giou_hand_values():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    assert torch.allclose(pairwise_giou(a, a), torch.ones(1, 1))
    # two unit squares side by side with a gap of 1: IoU 0, hull 3, union 2 -> giou = -1/3
    b = torch.tensor([[2.0, 0.0, 3.0, 1.0]])
    assert math.isclose(pairwise_giou(a, b).item(), -1 / 3, rel_tol=1e-5)
    # half overlap: inter 0.5, union 1.5, hull 1.5 -> 1/3
    c = torch.tensor([[0.5, 0.0, 1.5, 1.0]])
    assert math.isclose(elementwise_giou(a, c).item(), 1 / 3, rel_tol=1e-5)


def test_focal_hand_value():
    # logit 0 -> p = 0.5; target 1: ce = ln 2, (1-p_t)^2 = 0.25, alpha 0.25
    val = sigmoid_focal_loss(torch.tensor([0.0]), torch.tensor([1.0]), 0.25, 2.0).item()
    assert math.isclose(val, 0.25 * 0.25 * math.log(2), rel_tol=1e-6)


def test_perfect_prediction_matches_and_costs_zero():
    outputs, target = _perfect(GT, order=[4, 0, 2])
    (qi, ti), = hungarian_match(outputs, [target], LossConfig())
    assert dict(zip(ti.tolist(), qi.tolist())) == {0: 4, 1: 0, 2: 2}
    losses = sam3_loss(outputs, [target])
    for name in ("loss_box_l1", "loss_giou", "loss_mask_dice", "loss_presence"):
        assert losses[name].item() < 1e-3, (name, losses[name].item())
    assert losses["loss_mask_bce"].item() < 0.05  # only resampling at mask borders
    assert losses["loss_cls"].item() < 1e-6
    assert losses["num_matched"].item() == 3


def test_permutation_invariance():
    cfg = LossConfig()
    torch.manual_seed(0)
    q = 8
    outputs = {
        "pred_logits": torch.randn(1, q),
        "pred_boxes": torch.sort(torch.rand(1, q, 2, 2), dim=-2).values.transpose(-1, -2).reshape(1, q, 4),
        "pred_masks": torch.randn(1, q, 16, 16),
        "presence_logits": torch.randn(1, 1),
    }
    _, target = _perfect(GT)
    base = sam3_loss(outputs, [target], cfg)["loss"].item()
    # permute the ground-truth instances
    perm = torch.tensor([2, 0, 1])
    t2 = PairTarget(boxes=target.boxes[perm], masks=target.masks[perm])
    assert math.isclose(sam3_loss(outputs, [t2], cfg)["loss"].item(), base, rel_tol=1e-5)
    # permute the queries
    qp = torch.randperm(q)
    o2 = {k: (v[:, qp] if k != "presence_logits" else v) for k, v in outputs.items()}
    assert math.isclose(sam3_loss(o2, [target], cfg)["loss"].item(), base, rel_tol=1e-5)


def test_negative_pair_trains_only_presence_and_classification():
    q = 5
    logits = torch.randn(1, q, requires_grad=True)
    boxes = torch.rand(1, q, 4, requires_grad=True)
    masks = torch.randn(1, q, 16, 16, requires_grad=True)
    presence = torch.randn(1, 1, requires_grad=True)
    outputs = {"pred_logits": logits, "pred_boxes": boxes, "pred_masks": masks, "presence_logits": presence}
    neg = PairTarget(boxes=torch.zeros(0, 4), masks=torch.zeros(0, 64, 64))
    losses = sam3_loss(outputs, [neg])
    losses["loss"].backward()
    assert boxes.grad is None or torch.count_nonzero(boxes.grad) == 0
    assert masks.grad is None or torch.count_nonzero(masks.grad) == 0
    assert torch.count_nonzero(logits.grad) == q
    assert presence.grad.abs().item() > 0
    # presence target is 0: a high presence logit costs more than a low one
    hi = sam3_loss({**outputs, "presence_logits": torch.tensor([[5.0]])}, [neg])["loss_presence"]
    lo = sam3_loss({**outputs, "presence_logits": torch.tensor([[-5.0]])}, [neg])["loss_presence"]
    assert hi > lo


def test_mixed_batch_and_weights():
    out_pos, t_pos = _perfect(GT)
    neg = PairTarget(boxes=torch.zeros(0, 4), masks=torch.zeros(0, 64, 64))
    outputs = {k: torch.cat([v, v]) for k, v in out_pos.items()}
    # second row: perfect queries but the pair is negative -> classification and presence penalised
    losses = sam3_loss(outputs, [t_pos, neg])
    assert losses["loss_cls"].item() > 1.0
    assert losses["loss_presence"].item() > 1.0
    assert losses["loss_box_l1"].item() < 1e-3
    zero = LossConfig(weight_cls=0, weight_presence=0)
    assert sam3_loss(outputs, [t_pos, neg], zero)["loss"].item() < 0.5


def test_balanced_mask_bce_hand_value():
    from model.losses import mask_bce

    logits = torch.zeros(1, 4)  # p = 0.5 everywhere: BCE = ln 2 per pixel
    gt = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    assert math.isclose(mask_bce(logits, gt, None).item(), math.log(2), rel_tol=1e-6)
    # confident background, unsure foreground: balanced BCE weighs the one object pixel at 1/2
    logits = torch.tensor([[0.0, -BIG, -BIG, -BIG]])
    assert math.isclose(mask_bce(logits, gt, 0.5).item(), 0.5 * math.log(2), rel_tol=1e-4)
    assert mask_bce(logits, gt, None).item() < 0.2


def test_semantic_loss_on_union_mask():
    outputs, target = _perfect(GT)
    union = torch.stack([_box_mask(b, 32) for b in GT]).amax(0)
    cfg = LossConfig(weight_semantic=1.0, mask_fg_balance=0.5)
    good = {**outputs, "semantic_seg": torch.where(union > 0, BIG, -BIG)[None, None]}
    bad = {**outputs, "semantic_seg": torch.full((1, 1, 32, 32), -BIG)}
    assert sam3_loss(good, [target], cfg)["loss_semantic"].item() < 0.05
    assert sam3_loss(bad, [target], cfg)["loss_semantic"].item() > 1.0
    neg = PairTarget(boxes=torch.zeros(0, 4), masks=torch.zeros(0, 64, 64))
    assert sam3_loss(bad, [neg], cfg)["loss_semantic"].item() == 0.0  # positives only by default
    on_neg = LossConfig(weight_semantic=1.0, semantic_on_negatives=True)
    assert sam3_loss(good, [neg], on_neg)["loss_semantic"].item() > 1.0


def test_one_to_many_matching_gives_each_instance_k_distinct_queries():
    outputs, target = _perfect(GT, q=12)
    (qi, ti), = hungarian_match(outputs, [target], LossConfig(queries_per_instance=3))
    assert len(qi) == 9 and len(set(qi.tolist())) == 9  # distinct queries
    assert sorted(ti.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # the perfect query of each instance is among its matches
    assert {(q, t) for q, t in zip(qi.tolist(), ti.tolist())} >= {(0, 0), (1, 1), (2, 2)}
    # more instances than Q / k: k shrinks so every instance still gets a query
    (qi, ti), = hungarian_match(outputs, [target], LossConfig(queries_per_instance=5))
    assert len(qi) == 12 and sorted(set(ti.tolist())) == [0, 1, 2]
    # the loss normalises by matched queries: a perfect prediction still costs little box loss
    losses = sam3_loss(outputs, [target], LossConfig(queries_per_instance=3))
    assert losses["num_matched"] == 9 and losses["loss_box_l1"] > 0  # the 6 extra queries are off
