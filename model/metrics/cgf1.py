"""cgF1, pmF1, IL_MCC and their companions, as the official SAM 3 evaluator computes them.

Definition (reference/sam3.md §4; facebookresearch/sam3 `sam3/eval/cgf1_eval.py`, checked line by
line):
- The unit is an image-NP pair. Evaluated pairs: those of the first GT document with
  `is_instance_exhaustive` true that no other GT document marks non-exhaustive.
- Predictions count only with score >= 0.5. Crowd GT (`iscrowd` 1) is dropped before matching, as
  pycocotools' `_prepare` marks it `ignore` and the evaluator keeps only non-ignored GT: a
  prediction on a crowd region is an ordinary false positive, and a pair whose only GT is crowd
  counts as a negative.
- Per pair, one Hungarian matching (scipy `linear_sum_assignment`) maximising total IoU between the
  kept predictions and the GT (mask IoU or box IoU from pycocotools). The matching does not depend
  on τ; at each τ in numpy.linspace(0.5, 0.95, 10) (COCO's thresholds, used exactly as numpy
  computes them, e.g. 0.8999999999999999) TP = matches with IoU >= τ, FP = #pred − TP, FN = #GT −
  TP.
- pmF1 (positive micro F1): 2·TP/(2·TP+FP+FN) with counts summed over positive pairs, per τ.
  IL_MCC: Matthews correlation of the pair-level confusion (GT non-empty vs any kept prediction).
  cgF1 = 100 · mean over τ of (pmF1_τ · IL_MCC). @0.5 / @0.75 are the values at that τ.
- Several GT documents (SA-Co/Gold has 3): each pair is scored against each and the one whose mean
  local F1 over τ is strictly highest is kept (ties keep the earlier document); a document in which
  the pair is an exact true negative (no GT, no kept prediction) always wins. The local F1 used for
  this choice is the official smoothed one (epsilon 1e-4) in both modes below, so the same GT is
  chosen.
- positive_macro_F1: mean of the local F1 over positive pairs *that have a kept prediction*,
  although the positive pairs without one add a 0 to the sum (the official code's choice, kept as
  is).

Two modes. Default (`official_epsilons=False`): the paper's formulas, with 0/0 taken as 0, so the
documented check case gives IL_MCC 0.5, pmF1 1.0 and cgF1 50.0 exactly. `official_epsilons=True`
reproduces the official code's numbers bit for bit: it adds 1e-4 to every precision, recall and F1
denominator and 1e-6 to the image-level ones (the check case then gives cgF1 49.99...). Sums are
taken in the official order (pairs in GT order) in both modes.

Note: the repository's training-time `DemoEvaluator` (sam3/eval/demo_eval.py) logs "CGF1" as
positive *macro* F1 × IL_MCC (its micro variant is "CGF1_micro"); this module follows
cgf1_eval.py and the paper (micro), and reports positive_macro_F1 alongside.
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from scipy.optimize import linear_sum_assignment

from model.metrics.inputs import (
    IOU_TYPES,
    GroundTruth,
    MetricsInputError,
    PredictionIndex,
    _read_json,
    as_box_array,
    as_gt_document,
    index_gt,
    index_predictions,
)

SCORE_GATE = 0.5
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REPORTED_THRESHOLDS = (0.5, 0.75)


def evaluate(gt_docs: list[dict] | dict | str | PathLike, predictions: list[dict] | str | PathLike,
             iou_type: str = "segm", *, official_epsilons: bool = False) -> dict:
    """Score COCO-results predictions against one or more SA-Co gold GT documents (dicts or paths).

    Returns a JSON-ready dict: "cgF1" (0–100), "pmF1", "IL_MCC" (0–1), their @0.5/@0.75 values,
    IL precision/recall/F1/FPR, positive macro F1, micro precision/recall/F1 over all pairs, the
    pair-level confusion counts and per-threshold arrays. Raises MetricsInputError on bad input.
    """
    if iou_type not in IOU_TYPES:
        raise MetricsInputError(f"iou_type {iou_type!r} is not one of {list(IOU_TYPES)}")
    if isinstance(gt_docs, (dict, str, PathLike)):
        gt_docs = [gt_docs]
    if not gt_docs:
        raise MetricsInputError("no GT document given")
    gts = [index_gt(*as_gt_document(src, k), iou_type) for k, src in enumerate(gt_docs)]
    if isinstance(predictions, (str, PathLike)):
        name = f"predictions file {str(predictions)!r}"
        predictions = _read_json(predictions, "predictions")
    else:
        name = "predictions"
    preds = index_predictions(predictions, name, gts, iou_type, gate=SCORE_GATE)
    eval_ids, n_excluded = _evaluated_pairs(gts)
    n_dt, n_gt, tps = _match(eval_ids, gts, preds, iou_type)
    counts = _select_best_gt(n_dt, n_gt, tps)
    out = _summarise(counts, official_epsilons)
    out.update(
        iou_type=iou_type,
        epsilons="official" if official_epsilons else "none",
        num_gt_docs=len(gts),
        num_pairs=len(eval_ids),
        num_excluded_pairs=n_excluded,
        num_predictions=preds.n_total,
        num_predictions_kept=preds.n_kept,
    )
    return out


def _evaluated_pairs(gts: list[GroundTruth]) -> tuple[list, int]:
    first, others = gts[0], gts[1:]
    excluded = {pid for gt in others for pid, pair in gt.pairs.items() if not pair.exhaustive}
    ids = [pid for pid in first.order if first.pairs[pid].exhaustive and pid not in excluded]
    for gt in others:
        missing = [pid for pid in ids if pid not in gt.pairs]
        if missing:
            raise MetricsInputError(
                f"{gt.name} lacks {len(missing)} pair(s) that {first.name} evaluates, e.g. "
                f"{missing[:3]!r}: every GT document must annotate the same pairs")
    return ids, len(first.order) - len(ids)


def _match(eval_ids: list, gts: list[GroundTruth], preds: PredictionIndex, iou_type: str
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair and GT document: #kept predictions (N,), #non-crowd GT (N, K) and TP per τ
    (N, K, T)."""
    n, k_docs = len(eval_ids), len(gts)
    n_dt = np.zeros(n, dtype=np.int64)
    n_gt = np.zeros((n, k_docs), dtype=np.int64)
    scores: list[float] = []
    rows: list[int] = []
    segm = iou_type == "segm"
    no_crowd: dict[int, np.ndarray] = {}
    iou = mask_utils.iou
    for i, pid in enumerate(eval_ids):
        dts = preds.kept.get(pid)
        d = len(dts) if dts else 0
        n_dt[i] = d
        pairs = [gt.pairs[pid] for gt in gts]
        sizes = [len(pair.segms) for pair in pairs]
        n_gt[i] = sizes
        total = sum(sizes)
        if not (d and total):
            continue
        # one IoU call per pair: the GT of every document side by side, split by columns below
        if segm:
            gts_all = pairs[0].segms if k_docs == 1 else [s for pair in pairs for s in pair.segms]
        else:
            dts = as_box_array(dts)
            gts_all = as_box_array([b for pair in pairs for b in pair.boxes])
        crowd = no_crowd.get(total)
        if crowd is None:
            crowd = no_crowd[total] = np.zeros(total, dtype=np.uint8)
        ious_all = iou(dts, gts_all, crowd)
        col = 0
        for k, g in enumerate(sizes):
            if not g:
                continue
            ious = ious_all[:, col:col + g]
            col += g
            if d == 1 or g == 1:
                matched = [max(ious.ravel().tolist())]  # one match: the assignment takes the max
            else:
                r, c = linear_sum_assignment(-ious)
                matched = ious[r, c].tolist()
            scores.extend(matched)
            rows.extend([i * k_docs + k] * len(matched))
    tps = np.zeros((n * k_docs, len(IOU_THRESHOLDS)), dtype=np.int64)
    if scores:
        hits = np.asarray(scores)[:, None] >= IOU_THRESHOLDS[None, :]
        np.add.at(tps, np.asarray(rows, dtype=np.int64), hits.astype(np.int64))
    return n_dt, n_gt, tps.reshape(n, k_docs, len(IOU_THRESHOLDS))


def _smoothed_local_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    precision = tp / (tp + fp + 1e-4)
    recall = tp / (tp + fn + 1e-4)
    return 2 * precision * recall / (precision + recall + 1e-4)


def _select_best_gt(n_dt: np.ndarray, n_gt: np.ndarray, tps: np.ndarray) -> dict[str, np.ndarray]:
    """Oracle over GT documents: keep, per pair, the document the official rule picks."""
    n, k_docs, _ = tps.shape
    fps = n_dt[:, None, None] - tps
    fns = n_gt[:, :, None] - tps
    true_negative = (n_dt[:, None] == 0) & (n_gt == 0)
    mean_f1 = _smoothed_local_f1(tps, fps, fns).mean(axis=2)
    rows = np.arange(n)
    best = np.zeros(n, dtype=np.int64)
    for k in range(1, k_docs):
        both_scored = ~true_negative[rows, best] & ~true_negative[:, k]
        better = both_scored & (mean_f1[:, k] > mean_f1[rows, best])
        best = np.where(better | true_negative[:, k], k, best)
    return {"n_dt": n_dt, "n_gt": n_gt[rows, best], "tp": tps[rows, best],
            "fp": fps[rows, best], "fn": fns[rows, best]}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _summarise(c: dict[str, np.ndarray], official: bool) -> dict[str, Any]:
    n_dt, n_gt, tp, fp, fn = c["n_dt"], c["n_gt"], c["tp"], c["fp"], c["fn"]
    pos, has_dt = n_gt > 0, n_dt > 0
    il_tp, il_fn = int(np.sum(pos & has_dt)), int(np.sum(pos & ~has_dt))
    il_fp, il_tn = int(np.sum(~pos & has_dt)), int(np.sum(~pos & ~has_dt))
    tps, fps, fns = tp.sum(axis=0), fp.sum(axis=0), fn.sum(axis=0)
    pm_fps = fp[pos].sum(axis=0)
    n_thr = len(IOU_THRESHOLDS)
    if official:
        local = _smoothed_local_f1(tp[pos], fp[pos], fn[pos])
        precision = tps / (tps + fps + 1e-4)
        pm_precision = tps / (tps + pm_fps + 1e-4)
        recall = tps / (tps + fns + 1e-4)
        f1 = 2 * precision * recall / (precision + recall + 1e-4)
        pm_f1 = 2 * pm_precision * recall / (pm_precision + recall + 1e-4)
        il_recall = il_tp / (il_tp + il_fn + 1e-6)
        il_precision = il_tp / (il_tp + il_fp + 1e-6)
        il_f1 = 2 * il_precision * il_recall / (il_precision + il_recall + 1e-6)
        il_fpr = il_fp / (il_fp + il_tn + 1e-6)
        il_mcc = float(il_tp * il_tn - il_fp * il_fn) / (
            (float(il_tp + il_fp) * float(il_tp + il_fn) * float(il_tn + il_fp)
             * float(il_tn + il_fn)) ** 0.5 + 1e-6)
    else:
        local = _ratio(2 * tp[pos], 2 * tp[pos] + fp[pos] + fn[pos])
        precision = _ratio(tps, tps + fps)
        pm_precision = _ratio(tps, tps + pm_fps)
        recall = _ratio(tps, tps + fns)
        f1 = _ratio(2 * tps, 2 * tps + fps + fns)
        pm_f1 = _ratio(2 * tps, 2 * tps + pm_fps + fns)
        il_recall = il_tp / (il_tp + il_fn) if il_tp + il_fn else 0.0
        il_precision = il_tp / (il_tp + il_fp) if il_tp + il_fp else 0.0
        il_f1 = 2 * il_tp / (2 * il_tp + il_fp + il_fn) if il_tp else 0.0
        il_fpr = il_fp / (il_fp + il_tn) if il_fp + il_tn else 0.0
        marginals = (float(il_tp + il_fp) * float(il_tp + il_fn) * float(il_tn + il_fp)
                     * float(il_tn + il_fn))
        il_mcc = float(il_tp * il_tn - il_fp * il_fn) / marginals ** 0.5 if marginals else 0.0
    # the official accumulation adds pair after pair: a cumulative sum keeps that order
    local_sum = np.cumsum(local, axis=0)[-1] if len(local) else np.zeros(n_thr)
    n_macro = int(np.sum(pos & has_dt))
    with np.errstate(invalid="ignore", divide="ignore"):
        macro = local_sum / n_macro if n_macro else np.full(n_thr, np.nan)
    cg = pm_f1 * il_mcc

    out: dict[str, Any] = {"cgF1": _reported(cg, None, 100.0), "pmF1": _reported(pm_f1),
                           "IL_MCC": il_mcc}
    for t in REPORTED_THRESHOLDS:
        out[f"cgF1@{t}"] = _reported(cg, t, 100.0)
        out[f"pmF1@{t}"] = _reported(pm_f1, t)
    out.update(IL_precision=il_precision, IL_recall=il_recall, IL_F1=il_f1, IL_FPR=il_fpr,
               IL_TP=il_tp, IL_FP=il_fp, IL_TN=il_tn, IL_FN=il_fn,
               num_positive_pairs=int(pos.sum()), num_negative_pairs=int((~pos).sum()))
    series = {"positive_macro_F1": macro, "positive_micro_precision": pm_precision,
              "positive_micro_F1": pm_f1, "precision": precision, "recall": recall, "F1": f1}
    for key, values in series.items():
        out[key] = _reported(values)
        for t in REPORTED_THRESHOLDS:
            out[f"{key}@{t}"] = _reported(values, t)
    out["per_threshold"] = {
        "iou": IOU_THRESHOLDS.tolist(), "TP": tps.tolist(), "FP_positive": pm_fps.tolist(),
        "FP_all": fps.tolist(), "FN": fns.tolist(), "pmF1": pm_f1.tolist(),
        "cgF1": (cg * 100.0).tolist(),
    }
    return out


def _reported(values: np.ndarray, threshold: float | None = None, scale: float = 1.0
              ) -> float | None:
    """The official summary: mean over τ (or the value at one τ) of the entries > -1; None (the
    official -1) when there is none, e.g. positive macro F1 without any positive pair predicted."""
    s = np.asarray(values, dtype=np.float64)
    if threshold is not None:
        s = s[np.where(threshold == IOU_THRESHOLDS)[0]]
    s = s[s > -1]
    return None if s.size == 0 else float(np.mean(s)) * scale
