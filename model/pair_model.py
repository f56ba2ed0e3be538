"""The training-time view of `Sam3Model`: one image's vision features shared by all its pairs.

`Sam3PairModel` runs the vision encoder once per image and the rest of the model once per pair row,
and (with `aux=True`) also returns the earlier DETR decoder layers' outputs for auxiliary losses.
With a `DenoisingConfig` it also runs the training-only denoising pass (`model.denoising`) on the
batch's targets. `forward_pairs` runs it on a `model.data.PairBatch` under the requested autocast.
"""

from __future__ import annotations

import torch
from torch import nn


class Sam3PairModel(nn.Module):
    """Wraps `Sam3Model` for training: vision features once per image, then every pair row.

    forward(pixel_values (I,3,S,S), image_index (B,), input_ids (B,L), attention_mask (B,L))
    -> dict(pred_logits, pred_boxes, pred_masks, presence_logits, semantic_seg[, aux]). With `aux`,
    "aux" holds the earlier decoder layers' logits, boxes and presence (read with forward hooks:
    `Sam3Model` computes them but returns the last layer only). A module so DDP can wrap it.
    """

    def __init__(self, model: nn.Module, aux: bool = False, denoising=None):
        super().__init__()
        self.model = model
        self.aux = aux
        self.denoising = denoising  # a model.denoising.DenoisingConfig: add the training-only DN pass

    def forward(self, pixel_values, image_index, input_ids, attention_mask, targets=None):
        vision = self.model.get_vision_features(pixel_values=pixel_values)
        if image_index.numel() != pixel_values.shape[0] or not torch.equal(
            image_index, torch.arange(pixel_values.shape[0], device=image_index.device)
        ):
            vision = _index_vision(vision, image_index)
        captured: dict = {}
        hooks = []
        if self.aux:
            dec = self.model.detr_decoder
            hooks = [
                self.model.dot_product_scoring.register_forward_hook(lambda m, i, o: captured.update(logits=o)),
                dec.box_head.register_forward_hook(
                    lambda m, i, o: captured.update(offsets=o) if o.dim() == 4 else None),
                dec.register_forward_hook(lambda m, i, o: captured.update(presence=o.presence_logits)),
            ]
        tap = None
        if self.denoising is not None and targets is not None and self.training:
            from model.denoising import DecoderTap

            tap = DecoderTap(self.model)
        try:
            out = self.model(vision_embeds=vision, input_ids=input_ids, attention_mask=attention_mask)
        finally:
            for h in hooks:
                h.remove()
            if tap is not None:
                tap.remove()
        result = {
            "pred_logits": out.pred_logits, "pred_boxes": out.pred_boxes, "pred_masks": out.pred_masks,
            "presence_logits": out.presence_logits, "semantic_seg": out.semantic_seg,
        }
        if self.aux:
            result["aux"] = _aux_outputs(captured, out.decoder_reference_boxes)
        if tap is not None:
            from model.denoising import denoising_pass, noised_boxes

            ref, valid, index = noised_boxes(targets, self.denoising)
            result["dn"] = {**denoising_pass(self.model, tap.seen, ref.to(pixel_values.device)),
                            "valid": valid, "index": index, "weight": self.denoising.weight}
        return result


def _aux_outputs(captured: dict, reference_boxes, include_last: bool = False) -> list[dict]:
    """Per earlier decoder layer: logits, xyxy boxes and presence, as Sam3Model computes the last."""
    from transformers.models.sam3.modeling_sam3 import box_cxcywh_to_xyxy

    boxes = box_cxcywh_to_xyxy((torch.logit(reference_boxes, eps=1e-3) + captured["offsets"]).sigmoid())
    layers = captured["logits"].shape[0]
    return [{"pred_logits": captured["logits"][i, ..., 0], "pred_boxes": boxes[i],
             "presence_logits": captured["presence"][i], "pred_masks": None}
            for i in range(layers if include_last else layers - 1)]


def _index_vision(vision, index):
    """Repeat a Sam3VisionEncoderOutput's per-image tensors along rows given by `index`."""
    def pick(x):
        if isinstance(x, torch.Tensor):
            return x.index_select(0, index) if x.shape[0] > 1 or index.numel() != 1 else x
        if isinstance(x, (tuple, list)):
            return type(x)(pick(v) for v in x)
        return x

    kwargs = {k: pick(v) for k, v in vision.items()}
    return type(vision)(**kwargs)


def forward_pairs(pair_model: nn.Module, batch, autocast_dtype=None):
    device_type = batch.pixel_values.device.type
    ctx = (
        torch.autocast(device_type, dtype=autocast_dtype)
        if autocast_dtype is not None else torch.autocast(device_type, enabled=False)
    )
    with ctx:
        return pair_model(batch.pixel_values, batch.image_index, batch.input_ids, batch.attention_mask,
                          batch.targets)
