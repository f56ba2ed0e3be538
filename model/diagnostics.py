"""Learning diagnostics for SAM 3 pair training: what the losses hide, as rates and IoUs.

Owns `batch_diagnostics` (one batch of `Sam3PairModel` outputs vs its `PairTarget`s), `aggregate`
(key-wise NaN-ignoring means of such dicts), `heldout_diagnostics` (a model over held-out
`PairBatch`es, pooled) and `format_diagnostics` (one log line). Keys:

- `matched_iou` / `matched_box_giou`: mask IoU / box GIoU of the Hungarian-matched queries;
- `oracle_iou` / `oracle_hit50`: per GT instance the best IoU any query reaches (mean, and share
  >= 0.5); a model predicting the same union mask for every query scores about 1 / #objects;
- `query_diversity`: mean pairwise mask IoU of the top-k queries by score (1.0 = all identical);
- `pos_scored` / `neg_scored`: share of positive / negative pairs with a query score >= threshold,
  where score = sigmoid(pred_logit) * sigmoid(presence_logit) as deployed;
- `presence_acc_pos` / `presence_acc_neg`: presence >= 0.5 on positives, < 0.5 on negatives;
- `semantic_iou`: IoU of (semantic_seg > 0) with the union of the pair's GT masks, positives only.

Masks are binarised as logit > 0 (predictions) and > 0.5 (GT). Prediction-vs-GT IoUs are taken at
each pair's GT mask size (predicted logits resized with `resize_masks`: bilinear up, area-average
down); query diversity at the prediction grid. Two empty masks count as identical (IoU 1). A key
with nothing to measure (no positives, no negatives, no semantic_seg, ...) is NaN.

Pure torch + numpy + scipy (no webdataset, pycocotools or ray).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from model.losses import LossConfig, PairTarget, elementwise_giou, hungarian_match, resize_masks

if TYPE_CHECKING:
    from model.data import PairBatch

KEYS = (
    "matched_iou", "matched_box_giou", "oracle_iou", "oracle_hit50", "query_diversity",
    "pos_scored", "neg_scored", "presence_acc_pos", "presence_acc_neg", "semantic_iou",
)
Sums = dict[str, list[float]]  # key -> [sum, count]
Matches = list[tuple[Tensor, Tensor]]  # per row: (query indices, target indices)


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every binary mask of a (N, H, W) with every one of b (M, H, W) -> (N, M).

    Two empty masks have IoU 1 (identical)."""
    a, b = a.flatten(1).float(), b.flatten(1).float()
    inter = a @ b.T
    union = a.sum(-1)[:, None] + b.sum(-1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


def _add(sums: Sums, key: str, values: Tensor | float, count: int = 1) -> None:
    """Add a tensor of values (or one value) to a key's running sum and count."""
    if isinstance(values, Tensor):
        values, count = float(values.float().sum()), int(values.numel())
    s = sums.setdefault(key, [0.0, 0])
    s[0] += float(values)
    s[1] += count


def _batch_sums(
    outputs: dict, targets: list[PairTarget], matches: Matches | None = None, top_k: int = 5,
    score_threshold: float = 0.5, cfg: LossConfig | None = None,
) -> Sums:
    """Per key the sum of the measured values and how many there were (so batches can pool)."""
    sums: Sums = {k: [0.0, 0] for k in KEYS}
    logits = outputs["pred_logits"].detach().float()
    boxes = outputs["pred_boxes"].detach().float()
    pred_masks = outputs.get("pred_masks")
    presence = outputs.get("presence_logits")
    semantic = outputs.get("semantic_seg")
    B, Q = logits.shape
    if len(targets) != B:
        raise ValueError(f"got {len(targets)} targets for a batch of {B} predictions")
    pres_prob = None
    scores = logits.sigmoid()
    if presence is not None:
        pres_prob = presence.detach().float().reshape(B, -1)[:, 0].sigmoid()
        scores = scores * pres_prob[:, None]
    if matches is None and any(t.num for t in targets):
        matches = hungarian_match(outputs, targets, cfg or LossConfig())
    for b, t in enumerate(targets):
        pos = t.num > 0
        kind = "pos" if pos else "neg"
        _add(sums, f"{kind}_scored", float(bool((scores[b] >= score_threshold).any())))
        if pres_prob is not None:
            _add(sums, f"presence_acc_{kind}", float(bool(pres_prob[b] >= 0.5) == pos))
        if pred_masks is not None:
            k = min(top_k, Q)
            if k > 1:
                top = pred_masks[b].detach()[scores[b].topk(k).indices].float() > 0
                iou = mask_iou(top, top)
                _add(sums, "query_diversity", (iou.sum() - iou.diagonal().sum()) / (k * (k - 1)))
        if not pos:
            continue
        gt = t.masks.to(logits.device).float() > 0.5
        size = tuple(gt.shape[-2:])
        qi, ti = (m.to(logits.device) for m in matches[b])
        if qi.numel():
            _add(sums, "matched_box_giou", elementwise_giou(boxes[b, qi], t.boxes.to(boxes)[ti]))
        if pred_masks is not None:
            iou = mask_iou(resize_masks(pred_masks[b].detach().float(), size) > 0, gt)  # (Q, n)
            if qi.numel():
                _add(sums, "matched_iou", iou[qi, ti])
            best = iou.max(0).values
            _add(sums, "oracle_iou", best)
            _add(sums, "oracle_hit50", (best >= 0.5).float())
        if semantic is not None:
            sem = resize_masks(semantic[b].detach().float().reshape(1, *semantic.shape[-2:]), size)
            sem = sem > 0
            _add(sums, "semantic_iou", mask_iou(sem, gt.any(0, keepdim=True))[0, 0])
    return sums


def _means(sums: Sums) -> dict[str, float]:
    return {k: (s / c if c else math.nan) for k, (s, c) in sums.items()}


@torch.no_grad()
def batch_diagnostics(
    outputs: dict, targets: list[PairTarget], matches: Matches | None = None, top_k: int = 5,
    score_threshold: float = 0.5, cfg: LossConfig | None = None,
) -> dict[str, float]:
    """The diagnostics of one batch (see the module docstring); NaN where nothing to measure.

    `matches` are `hungarian_match`'s (query indices, target indices) per row; computed with `cfg`
    (default `LossConfig()`) when None. Means are over instances (matched / oracle keys), over
    pairs (score, presence, semantic keys) or over pairs with >= 2 queries (diversity)."""
    return _means(_batch_sums(outputs, targets, matches, top_k, score_threshold, cfg))


def aggregate(rows: list[dict], weights: list[float] | None = None) -> dict[str, float]:
    """Key-wise (optionally weighted) mean of diagnostics dicts, ignoring NaN and missing keys."""
    weights = weights if weights is not None else [1.0] * len(rows)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    out = {}
    for k in keys:
        vals = [(float(r[k]), w) for r, w in zip(rows, weights)
                if k in r and not math.isnan(float(r[k]))]
        total = sum(w for _, w in vals)
        out[k] = sum(v * w for v, w in vals) / total if vals and total > 0 else math.nan
    return out


def heldout_diagnostics(
    pair_model: nn.Module, batches: Iterable[PairBatch], device: str | torch.device = "cpu", **kw,
) -> dict[str, float]:
    """Run `pair_model` (a `Sam3PairModel`, already on `device`) over `batches` in eval mode.

    Returns the diagnostics pooled over every batch (each instance / pair weighs the same, as if
    all batches were one batch). Every module's train/eval flag is restored afterwards.
    `kw` goes to `batch_diagnostics` (top_k, score_threshold, cfg)."""
    modes = [(m, m.training) for m in pair_model.modules()]
    pair_model.eval()
    total: Sums = {k: [0.0, 0] for k in KEYS}
    try:
        with torch.no_grad():
            for batch in batches:
                batch = batch.to(device)
                outputs = pair_model(batch.pixel_values, batch.image_index, batch.input_ids,
                                     batch.attention_mask)
                for k, (s, c) in _batch_sums(outputs, batch.targets, **kw).items():
                    _add(total, k, s, c)
    finally:
        for m, mode in modes:
            m.training = mode
    return _means(total)


def _num(d: dict, key: str, pct: bool = False) -> str:
    v = d.get(key, math.nan)
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{100 * v:.0f}%" if pct else f"{v:.2f}"


def format_diagnostics(d: dict) -> str:
    """One short log line of a diagnostics dict (missing or NaN values print as n/a)."""
    return (
        f"matched IoU {_num(d, 'matched_iou')} (box GIoU {_num(d, 'matched_box_giou')})"
        f" · oracle IoU {_num(d, 'oracle_iou')} (hit50 {_num(d, 'oracle_hit50', True)})"
        f" · diversity {_num(d, 'query_diversity')}"
        f" · scored pos {_num(d, 'pos_scored', True)} / neg {_num(d, 'neg_scored', True)}"
        f" · presence pos {_num(d, 'presence_acc_pos', True)}"
        f" / neg {_num(d, 'presence_acc_neg', True)}"
        f" · semantic IoU {_num(d, 'semantic_iou')}"
    )
