"""Initialisation of a fresh model trained from scratch: the priors a 32-wide SAM 3 needs to learn fast.

transformers' init (normal, std 0.02) is made for loading pretrained weights, not for training a tiny
model from nothing. `reinit_weights` replaces it, piece by piece:
- Linear / Conv layers get PyTorch's default init (the HF init starves a 32-wide model of signal);
- `spread_queries`: the DETR queries' reference boxes on a jittered grid over the image (HF puts
  every box at the centre, so all queries start identical), embeddings N(0, 1);
- `locality_prior`: the decoder's BoxRPB MLPs start as "attend inside your reference box" (the
  SMCA / Conditional-DETR idea; random BoxRPB weights give each query the global average);
- `position_table`: the ViT's absolute position embeddings start as a 2-D sin-cos table (MAE's
  `pos_embed`), so pixel features say where they are and a dot-product mask head can tell two
  identical shapes apart.
Every change is to parameter values only: the model stays a plain `Sam3Model`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

RPB_HEAD_STRENGTHS = (10.0, 10.0, 3.0, 0.0)  # per attention head: two tight, one soft, one global


def reinit_weights(model: nn.Module, scheme: str | None, seed: int, *, locality: bool = False,
                   position_std: float | None = None, query_box: float = 0.1) -> None:
    """Re-initialise a fresh model (`scheme` "torch"; None / "hf": keep HF's init and add nothing)."""
    if scheme in (None, "", "hf"):
        return
    if scheme != "torch":
        raise ValueError(f"init must be 'torch', 'hf' or None, got {scheme!r}")
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            module.reset_parameters()
    decoder = getattr(model, "detr_decoder", None)
    if decoder is not None:
        spread_queries(decoder, seed, query_box)
        if locality:
            locality_prior(decoder)
    if position_std:
        position_table(model.vision_encoder.backbone.embeddings.position_embeddings, position_std)


@torch.no_grad()
def spread_queries(decoder: nn.Module, seed: int, box_size: float = 0.1) -> None:
    """Reference boxes on a jittered grid over the image (side `box_size`), embeddings N(0, 1)."""
    n = decoder.reference_points.num_embeddings
    gen = torch.Generator().manual_seed(seed)
    side = math.ceil(math.sqrt(n))
    cells = torch.randperm(side * side, generator=gen)[:n]
    centre = torch.stack([cells % side, cells // side], dim=1).float()
    centre = (centre + 0.25 + 0.5 * torch.rand(n, 2, generator=gen)) / side
    boxes = torch.cat([centre, torch.full((n, 2), box_size)], dim=1)
    decoder.reference_points.weight.copy_(torch.logit(boxes, eps=1e-3))
    decoder.query_embed.weight.normal_(0.0, 1.0, generator=gen)


@torch.no_grad()
def locality_prior(decoder: nn.Module, strengths: tuple[float, ...] = RPB_HEAD_STRENGTHS) -> None:
    """BoxRPB MLPs that penalise attention outside each query's reference box, per head.

    The MLP reads (slog(x - x0), slog(x - x1)) per axis; hidden unit 0 becomes ReLU(-(x - x0)) (how far
    before the box), unit 1 ReLU(x - x1) (how far past it); head h's output is -strength_h times
    their sum. The other hidden units keep their random weights, their output scaled by 0.1 (not
    zeroed: a zero output weight would leave them without gradient).
    """
    for mlp in (decoder.box_rpb_embed_x, decoder.box_rpb_embed_y):
        l1, l2 = mlp.layer1, mlp.layer2
        heads = l2.out_features
        s = torch.tensor([strengths[h % len(strengths)] for h in range(heads)], dtype=l2.weight.dtype)
        l1.weight[0] = torch.tensor([-1.0, 0.0])
        l1.weight[1] = torch.tensor([0.0, 1.0])
        l1.bias[:2] = 0.0
        l2.weight.mul_(0.1)
        l2.weight[:, 0] = -s
        l2.weight[:, 1] = -s
        l2.bias.zero_()


def sincos_table(side: int, dim: int, temperature: float = 100.0) -> torch.Tensor:
    """(side * side, dim) 2-D sin-cos position table: half the channels for y, half for x."""
    if dim % 4:
        raise ValueError(f"sin-cos positions need a width divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    grid = torch.arange(side, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    parts = []
    for coord in (yy.flatten(), xx.flatten()):
        angles = coord[:, None] * omega[None, :]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()


@torch.no_grad()
def position_table(param: nn.Parameter, std: float, temperature: float = 100.0) -> None:
    """Fill a ViT `position_embeddings` (1, side*side, dim) with a sin-cos table of this std."""
    _, n, dim = param.shape
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"position embeddings of {n} patches are not a square grid")
    table = sincos_table(side, dim, temperature)
    param.copy_((table * (std / table.std())).reshape(1, n, dim).to(param.dtype))
