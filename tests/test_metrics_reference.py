"""The metrics against an independent brute-force reference on random small cases (hypothesis).

The reference uses exact fractions for IoU (masks are intervals on a 1×L image), tries every
one-to-one assignment with itertools.permutations, and follows the definition in reference/sam3.md
§4 and the official evaluator's rules (crowd GT dropped, best GT per pair by mean smoothed local
F1, true negatives win, only exhaustive pairs). Cases whose best assignment is ambiguous (two
optimal assignments with different TP counts) or whose GT choice is a floating-point tie are
skipped.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from model.metrics import evaluate
from tests.test_metrics import ann, gt_doc, image, pred

THRESHOLDS = [Fraction(50 + 5 * i, 100) for i in range(10)]
L = 16  # a power of two: normalised box coordinates are exact, so box IoU == mask IoU exactly


def _iou(a: tuple[int, int], b: tuple[int, int]) -> Fraction:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return Fraction(inter, (a[1] - a[0]) + (b[1] - b[0]) - inter)


def _tp_counts(dts: list, gts: list) -> list[int] | None:
    """TP per threshold under a maximum-total-IoU one-to-one matching; None if that is ambiguous."""
    if not dts or not gts:
        return [0] * len(THRESHOLDS)
    if len(dts) <= len(gts):
        options = [[_iou(d, gts[g]) for d, g in zip(dts, perm)]
                   for perm in itertools.permutations(range(len(gts)), len(dts))]
    else:
        options = [[_iou(dts[d], g) for d, g in zip(perm, gts)]
                   for perm in itertools.permutations(range(len(dts)), len(gts))]
    best = max(sum(o) for o in options)
    counts = {tuple(sum(s >= t for s in o) for t in THRESHOLDS) for o in options if sum(o) == best}
    return list(counts.pop()) if len(counts) == 1 else None


def _smoothed_mean_f1(tp: list[int], d: int, g: int) -> float:
    total = 0.0
    for t in tp:
        p, r = t / (t + (d - t) + 1e-4), t / (t + (g - t) + 1e-4)
        total += 2 * p * r / (p + r + 1e-4)
    return total / len(tp)


def reference(docs: list[dict], preds: list[tuple]) -> dict | None:
    """docs: [{pid: (exhaustive, [(a, b, crowd), ...])}], preds: [(pid, a, b, score)]."""
    first = docs[0]
    excluded = {pid for doc in docs[1:] for pid, (ex, _) in doc.items() if not ex}
    pairs = [pid for pid, (ex, _) in first.items() if ex and pid not in excluded]
    chosen = []  # (d, g, tp list)
    for pid in pairs:
        dts = [(a, b) for p, a, b, s in preds if p == pid and s >= 0.5]
        scored = []
        for doc in docs:
            gts = [(a, b) for a, b, crowd in doc[pid][1] if not crowd]
            tp = _tp_counts(dts, gts)
            if tp is None:
                return None
            scored.append((len(dts), len(gts), tp))
        best = scored[0]
        for cur in scored[1:]:
            best_tn, cur_tn = best[0] == best[1] == 0, cur[0] == cur[1] == 0
            if not best_tn and not cur_tn:
                b, c = _smoothed_mean_f1(best[2], *best[:2]), _smoothed_mean_f1(cur[2], *cur[:2])
                if abs(b - c) < 1e-12 and best != cur:
                    return None  # a floating-point tie: summation order could decide it
                if c > b:
                    best = cur
            elif cur_tn:
                best = cur
        chosen.append(best)
    il = {"TP": 0, "FP": 0, "TN": 0, "FN": 0}
    tp_sum, fp_sum, fn_sum = [0] * 10, [0] * 10, [0] * 10
    macro_sum, macro_n = [Fraction(0)] * 10, 0
    for d, g, tp in chosen:
        il[("T" if (g > 0) == (d > 0) else "F") + ("P" if d > 0 else "N")] += 1
        if g == 0:
            continue
        tp_sum = [a + t for a, t in zip(tp_sum, tp)]
        fp_sum = [a + d - t for a, t in zip(fp_sum, tp)]
        fn_sum = [a + g - t for a, t in zip(fn_sum, tp)]
        macro_sum = [m + Fraction(2 * t, d + g) for m, t in zip(macro_sum, tp)]
        macro_n += d > 0
    pm = [Fraction(2 * t, 2 * t + f + n) if t + f + n else Fraction(0)
          for t, f, n in zip(tp_sum, fp_sum, fn_sum)]
    tp_, fp_, tn_, fn_ = il["TP"], il["FP"], il["TN"], il["FN"]
    den = (tp_ + fp_) * (tp_ + fn_) * (tn_ + fp_) * (tn_ + fn_)
    mcc = (tp_ * tn_ - fp_ * fn_) / math.sqrt(den) if den else 0.0
    pm_f1 = float(sum(pm) / 10)
    return {"pmF1": pm_f1, "IL_MCC": mcc, "cgF1": 100 * pm_f1 * mcc,
            "cgF1@0.5": 100 * float(pm[0]) * mcc, "cgF1@0.75": 100 * float(pm[5]) * mcc,
            "positive_macro_F1": float(sum(macro_sum) / 10 / macro_n) if macro_n else None,
            "IL_TP": tp_, "IL_FP": fp_, "IL_TN": tn_, "IL_FN": fn_, "num_pairs": len(chosen)}


interval = st.tuples(st.integers(0, L - 1), st.integers(1, L)).map(
    lambda t: (min(t), max(t)) if t[0] != t[1] else (t[0], t[0] + 1)).filter(lambda t: t[1] <= L)
gt_instance = st.tuples(interval, st.sampled_from([0, 0, 0, 0, 1])).map(lambda t: (*t[0], t[1]))
pair_gt = st.tuples(st.sampled_from([1, 1, 1, 0]), st.lists(gt_instance, max_size=3))


@st.composite
def cases(draw):
    pids = draw(st.lists(st.one_of(st.integers(0, 50), st.text("abc", min_size=1, max_size=3)),
                         min_size=1, max_size=6, unique=True))
    n_docs = draw(st.integers(1, 3))
    docs = [{pid: draw(pair_gt) for pid in pids} for _ in range(n_docs)]
    preds = draw(st.lists(st.tuples(st.sampled_from(pids), interval,
                                    st.sampled_from([0.2, 0.49, 0.5, 0.7, 0.95])), max_size=10))
    return docs, [(pid, a, b, s) for pid, (a, b), s in preds]


def _to_json(docs, preds):
    gt_docs = [gt_doc([image(pid, L, ex) for pid, (ex, _) in doc.items()],
                      [ann(pid, a, b, L, crowd)
                       for pid, (_, insts) in doc.items() for a, b, crowd in insts])
               for doc in docs]
    return gt_docs, [pred(pid, a, b, L, s) for pid, a, b, s in preds]


@settings(max_examples=150, deadline=None)
@given(cases())
def test_matches_brute_force_reference(case):
    docs, preds = case
    expected = reference(docs, preds)
    assume(expected is not None)
    gt_docs, pred_json = _to_json(docs, preds)
    for iou_type in ("segm", "bbox"):  # 1-pixel-high intervals: box IoU == mask IoU
        got = evaluate(gt_docs, pred_json, iou_type)
        for key, value in expected.items():
            if value is None or isinstance(value, int):
                assert got[key] == value, (key, got[key], value)
            else:
                assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        smoothed = evaluate(gt_docs, pred_json, iou_type, official_epsilons=True)
        # the epsilons move results by ~1e-4 relative
        assert smoothed["cgF1"] == pytest.approx(expected["cgF1"], abs=0.05)
        assert (smoothed["IL_TP"], smoothed["IL_TN"]) == (expected["IL_TP"], expected["IL_TN"])
