"""Calibration checks and routing thresholds from a human-labelled slice.

Truth for an item is the majority of its human votes. For a verifier's P(accept):
- `choose_thresholds(p, accepted, precision=0.98)`: the auto-accept threshold is the lowest
  `accept_at` such that the items with P(accept) >= accept_at are human-accepted with precision >=
  the target (and there are at least `min_support` of them); the auto-reject threshold is the highest
  `reject_at` such that items with P(accept) <= reject_at are human-rejected (not accepted) with that
  precision. `bound="wilson"` uses the Wilson lower confidence bound of the precision instead of the
  plain ratio (stricter on small slices). Coverage = share of the slice decided automatically; the
  rest goes to humans. For EV, "accept" means the pair is exhaustive (with no masks: a verified
  negative) and "reject" sends it to correction.
- `reliability(p, y, bins)`: the reliability-diagram bins (mean predicted vs observed frequency,
  counts) and the expected calibration error (ECE).
- `threshold_report(p, accepted, ...)`: both, as one JSON-able dict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def route_by_thresholds(p_accept: float, accept_at: float | None, reject_at: float | None) -> str:
    """Auto-accept at P(accept) >= accept_at, auto-reject at <= reject_at, else "human"."""
    if accept_at is not None and p_accept >= accept_at:
        return "accept"
    if reject_at is not None and p_accept <= reject_at:
        return "reject"
    return "human"


@dataclass
class Thresholds:
    target_precision: float
    accept_at: float | None
    reject_at: float | None
    accept_precision: float | None
    reject_precision: float | None
    accept_coverage: float
    reject_coverage: float
    n: int
    bound: str = "empirical"

    @property
    def coverage(self) -> float:
        return self.accept_coverage + self.reject_coverage

    def route(self, p_accept: float) -> str:
        """ "accept", "reject" or "human" for one P(accept)."""
        return route_by_thresholds(p_accept, self.accept_at, self.reject_at)

    def to_dict(self) -> dict:
        return {**asdict(self), "coverage": self.coverage}


def wilson_lower(successes: np.ndarray, n: np.ndarray, z: float = 1.645) -> np.ndarray:
    n = np.maximum(n, 1)
    phat = successes / n
    denom = 1 + z * z / n
    centre = phat + z * z / (2 * n)
    margin = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    return (centre - margin) / denom


def _best_cut(scores: np.ndarray, good: np.ndarray, precision: float, min_support: int, bound: str):
    """Largest k such that the k highest scores (cut at a score change) reach the precision."""
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], good[order].astype(float)
    k = np.arange(1, len(s) + 1)
    hits = np.cumsum(g)
    prec = wilson_lower(hits, k) if bound == "wilson" else hits / k
    boundary = np.append(s[1:] < s[:-1], True)  # a cut after position k-1 separates distinct scores
    ok = (prec >= precision) & boundary & (k >= min_support)
    if not ok.any():
        return None, None, 0
    best = int(np.nonzero(ok)[0].max())
    return float(s[best]), float(hits[best] / (best + 1)), best + 1


def choose_thresholds(
    p_accept, accepted, precision: float = 0.98, min_support: int = 10, bound: str = "empirical"
) -> Thresholds:
    """Auto-accept / auto-reject thresholds on P(accept) reaching `precision` (see module docstring)."""
    if not 0 < precision <= 1:
        raise ValueError(f"precision must be in (0, 1], got {precision!r}")
    if bound not in ("empirical", "wilson"):
        raise ValueError(f"bound must be 'empirical' or 'wilson', got {bound!r}")
    p = np.asarray(p_accept, dtype=float)
    y = np.asarray(accepted, dtype=bool)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} probabilities but {y.size} labels")
    n = len(p)
    if n == 0:
        return Thresholds(precision, None, None, None, None, 0.0, 0.0, 0, bound)
    acc_at, acc_prec, n_acc = _best_cut(p, y, precision, min_support, bound)
    neg_at, rej_prec, n_rej = _best_cut(-p, ~y, precision, min_support, bound)
    rej_at = -neg_at if neg_at is not None else None
    if (
        acc_at is not None and rej_at is not None and rej_at >= acc_at
    ):  # cannot overlap; keep the larger side
        if n_acc >= n_rej:
            rej_at, rej_prec, n_rej = None, None, 0
        else:
            acc_at, acc_prec, n_acc = None, None, 0
    return Thresholds(precision, acc_at, rej_at, acc_prec, rej_prec, n_acc / n, n_rej / n, n, bound)


def reliability(p, y, bins: int = 10) -> dict:
    """Reliability bins over [0, 1] and the ECE (count-weighted |mean predicted - observed|)."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        sel = idx == b
        count = int(sel.sum())
        mean_p = float(p[sel].mean()) if count else None
        freq = float(y[sel].mean()) if count else None
        if count:
            ece += count / len(p) * abs(mean_p - freq)
        rows.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "count": count,
                "mean_p": mean_p,
                "observed": freq,
            }
        )
    return {"bins": rows, "ece": float(ece) if len(p) else math.nan, "n": len(p)}


def threshold_report(
    p_accept,
    accepted,
    precision: float = 0.98,
    min_support: int = 10,
    bound: str = "empirical",
    bins: int = 10,
) -> dict:
    thr = choose_thresholds(p_accept, accepted, precision, min_support, bound)
    return {"thresholds": thr.to_dict(), "reliability": reliability(p_accept, accepted, bins)}
