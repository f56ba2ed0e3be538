"""Metric inputs: bad GT / prediction files give errors naming the field, pair id and value; the RLE
checker; `sam3-engine eval` end to end."""

from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from engine.cli import app
from model.metrics import MetricsInputError, evaluate, load_gt, load_predictions
from model.metrics.rle import compressed_counts_problems
from tests.test_metrics import ann, check_case, gt_doc, image, pred, seg


def _error(gt, preds, iou_type="segm") -> str:
    with pytest.raises(MetricsInputError) as info:
        evaluate([gt] if isinstance(gt, dict) else gt, preds, iou_type)
    return str(info.value)


@pytest.fixture
def gt():
    return gt_doc([image("a", 10), image(3, 10)], [ann("a", 0, 5, 10)])


def test_missing_keys_are_named(gt):
    msg = _error(gt, [{"image_id": "a", "segmentation": seg(0, 5, 10)}])
    assert "predictions[0] (pair 'a')" in msg and "score None" in msg
    msg = _error(gt, [{"segmentation": seg(0, 5, 10), "score": 0.9}])
    assert "predictions[0]" in msg and "image_id" in msg
    msg = _error(gt, [{"image_id": "a", "score": 0.9}])
    assert "no 'segmentation'" in msg and "pair 'a'" in msg
    msg = _error(gt, [{"image_id": "a", "score": 0.9, "segmentation": seg(0, 5, 10)}], "bbox")
    assert "no 'bbox'" in msg


def test_pair_not_in_gt(gt):
    msg = _error(gt, [pred("zz", 0, 5, 10, 0.9)])
    assert "image_id 'zz' is not a pair in the GT" in msg
    msg = _error(gt, [pred("3", 0, 5, 10, 0.9)])  # the GT has the int 3
    assert "'3'" in msg and "(the GT has 3" in msg


def test_bad_rle_is_reported_with_pair_and_value(gt):
    bad = [
        ({"size": [1, 10], "counts": "0!5"}, "outside the RLE alphabet"),
        ({"size": [1, 10], "counts": seg(0, 5, 10)["counts"][:-1] + "o"}, "truncated"),
        ({"size": [1, 10], "counts": seg(0, 5, 12)["counts"]}, "not height×width = 10"),
        ({"size": [1, 12], "counts": seg(0, 5, 12)["counts"]}, "does not match the image"),
        ({"size": [1, 10], "counts": 17}, "neither a string nor a list"),
        ({"size": [10], "counts": "05"}, "is not [height, width]"),
        ({"counts": "05"}, "has no 'size'"),
        ({"size": [1, 10], "counts": [0, 5, 4]}, "sums to 9"),
        ("not a mask", "neither an RLE dict"),
    ]
    for segmentation, reason in bad:
        msg = _error(gt, [{"image_id": "a", "score": 0.9, "segmentation": segmentation}])
        assert reason in msg, (segmentation, msg)
        assert "predictions[0] (pair 'a')" in msg


def test_bad_boxes(gt):
    for box, reason in (([0, 0, 1], "4 finite numbers"), ([0, 0, -0.1, 0.2], "negative"),
                        ([10, 20, 30, 40], "not normalised"), ([0, 0, float("nan"), 1], "finite")):
        boxes_gt = gt | {"annotations": [{"image_id": "a", "bbox": [0, 0, 0.5, 1], "iscrowd": 0}]}
        msg = _error(boxes_gt, [{"image_id": "a", "score": 0.9, "bbox": box}], "bbox")
        assert reason in msg and "pair 'a'" in msg


def test_many_problems_are_listed_together(gt):
    preds = [pred("zz", 0, 5, 10, 0.9)] * 14
    msg = _error(gt, preds)
    assert msg.startswith("14 problem(s) in predictions") and "and 4 more" in msg


def test_bad_gt_documents():
    ok = [image("a", 10)]
    cases = [
        (gt_doc([{"id": "a", "height": 1, "width": 10}], []), "is_instance_exhaustive None"),
        (gt_doc(ok + ok, []), "appears twice"),
        (gt_doc(ok, [ann("b", 0, 5, 10)]), "image_id 'b' is not the id of any pair"),
        (gt_doc([image("a", 10) | {"height": 0}], []), "height 0"),
        (gt_doc(ok, [ann("a", 0, 5, 10) | {"iscrowd": 2}]), "iscrowd 2"),
        (gt_doc(ok, [ann("a", 0, 5, 10) | {"segmentation": {"size": [1, 10], "counts": "zz"}}]),
         "annotations[0] (pair 'a'): segmentation.counts 'zz'"),
        ({"annotations": []}, "'images' must be a list"),
    ]
    for doc, reason in cases:
        with pytest.raises(MetricsInputError, match="GT") as info:
            load_gt(doc)
        assert reason in str(info.value), (reason, str(info.value))


def test_multi_gt_documents_must_cover_the_same_pairs():
    a = gt_doc([image("a", 10), image("b", 10)], [])
    b = gt_doc([image("a", 10)], [])
    with pytest.raises(MetricsInputError, match=r"lacks 1 pair\(s\).*'b'"):
        evaluate([a, b], [])


def test_load_helpers_round_trip(tmp_path, gt):
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "p.json").write_text(json.dumps([pred("a", 0, 5, 10, 0.9)]))
    assert load_gt(tmp_path / "gt.json") == gt
    assert load_predictions(tmp_path / "p.json", gt=tmp_path / "gt.json")[0]["image_id"] == "a"
    assert load_predictions([pred("zz", 0, 5, 10, 0.9)])  # no GT given: pair ids are not checked
    with pytest.raises(MetricsInputError, match="not a pair in the GT"):
        load_predictions([pred("zz", 0, 5, 10, 0.9)], gt=gt)
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(MetricsInputError, match="not valid JSON"):
        load_predictions(tmp_path / "broken.json")
    with pytest.raises(MetricsInputError, match="does not exist"):
        load_gt(tmp_path / "missing.json")
    with pytest.raises(MetricsInputError, match="must be a JSON list"):
        load_predictions(tmp_path / "gt.json")
    with pytest.raises(MetricsInputError, match="iou_type 'keypoints'"):
        evaluate([gt], [], "keypoints")


def test_polygon_and_uncompressed_gt_masks_equal_compressed_ones():
    L = 10
    poly = [[0.0, 0.0, 5.0, 0.0, 5.0, 1.0, 0.0, 1.0]]  # pixels 0..4 of the single row
    uncompressed = {"size": [1, L], "counts": [0, 5, 5]}
    for segmentation in (poly, uncompressed):
        gt = gt_doc([image("a", L), image("b", L)],
                    [ann("a", 0, 5, L) | {"segmentation": segmentation}])
        assert evaluate([gt], [pred("a", 0, 5, L, 0.9)])["cgF1"] == 100.0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_rle_checker_accepts_pycocotools_encodings_only_for_their_size(h, w, seed):
    rng = np.random.default_rng(seed)
    masks = [rng.random((h, w)) < p for p in (0.0, 0.3, 0.7, 1.0)]
    counts = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()
              for m in masks]
    assert compressed_counts_problems(counts, [h * w] * 4) == [None] * 4
    assert all(compressed_counts_problems(counts, [h * w + 1] * 4))
    truncated = [c[:-1] for c in counts if len(c) > 1]
    problems = compressed_counts_problems(truncated, [h * w] * len(truncated))
    for c, problem in zip(truncated, problems):
        assert problem is not None, c


def test_rle_checker_handles_long_runs_and_a_mask_starting_with_ones():
    m = np.zeros((300, 300), dtype=np.uint8)
    m[:, :2] = 1  # starts with a run of ones: the first run length is 0
    m[150:, 200:] = 1
    c = mask_utils.encode(np.asfortranarray(m))["counts"].decode()
    assert compressed_counts_problems([c, "", "ab\u00e9"], [90000, 1, 1]) == [
        None, "is empty", "contains a non-ASCII character"]


# ----------------------------------------------------------------------------------------- CLI


def _write(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


def test_cli_eval_end_to_end(tmp_path):
    gt, preds = check_case()
    g, p = _write(tmp_path, "gt.json", gt), _write(tmp_path, "pred.json", preds)
    result = CliRunner().invoke(app, ["eval", "--gt", g, "--pred", p])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["cgF1"], out["pmF1"], out["IL_MCC"]) == (50.0, 1.0, 0.5)
    result = CliRunner().invoke(app, ["eval", "--gt", g, "--gt", g, "--pred", p,
                                      "--iou-type", "bbox", "--official-epsilons",
                                      "--out", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["num_gt_docs"] == 2 and out["iou_type"] == "bbox" and 49.99 < out["cgF1"] < 50
    assert json.loads((tmp_path / "m.json").read_text()) == out


def test_cli_eval_bad_input_exits_non_zero_without_traceback(tmp_path):
    gt, _ = check_case()
    g = _write(tmp_path, "gt.json", gt)
    bad = _write(tmp_path, "bad.json",
                 [{"image_id": "nope", "score": 0.9, "segmentation": seg(0, 1, 20)}])
    for args, needle in (
        (["--gt", g, "--pred", bad], "image_id 'nope' is not a pair in the GT"),
        (["--gt", str(tmp_path / "none.json"), "--pred", bad], "does not exist"),
        (["--gt", g, "--pred", bad, "--iou-type", "mask"], "--iou-type 'mask'"),
    ):
        result = CliRunner().invoke(app, ["eval", *args])
        assert result.exit_code == 2, result.output
        assert needle in result.output and "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
