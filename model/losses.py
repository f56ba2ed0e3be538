"""SAM 3-style (DETR-like) training losses: Hungarian matching and the loss terms.

`Sam3Model` outputs (transformers, checked in its source): `pred_logits` (B, Q) per-query
classification logits, `pred_boxes` (B, Q, 4) **xyxy normalised to [0, 1]**, `pred_masks`
(B, Q, h, w) mask logits at 4x the patch grid, `presence_logits` (B, 1).

One batch row is one image-phrase pair. Its target is a `PairTarget`: `boxes` (n, 4) xyxy
normalised and `masks` (n, H, W) binary at any size (resized here to the prediction grid); n = 0 is
a negative pair. Per positive row the queries are matched one-to-one to the instances
(scipy `linear_sum_assignment`) on a focal-style classification cost, box L1, GIoU and a mask cost
(dice + BCE on downsampled masks). Losses:
- sigmoid focal classification on all queries (matched queries -> 1, the rest -> 0), of negative
  pairs too unless `query_loss_on_negatives` is off (SAM 3 leaves negatives to presence);
- box L1 + GIoU, mask BCE + dice on matched queries only;
- presence BCE on `presence_logits` (target: the pair has at least one instance).
Negative rows therefore train only the classification and presence terms.

Pure torch + scipy (no webdataset, pycocotools or ray) so the GPU memory bench can import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor


@dataclass
class LossConfig:
    """Loss weights, matcher cost weights and focal parameters (all configurable)."""

    weight_cls: float = 2.0
    weight_box_l1: float = 5.0
    weight_giou: float = 2.0
    weight_mask_bce: float = 5.0
    weight_mask_dice: float = 5.0
    weight_presence: float = 1.0
    weight_aux: float = 1.0  # scale of each earlier decoder layer's loss (when outputs carry "aux")
    # semantic_seg head (B, 1, h, w) vs the union of the pair's masks: BCE + dice, positives only
    # unless semantic_on_negatives (then negatives get an all-zero target)
    weight_semantic: float = 0.0
    # mask/semantic BCE: None = mean over all pixels; a value w = w * mean over object pixels +
    # (1 - w) * mean over background (objects are a few % of the image: a plain mean drives every
    # logit negative, where the dice gradient vanishes)
    mask_fg_balance: float | None = None
    semantic_on_negatives: bool = False
    # classification loss on the queries of negative pairs (all targets 0). SAM 3 leaves negatives
    # to the presence token (its query loss is multiplied by "the pair has GT"), so queries learn
    # p(match | present) and are not pushed down on every pair whose phrase is absent
    query_loss_on_negatives: bool = True
    cost_cls: float = 2.0
    cost_box_l1: float = 5.0
    cost_giou: float = 2.0
    cost_mask_bce: float = 2.0
    cost_mask_dice: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    # queries matched to each instance: 1 is DETR's one-to-one matching; k > 1 matches every
    # instance to its k cheapest distinct queries (one-to-many: more positives per step, so scores
    # and masks learn faster; duplicates are then removed by the predictor's mask NMS)
    queries_per_instance: int = 1
    # Masks are compared at most at this side (both matching and loss) to bound memory.
    mask_cost_size: int = 32
    mask_loss_size: int = 128

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PairTarget:
    """Ground truth of one image-phrase pair: n instances (n = 0 for a negative)."""

    boxes: Tensor  # (n, 4) xyxy normalised
    masks: Tensor  # (n, H, W) {0, 1}
    extra: dict = field(default_factory=dict)

    @property
    def num(self) -> int:
        return int(self.boxes.shape[0])


# ---------------------------------------------------------------- box helpers


def box_area(boxes: Tensor) -> Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def pairwise_giou(a: Tensor, b: Tensor) -> Tensor:
    """Generalised IoU between every box of a (N, 4) and every box of b (M, 4), xyxy -> (N, M)."""
    area_a, area_b = box_area(a), box_area(b)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = inter / union.clamp(min=1e-7)
    lt_c = torch.min(a[:, None, :2], b[None, :, :2])
    rb_c = torch.max(a[:, None, 2:], b[None, :, 2:])
    hull = (rb_c - lt_c).clamp(min=0).prod(-1)
    return iou - (hull - union) / hull.clamp(min=1e-7)


def elementwise_giou(a: Tensor, b: Tensor) -> Tensor:
    """GIoU of matched box pairs a[i], b[i] (N, 4) xyxy -> (N,)."""
    area_a, area_b = box_area(a), box_area(b)
    lt = torch.max(a[:, :2], b[:, :2])
    rb = torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_a + area_b - inter
    iou = inter / union.clamp(min=1e-7)
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).clamp(min=0).prod(-1)
    return iou - (hull - union) / hull.clamp(min=1e-7)


# ---------------------------------------------------------------- mask helpers


def resize_masks(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize (n, H, W) masks or logits to `size` (area-average down, bilinear up); float out."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *size), dtype=torch.float32)
    m = masks.float()[:, None]
    if tuple(m.shape[-2:]) == tuple(size):
        return m[:, 0]
    if m.shape[-2] >= size[0] and m.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(m, size)[:, 0]
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[:, 0]


def _cap(size: tuple[int, int], cap: int) -> tuple[int, int]:
    h, w = size
    if max(h, w) <= cap:
        return (h, w)
    scale = cap / max(h, w)
    return (max(1, round(h * scale)), max(1, round(w * scale)))


def pairwise_mask_costs(pred_logits: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """Dice and BCE costs between Q predicted mask logits (Q, P) and n GT masks (n, P) -> (Q, n)."""
    prob = pred_logits.sigmoid()
    numer = 2 * prob @ gt.T
    denom = prob.sum(-1)[:, None] + gt.sum(-1)[None, :]
    dice = 1 - (numer + 1) / (denom + 1)
    pos = F.binary_cross_entropy_with_logits(pred_logits, torch.ones_like(pred_logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(pred_logits, torch.zeros_like(pred_logits), reduction="none")
    bce = (pos @ gt.T + neg @ (1 - gt).T) / pred_logits.shape[-1]
    return dice, bce


def mask_bce(pred_logits: Tensor, gt: Tensor, fg_balance: float | None) -> Tensor:
    """Per-mask BCE (N, P) -> (N,): plain mean, or foreground/background-balanced means."""
    bce = F.binary_cross_entropy_with_logits(pred_logits, gt, reduction="none")
    if fg_balance is None:
        return bce.mean(-1)
    fg = (bce * gt).sum(-1) / gt.sum(-1).clamp(min=1)
    bg = (bce * (1 - gt)).sum(-1) / (1 - gt).sum(-1).clamp(min=1)
    return fg_balance * fg + (1 - fg_balance) * bg


def dice_loss(pred_logits: Tensor, gt: Tensor) -> Tensor:
    """Per-mask dice loss (N, P) logits vs (N, P) targets -> (N,)."""
    prob = pred_logits.sigmoid()
    numer = 2 * (prob * gt).sum(-1)
    denom = prob.sum(-1) + gt.sum(-1)
    return 1 - (numer + 1) / (denom + 1)


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    """Elementwise sigmoid focal loss (RetinaNet)."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


# ---------------------------------------------------------------- matching


@torch.no_grad()
def match_costs(
    logits: Tensor, boxes: Tensor, masks: Tensor | None, target: PairTarget, cfg: LossConfig
) -> Tensor:
    """The (Q, n) matching cost matrix of one pair (lower is better)."""
    logits, boxes = logits.float(), boxes.float()
    prob = logits.sigmoid()
    a, g = cfg.focal_alpha, cfg.focal_gamma
    neg = (1 - a) * prob**g * -(1 - prob + 1e-8).log()
    pos = a * (1 - prob) ** g * -(prob + 1e-8).log()
    n = target.num
    cost = cfg.cost_cls * (pos - neg)[:, None].expand(-1, n)
    tb = target.boxes.to(boxes)
    cost = cost + cfg.cost_box_l1 * torch.cdist(boxes, tb, p=1)
    cost = cost - cfg.cost_giou * pairwise_giou(boxes, tb)
    if masks is not None and (cfg.cost_mask_bce or cfg.cost_mask_dice):
        size = _cap(tuple(masks.shape[-2:]), cfg.mask_cost_size)
        pm = resize_masks(masks.float(), size).flatten(1)
        gm = resize_masks(target.masks.to(masks.device), size).flatten(1)
        dice, bce = pairwise_mask_costs(pm, gm)
        cost = cost + cfg.cost_mask_dice * dice + cfg.cost_mask_bce * bce
    return cost


@torch.no_grad()
def hungarian_match(outputs: dict, targets: list[PairTarget], cfg: LossConfig) -> list[tuple[Tensor, Tensor]]:
    """Per batch row: (query indices, target indices) of the optimal assignment.

    One-to-one (`queries_per_instance` 1), or each instance given to k distinct queries (the cost
    matrix tiled k times; k shrinks when the pair has more than Q / k instances).
    """
    result = []
    masks = outputs.get("pred_masks")
    for b, target in enumerate(targets):
        if target.num == 0:
            empty = torch.zeros(0, dtype=torch.long)
            result.append((empty, empty))
            continue
        cost = match_costs(
            outputs["pred_logits"][b], outputs["pred_boxes"][b],
            None if masks is None else masks[b], target, cfg,
        )
        cost = cost.cpu().numpy()
        k = max(1, min(cfg.queries_per_instance, cost.shape[0] // max(1, target.num)))
        rows, cols = linear_sum_assignment(np.tile(cost, (1, k)) if k > 1 else cost)
        cols = cols % target.num
        result.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
    return result


# ---------------------------------------------------------------- the loss


def semantic_loss(semantic: Tensor, targets: list[PairTarget], on_negatives: bool, cap: int,
                  fg_balance: float | None = None) -> Tensor:
    """BCE + dice of the semantic map (B, 1, h, w) against the union of each pair's GT masks."""
    size = _cap(tuple(semantic.shape[-2:]), cap)
    rows = [b for b, t in enumerate(targets) if t.num or on_negatives]
    if not rows:
        return semantic.float().sum() * 0.0
    pred = resize_masks(semantic[rows, 0].float(), size).flatten(1)
    tgt = torch.stack([
        resize_masks(targets[b].masks.to(semantic.device), size).amax(0) if targets[b].num
        else semantic.new_zeros(size, dtype=torch.float32)
        for b in rows
    ]).flatten(1)
    return (mask_bce(pred, tgt, fg_balance) + dice_loss(pred, tgt)).mean()


def _get(outputs, name):
    return outputs[name] if isinstance(outputs, dict) else getattr(outputs, name)


def sam3_loss(outputs, targets: list[PairTarget], cfg: LossConfig | None = None) -> dict[str, Tensor]:
    """All loss terms for a batch of pairs; `loss` is the weighted total, the rest are unweighted.

    `outputs` is a `Sam3ImageSegmentationOutput` or a dict with the same keys.
    """
    cfg = cfg or LossConfig()
    keys = ("pred_logits", "pred_boxes", "pred_masks", "presence_logits", "semantic_seg")
    out = {k: (outputs.get(k) if isinstance(outputs, dict) else getattr(outputs, k, None)) for k in keys}
    logits = out["pred_logits"].float()
    B, Q = logits.shape
    if len(targets) != B:
        raise ValueError(f"got {len(targets)} targets for a batch of {B} predictions")
    device = logits.device
    matches = hungarian_match(out, targets, cfg)
    # normaliser: instances, or matched queries when one-to-many matching gives each several
    num_gt = max(sum(t.num for t in targets), sum(int(qi.numel()) for qi, _ in matches), 1)

    # classification: focal on every query (matched -> 1, the rest -> 0), of negative pairs too
    # unless `query_loss_on_negatives` is off
    cls_target = torch.zeros_like(logits)
    for b, (qi, _) in enumerate(matches):
        cls_target[b, qi.to(device)] = 1.0
    focal = sigmoid_focal_loss(logits, cls_target, cfg.focal_alpha, cfg.focal_gamma)
    if not cfg.query_loss_on_negatives:
        focal = focal * torch.tensor([float(t.num > 0) for t in targets], device=device)[:, None]
    loss_cls = focal.sum() / num_gt

    # presence: does the pair have at least one instance
    presence = out["presence_logits"]
    zero = logits.sum() * 0.0
    if presence is not None:
        pres_target = torch.tensor([float(t.num > 0) for t in targets], device=device)
        loss_presence = F.binary_cross_entropy_with_logits(presence.float().reshape(B, -1)[:, 0], pres_target)
    else:
        loss_presence = zero

    # boxes and masks on matched queries of positive pairs
    b_idx = torch.cat([torch.full_like(qi, b) for b, (qi, _) in enumerate(matches)]).to(device)
    q_idx = torch.cat([qi for qi, _ in matches]).to(device)
    if q_idx.numel() == 0:
        loss_l1 = loss_giou = loss_mask_bce = loss_mask_dice = zero
    else:
        src_boxes = out["pred_boxes"].float()[b_idx, q_idx]
        tgt_boxes = torch.cat([t.boxes[ti].to(device) for t, (_, ti) in zip(targets, matches)]).float()
        loss_l1 = F.l1_loss(src_boxes, tgt_boxes, reduction="none").sum() / num_gt
        loss_giou = (1 - elementwise_giou(src_boxes, tgt_boxes)).sum() / num_gt
        pred_masks = out["pred_masks"]
        if pred_masks is None:
            loss_mask_bce = loss_mask_dice = zero
        else:
            size = _cap(tuple(pred_masks.shape[-2:]), cfg.mask_loss_size)
            src = resize_masks(pred_masks[b_idx, q_idx].float(), size).flatten(1)
            tgt = torch.cat(
                [resize_masks(t.masks[ti].to(device), size) for t, (_, ti) in zip(targets, matches) if ti.numel()]
            ).flatten(1)
            loss_mask_bce = mask_bce(src, tgt, cfg.mask_fg_balance).sum() / num_gt
            loss_mask_dice = dice_loss(src, tgt).sum() / num_gt

    loss_semantic = zero
    if cfg.weight_semantic and out["semantic_seg"] is not None:
        loss_semantic = semantic_loss(out["semantic_seg"], targets, cfg.semantic_on_negatives, cfg.mask_loss_size,
                                      cfg.mask_fg_balance)

    total = (
        cfg.weight_semantic * loss_semantic
        + cfg.weight_cls * loss_cls
        + cfg.weight_box_l1 * loss_l1
        + cfg.weight_giou * loss_giou
        + cfg.weight_mask_bce * loss_mask_bce
        + cfg.weight_mask_dice * loss_mask_dice
        + cfg.weight_presence * loss_presence
    )
    loss_aux = zero
    aux = outputs.get("aux") if isinstance(outputs, dict) else None
    if aux and cfg.weight_aux:
        for layer in aux:
            loss_aux = loss_aux + sam3_loss(layer, targets, cfg)["loss"]
        total = total + cfg.weight_aux * loss_aux
    return {
        "loss": total,
        "loss_aux": loss_aux.detach(),
        "loss_cls": loss_cls.detach(),
        "loss_box_l1": loss_l1.detach(),
        "loss_giou": loss_giou.detach(),
        "loss_mask_bce": loss_mask_bce.detach(),
        "loss_mask_dice": loss_mask_dice.detach(),
        "loss_presence": loss_presence.detach(),
        "loss_semantic": loss_semantic.detach(),
        "num_matched": torch.tensor(int(q_idx.numel())),
    }
