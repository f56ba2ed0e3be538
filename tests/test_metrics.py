"""PCS metrics: cgF1 / pmF1 / IL_MCC on cases whose expected numbers are worked out by hand here.

Masks are intervals on 1-pixel-high images (`seg(a, b, L)` covers columns a..b-1 of a 1×L image), so
every IoU is a ratio of lengths one can check in one's head. The IoU thresholds are
0.50, 0.55, ..., 0.95 (10 of them).
"""

from __future__ import annotations

import math

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from model.metrics import IOU_THRESHOLDS, evaluate


def seg(a: int, b: int, length: int) -> dict:
    m = np.zeros((1, length), dtype=np.uint8)
    m[0, a:b] = 1
    r = mask_utils.encode(np.asfortranarray(m))
    return {"size": [1, length], "counts": r["counts"].decode("ascii")}


def box(a: int, b: int, length: int) -> list[float]:
    return [a / length, 0.0, (b - a) / length, 1.0]


def image(pid, length: int, exhaustive: int = 1) -> dict:
    return {"id": pid, "file_name": f"{pid}.png", "text_input": "thing", "height": 1,
            "width": length, "is_instance_exhaustive": exhaustive, "is_pixel_exhaustive": 1}


def ann(pid, a: int, b: int, length: int, crowd: int = 0) -> dict:
    return {"image_id": pid, "segmentation": seg(a, b, length), "bbox": box(a, b, length),
            "area": b - a, "category_id": 1, "iscrowd": crowd}


def pred(pid, a: int, b: int, length: int, score: float) -> dict:
    return {"image_id": pid, "segmentation": seg(a, b, length), "bbox": box(a, b, length),
            "score": score, "category_id": 1}


def gt_doc(images: list[dict], anns: list[dict]) -> dict:
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}


def check_case() -> tuple[dict, list[dict]]:
    """reference/sam3.md §4: one perfect positive (+ a 0.4 extra), one clean negative, one negative
    with a 0.8 false positive."""
    gt = gt_doc([image("pos", 20), image("neg", 20), image("neg_fp", 20)], [ann("pos", 2, 9, 20)])
    preds = [pred("pos", 2, 9, 20, 0.95), pred("pos", 12, 18, 20, 0.4),
             pred("neg_fp", 3, 7, 20, 0.8)]
    return gt, preds


def test_documented_check_case_exact():
    gt, preds = check_case()
    r = evaluate([gt], preds)
    assert r["IL_MCC"] == 0.5
    assert r["pmF1"] == 1.0
    assert r["cgF1"] == 50.0
    assert (r["IL_TP"], r["IL_FP"], r["IL_TN"], r["IL_FN"]) == (1, 1, 1, 0)
    assert r["cgF1@0.5"] == 50.0 and r["cgF1@0.75"] == 50.0
    assert r["IL_precision"] == 0.5 and r["IL_recall"] == 1.0 and r["IL_FPR"] == 0.5
    assert r["positive_macro_F1"] == 1.0
    assert r["num_predictions"] == 3 and r["num_predictions_kept"] == 2


def test_documented_check_case_official_epsilons():
    gt, preds = check_case()
    r = evaluate([gt], preds, official_epsilons=True)
    p = 1 / (1 + 1e-4)  # precision = recall = TP / (TP + 0 + 1e-4)
    f1 = 2 * p * p / (p + p + 1e-4)
    mcc = 1.0 / (math.sqrt(2 * 1 * 2 * 1) + 1e-6)
    assert r["pmF1"] == pytest.approx(f1, rel=1e-15)
    assert r["IL_MCC"] == pytest.approx(mcc, rel=1e-15)
    assert r["cgF1"] == pytest.approx(100 * f1 * mcc, rel=1e-14)
    assert 49.99 < r["cgF1"] < 50.0


def partial_case() -> tuple[dict, list[dict]]:
    L = 40
    images = [image("p1", L), image("p2", L), image("n3", L), image("n4", L), image("p5", L)]
    anns = [ann("p1", 0, 10, L), ann("p1", 20, 30, L), ann("p2", 0, 10, L), ann("p5", 0, 10, L)]
    preds = [
        pred("p1", 0, 8, L, 0.9),     # IoU 8/10 = 0.8 with the first GT
        pred("p1", 20, 27, L, 0.8),   # IoU 7/10 = 0.7 with the second
        pred("p1", 32, 36, L, 0.6),   # overlaps nothing: a false positive
        pred("p1", 0, 10, L, 0.3),    # below the 0.5 gate: ignored although perfect
        pred("n4", 5, 9, L, 0.7),     # false positive on a negative pair
        pred("p5", 5, 15, L, 0.9),    # IoU 5/15 = 0.33 with its GT: FP and FN
    ]
    return gt_doc(images, anns), preds


def test_partial_overlaps_by_hand():
    gt, preds = partial_case()
    r = evaluate([gt], preds)
    # positive pairs p1 (D=3, G=2), p2 (D=0, G=1), p5 (D=1, G=1):
    #   τ <= 0.70 (5 thresholds): TP 2, FP 1+1, FN 0+1+1 -> pmF1 4/8 = 0.5
    #   τ in {0.75, 0.80}:        TP 1, FP 2+1, FN 1+1+1 -> pmF1 2/8 = 0.25
    #   τ >= 0.85 (3 thresholds): TP 0, FP 3+1, FN 2+1+1 -> pmF1 0
    pm = [0.5] * 5 + [0.25] * 2 + [0.0] * 3
    assert r["per_threshold"]["pmF1"] == pytest.approx(pm, abs=1e-15)
    assert r["per_threshold"]["TP"] == [2] * 5 + [1] * 2 + [0] * 3
    assert r["per_threshold"]["FP_positive"] == [2] * 5 + [3] * 2 + [4] * 3
    assert r["per_threshold"]["FP_all"] == [3] * 5 + [4] * 2 + [5] * 3
    assert r["per_threshold"]["FN"] == [2] * 5 + [3] * 2 + [4] * 3
    assert r["pmF1"] == pytest.approx(0.3, rel=1e-14)
    # pairs: p1 TP, p2 FN, p5 TP, n3 TN, n4 FP -> MCC (2·1 − 1·1)/sqrt(3·3·2·2) = 1/6
    assert (r["IL_TP"], r["IL_FN"], r["IL_TN"], r["IL_FP"]) == (2, 1, 1, 1)
    assert r["IL_MCC"] == pytest.approx(1 / 6, rel=1e-14)
    assert r["cgF1"] == pytest.approx(100 * 0.3 / 6, rel=1e-13)
    assert r["cgF1@0.5"] == pytest.approx(100 * 0.5 / 6, rel=1e-13)
    assert r["cgF1@0.75"] == pytest.approx(100 * 0.25 / 6, rel=1e-13)
    assert r["pmF1@0.5"] == pytest.approx(0.5) and r["pmF1@0.75"] == pytest.approx(0.25)
    assert r["IL_precision"] == pytest.approx(2 / 3) and r["IL_recall"] == pytest.approx(2 / 3)
    assert r["IL_F1"] == pytest.approx(2 / 3) and r["IL_FPR"] == pytest.approx(0.5)
    # positive macro F1: p1's local F1 is 4/5 (τ<=.7), 2/5 (.75, .8), 0; p5's is 0; p2 (no
    # prediction) adds 0 to the sum but is not counted (the official evaluator's rule)
    p1 = (5 * 0.8 + 2 * 0.4) / 10
    assert r["positive_macro_F1"] == pytest.approx((p1 + 0) / 2, rel=1e-14)
    assert r["positive_macro_F1@0.5"] == pytest.approx(0.4)
    assert r["positive_macro_F1@0.75"] == pytest.approx(0.2)
    # micro precision over all pairs at τ=0.5: TP 2 / (2 + 3)
    assert r["precision@0.5"] == pytest.approx(0.4) and r["recall@0.5"] == pytest.approx(0.5)
    assert r["num_positive_pairs"] == 3 and r["num_negative_pairs"] == 2


def test_iou_exactly_at_a_threshold_counts():
    # IoU 3/5 = 0.6 passes τ = 0.50, 0.55, 0.60 and no other
    gt = gt_doc([image("a", 10), image("b", 10)], [ann("a", 0, 5, 10)])
    r = evaluate([gt], [pred("a", 0, 3, 10, 0.9)])
    assert r["per_threshold"]["TP"] == [1, 1, 1] + [0] * 7
    assert r["pmF1"] == pytest.approx(0.3)


def test_score_exactly_at_gate_counts():
    gt = gt_doc([image("a", 10), image("b", 10)], [ann("a", 0, 5, 10)])
    r = evaluate([gt], [pred("a", 0, 5, 10, 0.5), pred("b", 0, 5, 10, 0.4999)])
    assert r["cgF1"] == 100.0


def test_matching_maximises_total_iou_once_for_all_thresholds():
    # GT a=[0,10), b=[6,16); preds x=[0,8) (IoU a .8, b .167), y=[4,14) (IoU a .375, b .667).
    # Max total IoU: x-a + y-b = 1.467 (vs x-b + y-a = 0.54): 2 TP up to τ .65, 1 TP at .7-.8,
    # 0 after
    gt = gt_doc([image("p", 20), image("n", 20)], [ann("p", 0, 10, 20), ann("p", 6, 16, 20)])
    r = evaluate([gt], [pred("p", 0, 8, 20, 0.9), pred("p", 4, 14, 20, 0.9)])
    assert r["per_threshold"]["TP"] == [2] * 4 + [1] * 3 + [0] * 3


def test_perfect_predictions_give_100():
    L = 30
    images = [image(i, L) for i in range(12)]
    anns = [ann(i, j * 7, j * 7 + 5, L) for i in range(0, 12, 2) for j in range(i % 4 + 1)]
    preds = [dict(pred(a["image_id"], 0, 1, L, 1.0), segmentation=a["segmentation"], bbox=a["bbox"])
             for a in anns]
    for iou_type in ("segm", "bbox"):
        r = evaluate([gt_doc(images, anns)], preds, iou_type)
        assert (r["cgF1"], r["pmF1"], r["IL_MCC"]) == (100.0, 1.0, 1.0)
        assert r["cgF1@0.5"] == r["cgF1@0.75"] == 100.0 and r["positive_macro_F1"] == 1.0
        r = evaluate([gt_doc(images, anns)], preds, iou_type, official_epsilons=True)
        assert 99.98 < r["cgF1"] < 100.0


def test_crowd_gt_is_dropped_as_the_official_evaluator_does():
    # pycocotools marks iscrowd GT 'ignore' and the SAM 3 evaluator keeps only non-ignored GT, so
    # (unlike COCO AP) a prediction on a crowd region is a false positive, and a pair whose only GT
    # is crowd is scored as a negative.
    L = 40
    images = [image("c1", L), image("c2", L), image("c3", L), image("n", L)]
    anns = [ann("c1", 0, 10, L), ann("c1", 20, 30, L, crowd=1), ann("c2", 0, 10, L, crowd=1),
            ann("c3", 0, 10, L, crowd=1)]
    preds = [pred("c1", 0, 10, L, 0.9), pred("c1", 20, 30, L, 0.9), pred("c2", 0, 10, L, 0.9)]
    r = evaluate([gt_doc(images, anns)], preds)
    # c1: TP 1, FP 1, FN 0 at every τ -> pmF1 2/3; pairs: c1 TP, c2 FP, c3 TN, n TN
    assert r["pmF1"] == pytest.approx(2 / 3, rel=1e-14)
    assert (r["IL_TP"], r["IL_FP"], r["IL_TN"], r["IL_FN"]) == (1, 1, 2, 0)
    mcc = 2 / math.sqrt(2 * 1 * 3 * 2)
    assert r["IL_MCC"] == pytest.approx(mcc, rel=1e-14)
    assert r["cgF1"] == pytest.approx(100 * 2 / 3 * mcc, rel=1e-13)
    assert r["num_positive_pairs"] == 1


def test_multi_gt_keeps_the_best_gt_per_pair():
    L = 20
    ids = ["x", "y", "y2", "y3", "n"]
    doc_a = gt_doc([image(i, L) for i in ids],
                   [ann("x", 0, 10, L), ann("y2", 0, 10, L), ann("y3", 0, 10, L)])
    doc_b = gt_doc([image(i, L) for i in ids], [ann("x", 0, 8, L), ann("y", 0, 10, L)])
    preds = [pred("x", 0, 8, L, 0.9), pred("y3", 0, 10, L, 0.9)]
    # x: IoU .8 against A, 1.0 against B -> B. y: A is an exact true negative (no GT, no
    # prediction), B a miss -> the true negative wins; y2 likewise the other way round.
    # y3: A perfect, B a false positive -> A. So: 2 perfect positives, 3 true negatives.
    r = evaluate([doc_a, doc_b], preds)
    assert (r["cgF1"], r["pmF1"], r["IL_MCC"]) == (100.0, 1.0, 1.0)
    assert (r["IL_TP"], r["IL_TN"], r["num_gt_docs"]) == (2, 3, 2)
    # each document alone is worse
    assert evaluate([doc_a], preds)["cgF1"] < 100.0
    assert evaluate([doc_b], preds)["cgF1"] < 100.0
    # the result does not depend on which document comes first here
    assert evaluate([doc_b, doc_a], preds)["cgF1"] == 100.0


def test_multi_gt_ties_follow_the_official_smoothed_local_f1():
    # Two predictions; doc A: 1 GT matched (TP 1, FP 1, FN 0), doc B: 4 GT, 2 matched (TP 2, FP 0,
    # FN 2). Exact F1 ties at 0.5; the official choice compares the smoothed (1e-4) local F1.
    L = 80
    preds = [pred("p", 0, 10, L, 0.9), pred("p", 20, 30, L, 0.9)]
    doc_a = gt_doc([image("p", L), image("n", L)], [ann("p", 0, 10, L)])
    doc_b = gt_doc([image("p", L), image("n", L)],
                   [ann("p", a, a + 10, L) for a in (0, 20, 40, 60)])

    def smoothed(tp, fp, fn):
        p, r = tp / (tp + fp + 1e-4), tp / (tp + fn + 1e-4)
        return 2 * p * r / (p + r + 1e-4)

    b_wins = smoothed(2, 0, 2) > smoothed(1, 1, 0)
    expected_fp = 0 if b_wins else 1
    for docs in ([doc_a, doc_b], [doc_b, doc_a]):
        r = evaluate(docs, preds)
        assert r["per_threshold"]["FP_positive"] == [expected_fp] * 10


def test_only_exhaustive_pairs_are_evaluated():
    L = 20
    images = [image("a", L), image("b", L), image("ne", L, exhaustive=0), image("ne2", L)]
    anns = [ann("a", 0, 10, L), ann("ne", 0, 10, L), ann("ne2", 0, 10, L)]
    preds = [pred("a", 0, 10, L, 0.9), pred("ne", 10, 20, L, 0.9), pred("ne2", 10, 20, L, 0.9)]
    doc = gt_doc(images, anns)
    # ne2 is exhaustive in the first document only: marked non-exhaustive in another one excludes it
    other = gt_doc([dict(i, is_instance_exhaustive=int(i["id"] != "ne2")) for i in images], anns)
    r = evaluate([doc, other], preds)
    assert r["cgF1"] == 100.0
    assert r["num_pairs"] == 2 and r["num_excluded_pairs"] == 2
    assert evaluate([doc], preds)["num_pairs"] == 3


def test_box_variant():
    # boxes normalised [x, y, w, h]: GT [0, 0, .5, .5], prediction [0, 0, .5, .25]
    # -> IoU .125 / .25 = .5
    gt = {"images": [image("a", 10) | {"height": 10}, image("b", 10) | {"height": 10}],
          "annotations": [{"image_id": "a", "bbox": [0.0, 0.0, 0.5, 0.5], "iscrowd": 0}]}
    preds = [{"image_id": "a", "bbox": [0.0, 0.0, 0.5, 0.25], "score": 0.9}]
    r = evaluate([gt], preds, iou_type="bbox")
    assert r["per_threshold"]["TP"] == [1] + [0] * 9
    assert r["pmF1"] == pytest.approx(0.1) and r["IL_MCC"] == 1.0
    assert r["cgF1"] == pytest.approx(10.0) and r["cgF1@0.5"] == 100.0 and r["cgF1@0.75"] == 0.0
    assert r["iou_type"] == "bbox"


def test_int_and_string_pair_ids():
    L = 10
    gt = gt_doc([image(7, L), image("7", L), image("n", L)], [ann(7, 0, 5, L), ann("7", 5, 10, L)])
    r = evaluate([gt], [pred(7, 0, 5, L, 0.9), pred("7", 5, 10, L, 0.9)])
    assert r["cgF1"] == 100.0


def test_no_positive_predicted_gives_none_macro_f1_and_zero_cgf1():
    gt = gt_doc([image("a", 10), image("b", 10)], [ann("a", 0, 5, 10)])
    r = evaluate([gt], [])
    assert r["positive_macro_F1"] is None
    assert (r["cgF1"], r["pmF1"], r["IL_MCC"]) == (0.0, 0.0, 0.0)


def test_thresholds_are_cocos():
    assert len(IOU_THRESHOLDS) == 10
    assert IOU_THRESHOLDS[0] == 0.5 and IOU_THRESHOLDS[5] == 0.75 and IOU_THRESHOLDS[-1] == 0.95
