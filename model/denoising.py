"""Denoising queries (DN-DETR) for SAM 3 training: a training-only second pass of the DETR decoder.

Hungarian matching gives each ground-truth instance one query per step, and a query far from its
instance first has to learn to find it. Denoising queries skip that: each instance gets `copies`
queries whose reference boxes are jittered copies of its own box (centre moved by up to
`box_noise` x half its size, sides scaled by up to 1 +- `box_noise`), and they are trained, with no
matching, to give back that instance's box (every decoder layer) and mask. That trains the path the
learned queries need, "read what is inside this box", with several positives per instance per step.

The pass reuses the decoder's own modules (layers, `ref_point_head`, `position_encoding`, BoxRPB,
`box_head`, `output_layer_norm`, the mask embedder and the pixel embeddings of the same forward,
read with hooks), adds no parameter, and never runs at inference: the model stays a plain
`Sam3Model`. Denoising queries start with zero content and sit in their own pass, so they never
attend to (or leak the answer to) the matching queries. Query padding rows are excluded from losses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class DenoisingConfig:
    copies: int = 2  # noised queries per ground-truth instance
    box_noise: float = 0.4  # DN-DETR's lambda
    weight: float = 1.0  # scale of the denoising losses (each term keeps its LossConfig weight)
    max_queries: int = 96  # per pair (instances beyond copies x this are left out)

    def to_dict(self) -> dict:
        return asdict(self)


class DecoderTap:
    """Forward hooks that keep what one `Sam3Model` forward gave the DETR decoder and the mask head."""

    def __init__(self, model: nn.Module):
        self.seen: dict = {}
        self.handles = [
            model.detr_decoder.register_forward_pre_hook(self._decoder_inputs, with_kwargs=True),
            model.mask_decoder.instance_projection.register_forward_hook(self._pixels),
        ]

    def _decoder_inputs(self, module, args, kwargs):
        self.seen["decoder"] = kwargs

    def _pixels(self, module, args, output):
        self.seen["instance_embeds"] = output

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def noised_boxes(targets, cfg: DenoisingConfig, generator: torch.Generator | None = None):
    """Reference boxes (B, M, 4) cxcywh in (0, 1), a validity mask (B, M) and each query's instance (B, M)."""
    rows = []
    for t in targets:
        n = min(t.num, cfg.max_queries // max(1, cfg.copies))
        xyxy = t.boxes[:n].float().cpu().repeat(cfg.copies, 1)
        cxcy, wh = (xyxy[:, :2] + xyxy[:, 2:]) / 2, (xyxy[:, 2:] - xyxy[:, :2]).clamp(min=1e-3)
        shift = (torch.rand(len(xyxy), 2, generator=generator) * 2 - 1) * cfg.box_noise * wh / 2
        scale = 1 + (torch.rand(len(xyxy), 2, generator=generator) * 2 - 1) * cfg.box_noise
        boxes = torch.cat([cxcy + shift, wh * scale], dim=1).clamp(1e-3, 1 - 1e-3)
        rows.append((boxes, torch.arange(n).repeat(cfg.copies)))
    m = max(1, max(len(b) for b, _ in rows))
    ref = torch.full((len(rows), m, 4), 0.5)
    valid = torch.zeros(len(rows), m, dtype=torch.bool)
    index = torch.zeros(len(rows), m, dtype=torch.long)
    for r, (boxes, idx) in enumerate(rows):
        ref[r, : len(boxes)], valid[r, : len(boxes)], index[r, : len(boxes)] = boxes, True, idx
    return ref, valid, index


def denoising_pass(model: nn.Module, seen: dict, ref: Tensor) -> dict:
    """Run the decoder layers on denoising queries at `ref` (B, M, 4) cxcywh; per-layer xyxy boxes
    (L, B, M, 4) and the last layer's mask logits (B, M, h, w)."""
    from transformers.masking_utils import create_bidirectional_mask
    from transformers.models.sam3.modeling_sam3 import box_cxcywh_to_xyxy

    dec, kw = model.detr_decoder, seen["decoder"]
    vision, text = kw["vision_features"], kw["text_features"]
    b, m = ref.shape[:2]
    ref = ref.to(vision)
    hidden = torch.cat([dec.presence_token.weight.expand(b, 1, -1), vision.new_zeros(b, m, dec.hidden_size)], dim=1)
    text_mask = None
    if kw.get("text_mask") is not None:
        text_mask = create_bidirectional_mask(config=dec.config, inputs_embeds=hidden,
                                              attention_mask=kw["text_mask"], encoder_hidden_states=text)
    shapes = kw.get("spatial_shapes")
    boxes, last = [], None
    for layer in dec.layers:
        query_pos = dec.ref_point_head(dec.position_encoding.encode_boxes(ref))
        rpb = None
        if shapes is not None and shapes.shape[0] == 1:
            rpb = F.pad(dec._get_rpb_matrix(ref, (shapes[0, 0], shapes[0, 1])), (0, 0, 1, 0), value=0)
        hidden = layer(hidden, query_pos=query_pos, text_features=text, vision_features=vision,
                       vision_pos_encoding=kw["vision_pos_encoding"], text_cross_attn_mask=text_mask,
                       vision_cross_attn_mask=rpb)
        last = dec.output_layer_norm(hidden[:, 1:])
        new_ref = (torch.logit(ref, eps=1e-3) + dec.box_head(last)).sigmoid()
        boxes.append(box_cxcywh_to_xyxy(new_ref))
        ref = new_ref.detach()
    masks = torch.einsum("bqc,bchw->bqhw", model.mask_decoder.mask_embedder(last), seen["instance_embeds"])
    return {"pred_boxes": torch.stack(boxes), "pred_masks": masks}


def denoising_loss(dn: dict, targets, loss_cfg, mask_size: int) -> dict[str, Tensor]:
    """Box L1 + GIoU (every layer) and mask BCE + dice (last layer) of the denoising queries;
    `loss_dn` is their weighted sum, scaled by the pass's `DenoisingConfig.weight` (`dn["weight"]`)."""
    from model.losses import _cap, dice_loss, elementwise_giou, mask_bce, resize_masks

    valid, index = dn["valid"], dn["index"]
    rows, cols = valid.nonzero(as_tuple=True)
    boxes_out = dn["pred_boxes"]
    zero = boxes_out.sum() * 0.0
    if rows.numel() == 0:
        return {"loss_dn": zero, "loss_dn_giou": zero.detach(), "loss_dn_mask_dice": zero.detach()}
    device = boxes_out.device
    gt_idx = index[rows, cols]
    tgt_boxes = torch.stack([targets[r].boxes[i] for r, i in zip(rows.tolist(), gt_idx.tolist())]).to(device).float()
    n = float(rows.numel())
    l1 = giou = zero
    for layer_boxes in boxes_out:
        src = layer_boxes[rows.to(device), cols.to(device)].float()
        l1 = l1 + F.l1_loss(src, tgt_boxes, reduction="none").sum() / n
        giou = giou + (1 - elementwise_giou(src, tgt_boxes)).sum() / n
    masks = dn["pred_masks"]
    size = _cap(tuple(masks.shape[-2:]), mask_size)
    src_m = resize_masks(masks[rows.to(device), cols.to(device)].float(), size).flatten(1)
    tgt_m = torch.stack([resize_masks(targets[r].masks[i : i + 1].to(device), size)[0]
                         for r, i in zip(rows.tolist(), gt_idx.tolist())]).flatten(1)
    bce = mask_bce(src_m, tgt_m, loss_cfg.mask_fg_balance).sum() / n
    dice = dice_loss(src_m, tgt_m).sum() / n
    total = dn.get("weight", 1.0) * (loss_cfg.weight_box_l1 * l1 + loss_cfg.weight_giou * giou
             + loss_cfg.weight_mask_bce * bce + loss_cfg.weight_mask_dice * dice)
    return {"loss_dn": total, "loss_dn_giou": (giou / len(boxes_out)).detach(), "loss_dn_mask_dice": dice.detach()}
