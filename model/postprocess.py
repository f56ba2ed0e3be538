"""Post-processing of SAM 3 outputs on the model's device: scores, boxes, masks → COCO RLE, summaries.

- ``masks_to_rle(masks)``: binary ``(N, H, W)`` masks (any device) → COCO compressed RLE dicts, the
  same strings as ``pycocotools.mask.encode`` (tested). Run boundaries are found on the device, so
  only a few bytes per mask cross to the host, and pycocotools is not needed at run time.
- ``xyxy_to_pixel_xywh``: SAM 3's normalised xyxy boxes → pixel ``[x, y, w, h]`` at original size.
- ``semantic_summary``: what the MV/EV verifiers use from the semantic-segmentation head, per pair
  (all fractions of the image area, computed at the mask head's resolution):
  ``semantic_area`` (semantic prob > 0.5), ``semantic_max``, ``instance_area`` (union of the kept
  instance masks), ``unexplained_area`` (semantic-positive but in no kept instance: evidence of
  missed instances for EV), ``explained_fraction`` (share of the semantic area the instances
  cover; 1 when the semantic area is empty); and per kept instance ``semantic_agreement`` (mean
  semantic prob inside the instance mask: evidence for MV).
- ``nms_per_pair``: box NMS within each pair, for models trained with one-to-many matching.
"""

from __future__ import annotations

import numpy as np
import torch


def _encode_counts(counts: list[np.ndarray]) -> list[str]:
    """COCO's compressed strings for run-length counts (pycocotools ``rleToString``), vectorised.

    Each count (minus the count two before it, from a mask's fourth count on) is written as 5-bit
    groups, low first, ``0x20`` marking "more follows", offset by 48 into printable ASCII.
    """
    lengths = np.array([len(c) for c in counts])
    c = np.concatenate(counts).astype(np.int64)
    local = np.arange(c.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    x = c.copy()
    later = np.nonzero(local >= 3)[0]
    x[later] -= c[later - 2]
    shifts = 5 * np.arange(8, dtype=np.int64)
    groups = (x[:, None] >> shifts) & 0x1F
    rest = x[:, None] >> (shifts + 5)
    more = np.where(groups & 0x10, rest != -1, rest != 0)
    nchars = np.argmax(~more, axis=1) + 1
    chars = groups | (more.astype(np.int64) << 5)
    text = (chars[np.arange(8)[None, :] < nchars[:, None]] + 48).astype(np.uint8).tobytes().decode("ascii")
    ends = np.cumsum(np.add.reduceat(nchars, np.cumsum(lengths) - lengths))
    return [text[a:b] for a, b in zip(np.concatenate(([0], ends[:-1])), ends)]


def masks_to_rle(masks: torch.Tensor) -> tuple[list[dict], list[int]]:
    """Binary masks ``(N, H, W)`` → (COCO compressed RLE dicts, pixel areas)."""
    n, h, w = masks.shape
    if n == 0:
        return [], []
    flat = masks.transpose(1, 2).reshape(n, h * w)  # COCO runs go down columns (Fortran order)
    change = (flat[:, 1:] != flat[:, :-1]).nonzero()
    first = flat[:, 0]
    change, first = change.cpu().numpy(), first.cpu().numpy()
    starts = np.searchsorted(change[:, 0], np.arange(n + 1))
    all_counts, areas = [], []
    for i in range(n):
        bounds = np.concatenate(([0], change[starts[i]:starts[i + 1], 1] + 1, [h * w]))
        counts = np.diff(bounds)
        if first[i]:
            counts = np.concatenate(([0], counts))
        all_counts.append(counts)
        areas.append(int(counts[1::2].sum()))
    return [{"size": [h, w], "counts": s} for s in _encode_counts(all_counts)], areas


def upsample_masks(logits: torch.Tensor, height: int, width: int, threshold: float = 0.5,
                   chunk: int = 32) -> torch.Tensor:
    """Low-res mask logits ``(N, h, w)`` → binary masks ``(N, height, width)`` (bilinear on probs)."""
    out = []
    for i in range(0, logits.shape[0], chunk):
        probs = logits[i:i + chunk].float().sigmoid()[None]
        up = torch.nn.functional.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
        out.append(up[0] > threshold)
    return torch.cat(out) if out else torch.zeros((0, height, width), dtype=torch.bool, device=logits.device)


def xyxy_to_pixel_xywh(boxes: torch.Tensor, width, height) -> torch.Tensor:
    """Normalised ``(x0, y0, x1, y1)`` → pixel ``[x, y, w, h]``, clipped to the image.

    ``width``/``height`` are numbers or tensors broadcasting against ``boxes[..., 0]`` (e.g. ``(N, 1)``
    for boxes ``(N, 4)`` of images of different sizes).
    """
    w = torch.as_tensor(width, dtype=torch.float32, device=boxes.device)
    h = torch.as_tensor(height, dtype=torch.float32, device=boxes.device)
    b = boxes.float()
    x0, x1 = (b[..., 0::2] * w).clamp(min=0).minimum(w).unbind(-1)
    y0, y1 = (b[..., 1::2] * h).clamp(min=0).minimum(h).unbind(-1)
    return torch.stack([x0, y0, x1 - x0, y1 - y0], dim=-1)


def semantic_summary(semantic_logits: torch.Tensor, kept_logits: torch.Tensor,
                     kept_pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair summary ``(B, 5)`` and per-kept-instance agreement ``(N,)`` (see module docstring).

    ``semantic_logits`` is ``(B, h, w)``; ``kept_logits`` ``(N, h, w)`` are the kept instances' mask
    logits and ``kept_pair`` ``(N,)`` the pair (row of B) each belongs to.
    Columns: semantic_area, semantic_max, instance_area, unexplained_area, explained_fraction (``SUMMARY_KEYS``).
    """
    sem = semantic_logits.float().sigmoid()
    sem_bin = sem > 0.5
    inst_bin = kept_logits > 0  # prob > 0.5
    union = torch.zeros_like(sem)
    if inst_bin.shape[0]:
        union.index_add_(0, kept_pair, inst_bin.float())
    union = union > 0
    sem_area = sem_bin.float().mean(dim=(1, 2))
    inside = (sem_bin & union).float().sum(dim=(1, 2))
    explained = torch.where(sem_bin.any(dim=(1, 2)), inside / sem_bin.float().sum(dim=(1, 2)).clamp(min=1),
                            torch.ones_like(inside))
    summary = torch.stack([
        sem_area, sem.amax(dim=(1, 2)), union.float().mean(dim=(1, 2)),
        (sem_bin & ~union).float().mean(dim=(1, 2)), explained,
    ], dim=1)
    if inst_bin.shape[0]:
        agree = (inst_bin.float() * sem[kept_pair]).sum(dim=(1, 2)) / inst_bin.float().sum(dim=(1, 2)).clamp(min=1)
    else:
        agree = torch.zeros(0, device=sem.device)
    return summary, agree


SUMMARY_KEYS = ("semantic_area", "semantic_max", "instance_area", "unexplained_area", "explained_fraction")


def nms_per_pair(boxes: torch.Tensor, scores: torch.Tensor, pair_index: np.ndarray, iou: float) -> np.ndarray:
    """Indices (ascending) of the instances box NMS keeps, pair by pair (torchvision's batched_nms).

    `boxes` (N, 4) xyxy, `scores` (N,), `pair_index` (N,) the pair each instance belongs to.
    """
    from torchvision.ops import batched_nms

    keep = batched_nms(boxes.float(), scores.float().to(boxes.device),
                       torch.as_tensor(pair_index, device=boxes.device), float(iou))
    return np.sort(keep.cpu().numpy())
