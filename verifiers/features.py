"""Feature vectors of MV and EV requests, from the predictor's outputs for the pair and the image.

All features are numbers; a feature that cannot be computed (no semantic map, no instances, no
image) is NaN, which the gradient-boosting model handles natively. Names are in `MV_FEATURES` and
`EV_FEATURES` (phrase features are appended by `verifiers.embedding.PhraseFeatures`).

- Pair (both): model presence, best score, counts of query scores >= 0.5 / in [0.3, 0.5) / in
  [0.1, 0.3) (near-threshold detections), the semantic summary (`model.postprocess`).
- MV, the mask itself: area, bbox fill, compactness (4 pi A / P^2), connected components, aspect,
  border contact; against the predicted instances: best IoU and that instance's score, score rank,
  mask stability under threshold changes, semantic agreement and box agreement (its predicted box
  vs the mask's box); overlap with the other predicted masks (best IoU, share of the mask they
  cover, how many overlap); the semantic map inside the mask and its contrast across the mask
  boundary; the image's edge strength on the boundary and colour contrast across it.
- EV, the accepted masks: count and union area; semantic area not explained by them (absolute and
  as a share of the semantic area); predicted instances they do not match (count, best score,
  semantic agreement, stability; near-threshold ones separately); accepted masks no prediction
  matches; semantic map inside the union.
"""

from __future__ import annotations

import math

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from verifiers.context import PairContext

PAIR_FEATURES = [
    "presence",
    "max_score",
    "n_ge50",
    "n_30_50",
    "n_10_30",
    "semantic_area",
    "semantic_max",
    "instance_area",
    "unexplained_area",
    "explained_fraction",
]
MV_FEATURES = PAIR_FEATURES + [
    "area_frac",
    "log_area",
    "bbox_fill",
    "compactness",
    "n_components",
    "largest_component",
    "aspect",
    "touches_border",
    "best_iou",
    "matched_score",
    "matched_rank",
    "matched_stability",
    "matched_semantic_agreement",
    "box_agreement",
    "other_iou",
    "covered_by_others",
    "n_overlapping",
    "mask_semantic",
    "semantic_boundary_contrast",
    "edge_ratio",
    "colour_contrast",
]
EV_FEATURES = PAIR_FEATURES + [
    "n_masks",
    "union_area",
    "unexplained_semantic",
    "unexplained_share",
    "n_unmatched_pred",
    "max_unmatched_score",
    "sum_unmatched_score",
    "n_near_unmatched",
    "max_unmatched_agreement",
    "max_unmatched_stability",
    "n_masks_unmatched",
    "excess_detections",
    "union_semantic",
]
NAN = float("nan")


def _coded(rle: dict) -> dict:
    counts = rle["counts"]
    return {
        "size": list(rle["size"]),
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }


def iou_matrix(a: list[dict], b: list[dict]) -> np.ndarray:
    """Pairwise mask IoU (len(a), len(b)) of COCO RLEs of one image size (pycocotools, no decoding)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(
        mask_utils.iou([_coded(r) for r in a], [_coded(r) for r in b], [0] * len(b)), dtype=float
    ).reshape(len(a), len(b))


def intersection_area(rle: dict, others: list[dict]) -> int:
    """Pixels of `rle` covered by the union of `others`."""
    if not others:
        return 0
    union = mask_utils.merge([_coded(r) for r in others], intersect=False)
    return int(mask_utils.area(mask_utils.merge([_coded(rle), union], intersect=True)))


def box_iou(a: list[float], b: list[float]) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    iw = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    ih = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def to_grid(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resample of a full-size mask onto a low-resolution grid."""
    h, w = shape
    ys = np.minimum(((np.arange(h) + 0.5) * mask.shape[0] / h).astype(int), mask.shape[0] - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * mask.shape[1] / w).astype(int), mask.shape[1] - 1)
    return mask[np.ix_(ys, xs)]


def pair_features(ctx: PairContext | None) -> list[float]:
    if ctx is None:
        return [NAN] * len(PAIR_FEATURES)
    s = np.asarray(ctx.scores, dtype=np.float64)
    sem = [
        ctx.semantic.get(k, NAN)
        for k in (
            "semantic_area",
            "semantic_max",
            "instance_area",
            "unexplained_area",
            "explained_fraction",
        )
    ]
    return [
        ctx.presence,
        float(s.max()) if s.size else 0.0,
        float((s >= 0.5).sum()),
        float(((s >= 0.3) & (s < 0.5)).sum()),
        float(((s >= 0.1) & (s < 0.3)).sum()),
        *sem,
    ]


def mask_geometry(mask: np.ndarray) -> tuple[list[float], tuple[slice, slice] | None]:
    h, w = mask.shape
    area = int(np.count_nonzero(mask))
    if area == 0:
        return [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    local = mask[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1]
    perimeter = area - int(np.count_nonzero(ndimage.binary_erosion(local)))
    labels, n = ndimage.label(local)
    largest = np.bincount(labels.ravel())[1:].max() / area if n else 0.0
    bw, bh = x1 - x0, y1 - y0
    border = float(y0 == 0 or x0 == 0 or y1 == h or x1 == w)
    geo = [
        area / (h * w),
        math.log1p(area),
        area / (bw * bh),
        min(2.0, 4 * math.pi * area / max(1, perimeter) ** 2),
        float(n),
        float(largest),
        max(bw, bh) / max(1, min(bw, bh)),
        border,
    ]
    pad = 3
    return geo, (
        slice(max(0, y0 - pad), min(h, y1 + pad)),
        slice(max(0, x0 - pad), min(w, x1 + pad)),
    )


def image_boundary(
    mask: np.ndarray, window, image: np.ndarray | None, grad: np.ndarray | None
) -> list[float]:
    """Edge strength on the mask boundary (vs the image mean) and colour contrast across it."""
    if image is None or window is None or grad is None:
        return [NAN, NAN]
    m = mask[window]
    inner = m & ~ndimage.binary_erosion(m, iterations=2)
    outer = ndimage.binary_dilation(m, iterations=2) & ~m
    edge = m & ~ndimage.binary_erosion(m)
    g = grad[window]
    edge_ratio = float(g[edge].mean() / (grad.mean() + 1e-6)) if edge.any() else NAN
    img = image[window].astype(np.float32)
    if inner.any() and outer.any():
        contrast = float(np.abs(img[inner].mean(0) - img[outer].mean(0)).mean() / 255.0)
    else:
        contrast = NAN
    return [edge_ratio, contrast]


def image_gradient(image: np.ndarray | None) -> np.ndarray | None:
    if image is None:
        return None
    gray = image.astype(np.float32).mean(axis=2)
    gy, gx = np.gradient(gray)
    return np.hypot(gx, gy)


def semantic_inside(mask: np.ndarray, sem_map: np.ndarray | None) -> tuple[float, float]:
    """Mean semantic probability inside the mask, and inner-ring minus outer-ring contrast (map grid)."""
    if sem_map is None:
        return NAN, NAN
    g = to_grid(mask, sem_map.shape)
    if not g.any():
        return NAN, NAN
    inside = float(sem_map[g].mean())
    outer = ndimage.binary_dilation(g, iterations=1) & ~g
    ring = g & ~ndimage.binary_erosion(g)
    contrast = float(sem_map[ring].mean() - sem_map[outer].mean()) if outer.any() else NAN
    return inside, contrast


def mv_features(
    mask: np.ndarray,
    rle: dict,
    ctx: PairContext | None,
    image: np.ndarray | None = None,
    grad: np.ndarray | None = None,
) -> list[float]:
    """The MV feature row of one mask (boolean and its RLE; names: `MV_FEATURES`)."""
    geo, window = mask_geometry(mask)
    match = [NAN] * 9
    if ctx is not None:
        preds = [p for p in ctx.instances if p.rle is not None]
        ious = iou_matrix([rle], [p.rle for p in preds])[0] if preds else np.zeros(0)
        if preds and ious.max() > 0:
            j = int(ious.argmax())
            p = preds[j]
            ys, xs = np.nonzero(mask)
            own_box = (
                [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
                if len(ys)
                else [0, 0, 0, 0]
            )
            rank = float((np.asarray(ctx.scores) > p.score).sum())
            others = [k for k in range(len(preds)) if k != j]
            other_iou = float(ious[others].max()) if others else 0.0
            area = max(1, int(np.count_nonzero(mask)))
            covered = intersection_area(rle, [preds[k].rle for k in others]) / area
            match = [
                float(ious[j]),
                p.score,
                rank,
                p.stability,
                p.semantic_agreement,
                box_iou(own_box, p.bbox),
                other_iou,
                float(covered),
                float((ious[others] > 0.1).sum()),
            ]
        else:
            match = [0.0, 0.0, float(len(ctx.scores)), NAN, NAN, 0.0, 0.0, 0.0, 0.0]
    sem = semantic_inside(mask, ctx.semantic_map if ctx is not None else None)
    return pair_features(ctx) + geo + match + list(sem) + image_boundary(mask, window, image, grad)


def ev_features(masks: list[np.ndarray], rles: list[dict], ctx: PairContext | None) -> list[float]:
    """The EV feature row of a pair with its accepted masks and their RLEs (names: `EV_FEATURES`)."""
    n = len(masks)
    union = np.logical_or.reduce(masks) if masks else None
    union_area = float(np.count_nonzero(union) / union.size) if union is not None else 0.0
    rest = [NAN] * 11
    if ctx is not None:
        if ctx.semantic_map is not None:
            sem_bin = ctx.semantic_map > 0.5
            ug = to_grid(union, sem_bin.shape) if union is not None else np.zeros_like(sem_bin)
            unexplained = float((sem_bin & ~ug).mean())
            share = float((sem_bin & ~ug).sum() / sem_bin.sum()) if sem_bin.any() else 0.0
            union_sem = float(ctx.semantic_map[ug].mean()) if ug.any() else NAN
        else:
            unexplained, share, union_sem = NAN, NAN, NAN
        preds = [p for p in ctx.instances if p.rle is not None]
        ious = iou_matrix([p.rle for p in preds], rles)
        matched_pred = ious.max(axis=1) >= 0.5 if masks and preds else np.zeros(len(preds), bool)
        unmatched = [p for p, m in zip(preds, matched_pred) if not m]
        strong = [p for p in unmatched if p.score >= 0.5]
        near = [p for p in unmatched if p.score < 0.5]
        masks_unmatched = int((ious.max(axis=0) < 0.5).sum()) if masks and preds else n
        n_ge50 = float((np.asarray(ctx.scores) >= 0.5).sum())
        rest = [
            unexplained,
            share,
            float(len(strong)),
            max((p.score for p in strong), default=0.0),
            float(sum(p.score for p in strong)),
            float(len(near)),
            max((p.semantic_agreement for p in unmatched), default=0.0),
            max((p.stability for p in unmatched if not math.isnan(p.stability)), default=NAN),
            float(masks_unmatched),
            n_ge50 - n,
            union_sem,
        ]
    return pair_features(ctx) + [float(n), union_area] + rest
