"""The training loop: `train(config, shards, out_dir)` fits a SAM 3 model on WebDataset shards.

AdamW with linear warm-up then cosine decay, gradient clipping, SAM 3-style losses
(`model.losses`), checkpoints every N steps (model + optimizer + scheduler + step + RNG states,
written atomically: temp dir then rename) and resume from the last checkpoint (the data stream is
deterministic for a seed and fast-forwarded to the resumed step). Memory options for real-size
fine-tuning: freeze the vision and/or text encoders, bf16 autocast on CUDA, gradient
checkpointing (the ViT and CLIP layers; `Sam3Model` itself does not declare support).

The same `run_training` core serves the single-process loop here and each Ray Train worker
(`model.ray_train`), through a few hooks. Imports of webdataset/pycocotools happen only when data is
read, so `build_model`, `forward_pairs` and the step helpers work on a bare GPU image.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path

import torch
from torch import nn

from model.checkpoints import (  # noqa: F401 - re-exported for callers
    CKPT_DIR,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from model.init import reinit_weights, spread_queries  # noqa: F401 - re-exported for callers
from model.losses import LossConfig, sam3_loss
from model.pair_model import Sam3PairModel, forward_pairs

log = logging.getLogger("sam3_engine.train")
NMS_IOU = 0.5  # box NMS of models trained with one-to-many matching (saved with the model)


@dataclass
class TrainConfig:
    """Everything a training run needs besides its shards and output folder."""

    preset: str = "tiny"
    init_from: str | None = None  # a save_pretrained dir to fine-tune instead of a fresh preset
    model_overrides: dict = field(default_factory=dict)  # "detr_decoder_config.num_queries": 16
    # re-initialise a fresh preset's Linear/Conv layers with PyTorch's defaults ("torch"): the HF
    # init (normal, std 0.02) starves a 32-wide model of signal and it learns several times slower
    init: str | None = "torch"
    locality_prior: bool = False  # BoxRPB starts as "attend inside your reference box" (model.init)
    position_std: float | None = None  # ViT positions start as a 2-D sin-cos table of this std
    query_box: float = 0.1  # side of the fresh queries' reference boxes (spread on a grid)
    freeze_reference_points: bool = False  # keep the queries' reference boxes where init put them
    seed: int = 0
    steps: int = 200
    max_time_s: float | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    freeze_vision: bool = False
    freeze_text: bool = False
    bf16: bool = False  # autocast to bfloat16 (CUDA only; ignored on CPU)
    gradient_checkpointing: bool = False
    # denoising queries (model.denoising.DenoisingConfig fields; None: off): a training-only decoder
    # pass from jittered GT boxes that trains box and mask reading without matching
    denoising: dict | None = None
    aux_loss: bool = False  # also supervise the earlier DETR decoder layers (classification, boxes, presence)
    device: str = "auto"
    log_every: int = 10
    max_text_len: int = 32
    sampling: dict = field(default_factory=dict)  # SamplingConfig fields
    loss: dict = field(default_factory=dict)  # LossConfig fields

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; known: {sorted(names)}")
        return cls(**data)

    def loss_config(self) -> LossConfig:
        return LossConfig(**self.loss)

    def sampling_config(self):
        from model.data import SamplingConfig

        return SamplingConfig(**{"seed": self.seed, **self.sampling})


@dataclass
class TrainResult:
    out_dir: str
    model_dir: str | None
    step: int
    resumed_from: int
    history: list[dict]
    seconds: float


# ---------------------------------------------------------------- model set-up


def _set_nested(config, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    obj = config
    for name in parents:
        obj = getattr(obj, name)
    if not hasattr(obj, leaf):
        raise ValueError(f"model override {dotted!r}: {type(obj).__name__} has no field {leaf!r}")
    setattr(obj, leaf, value)


def build_model(cfg: TrainConfig):
    """A `LoadedModel` (model, tokenizer, image_size, ...) from the preset or `init_from`.

    `model_overrides` apply to a fresh tiny preset: `num_queries` or dotted `Sam3Config` fields
    (e.g. `"detr_decoder_config.num_layers": 3`).
    """
    from model import presets

    if cfg.init_from:
        if cfg.model_overrides:
            raise ValueError("model_overrides only apply to a fresh preset, not init_from")
        return presets.load_model(cfg.init_from, seed=cfg.seed)
    if cfg.preset == "full":
        return presets.build_full(seed=cfg.seed)
    if cfg.preset != "tiny":
        return presets.load_model(cfg.preset, seed=cfg.seed)
    overrides = dict(cfg.model_overrides)
    num_queries = int(overrides.pop("num_queries", presets.TINY_NUM_QUERIES))
    size = {k: int(overrides.pop(k)) for k in ("hidden", "vit_layers", "decoder_layers") if k in overrides}
    if not overrides and not size:
        loaded = presets.build_tiny(seed=cfg.seed, num_queries=num_queries)
        _reinit(loaded.model, cfg)
        return loaded
    from transformers import Sam3Model

    from model.tokenizer import build_tokenizer

    tok = build_tokenizer(max_length=presets.MAX_TEXT_LEN)
    config = presets.tiny_config(len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, num_queries, **size)
    for key, value in overrides.items():
        _set_nested(config, key, value)
    torch.manual_seed(cfg.seed)
    model = Sam3Model(config).eval()
    _reinit(model, cfg)
    return presets.LoadedModel(model=model, tokenizer=tok, image_size=presets._config_image_size(config),
                               preset="tiny")


def _reinit(model: nn.Module, cfg: TrainConfig) -> None:
    reinit_weights(model, cfg.init, cfg.seed, locality=cfg.locality_prior, position_std=cfg.position_std,
                   query_box=cfg.query_box)


def denoising_config(cfg: TrainConfig):
    if cfg.denoising is None:
        return None
    from model.denoising import DenoisingConfig

    return DenoisingConfig(**cfg.denoising)


def apply_freezing(model: nn.Module, freeze_vision: bool, freeze_text: bool) -> None:
    if freeze_vision:
        model.vision_encoder.requires_grad_(False)
    if freeze_text:
        model.text_encoder.requires_grad_(False)


def enable_gradient_checkpointing(model: nn.Module) -> int:
    """Checkpoint every transformers `GradientCheckpointingLayer` (ViT and CLIP layers); returns count.

    `Sam3Model.supports_gradient_checkpointing` is False (transformers 5.24), so
    `gradient_checkpointing_enable()` raises; its ViT layers do support it, so we switch them on.
    """
    from torch.utils.checkpoint import checkpoint
    from transformers.modeling_layers import GradientCheckpointingLayer

    if getattr(model, "supports_gradient_checkpointing", False):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    func = partial(checkpoint, use_reentrant=False)
    n = 0
    for module in model.modules():
        if isinstance(module, GradientCheckpointingLayer):
            module.gradient_checkpointing = True
            module._gradient_checkpointing_func = func
            n += 1
    return n


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "embed" in name or "norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, foreach=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_factor, cfg=cfg))
    return optimizer, scheduler


def lr_factor(step: int, cfg: TrainConfig, progress: float | None = None) -> float:
    """Linear warm-up to 1, then cosine decay to `min_lr_ratio` at `cfg.steps`.

    `progress` (e.g. the share of a time budget spent) moves the decay on when it is ahead of the steps.
    """
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = max((step - cfg.warmup_steps) / span, progress or 0.0)
    progress = min(1.0, max(0.0, progress))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train_step(pair_model, batch, optimizer, scheduler, cfg: TrainConfig, loss_cfg: LossConfig,
               params: list, after_backward: Callable | None = None, diagnose: bool = False) -> dict:
    """One optimisation step on a PairBatch already on the device; returns float loss terms.

    With `diagnose`, also the batch's learning diagnostics (`model.diagnostics`), keys "diag_*"."""
    use_bf16 = cfg.bf16 and batch.pixel_values.device.type == "cuda"
    outputs = forward_pairs(pair_model, batch, torch.bfloat16 if use_bf16 else None)
    losses = sam3_loss(outputs, batch.targets, loss_cfg)
    if "dn" in outputs:
        from model.denoising import denoising_loss

        dn = denoising_loss(outputs["dn"], batch.targets, loss_cfg, loss_cfg.mask_loss_size)
        losses["loss"] = losses["loss"] + dn.pop("loss_dn")
        losses.update(dn)
    diagnostics = {}
    if diagnose:
        from model.diagnostics import batch_diagnostics

        diagnostics = {f"diag_{k}": v for k, v in batch_diagnostics(outputs, batch.targets, cfg=loss_cfg).items()}
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    if after_backward is not None:
        after_backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip else torch.tensor(0.0)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    result = {k: float(v.detach()) for k, v in losses.items()}
    result["grad_norm"] = float(grad_norm)
    result["lr"] = lr
    result.update(diagnostics)
    return result


# ---------------------------------------------------------------- the loop


def mask_grid(image_size: int, patch_size: int, scale: float = 4.0) -> int:
    """Side of Sam3Model's pred_masks: the ViT patch grid times the finest FPN scale (4 by default)."""
    return int(scale * (image_size // patch_size))


def model_mask_grid(config) -> int:
    """Side of the pred_masks of a `Sam3Config` (its image size, patch size and finest FPN scale)."""
    from model.presets import _config_image_size

    vision = config.vision_config
    return mask_grid(_config_image_size(config), vision.backbone_config.patch_size, max(vision.scale_factors))


def batch_stream(cfg: TrainConfig, shards, tokenizer, image_size: int, rank: int = 0, world_size: int = 1,
                 skip: int = 0, patch_size: int = 14, grid: int | None = None) -> Iterator:
    """Endless deterministic PairBatch stream for this rank, fast-forwarded past `skip` batches."""
    from model.data import iter_batches, iter_samples

    sampling = cfg.sampling_config()
    sampling.seed = sampling.seed + 1000 * rank
    if "mask_size" not in cfg.sampling:  # GT masks at the prediction grid (4x the patch grid by default)
        sampling.mask_size = grid or mask_grid(image_size, patch_size)
    samples = iter_samples(shards, loop=True, rank=rank, world_size=world_size, seed=cfg.seed)
    return iter_batches(samples, tokenizer, image_size, cfg.max_text_len, sampling, skip=skip)


def run_training(
    cfg: TrainConfig, shards, out_dir: str | Path, *, loaded=None, rank: int = 0, world_size: int = 1,
    wrap: Callable[[nn.Module], nn.Module] | None = None, after_backward: Callable | None = None,
    on_checkpoint: Callable[[Path, int, dict], None] | None = None, stop_at: int | None = None,
    save_final: bool = True, resume_from: str | Path | None = None,
) -> TrainResult:
    """The loop. `wrap` (e.g. DDP), `after_backward` and `on_checkpoint` are the distributed hooks;
    `stop_at` returns early at that step (a checkpoint is written), as if the run was killed;
    `resume_from` is a checkpoint folder (default: the newest under `out_dir/checkpoints`)."""
    start = time.monotonic()
    out_dir = Path(out_dir)
    is_main = rank == 0
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    loaded = loaded or build_model(cfg)
    model = loaded.model
    device = resolve_device(cfg.device)
    model.to(device).train()
    apply_freezing(model, cfg.freeze_vision, cfg.freeze_text)
    if cfg.freeze_reference_points:
        model.detr_decoder.reference_points.requires_grad_(False)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    pair_model = Sam3PairModel(model, aux=cfg.aux_loss, denoising=denoising_config(cfg))
    train_module = wrap(pair_model) if wrap else pair_model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(model, cfg)
    loss_cfg = cfg.loss_config()

    step = 0
    ckpt = Path(resume_from) if resume_from else latest_checkpoint(out_dir)
    if ckpt is not None:
        step = load_checkpoint(ckpt, model, optimizer, scheduler)
        log.info("resumed from %s at step %d", ckpt, step)
    else:
        torch.manual_seed(cfg.seed + rank)
        random.seed(cfg.seed + rank)
    resumed_from = step
    history_path = out_dir / "history.jsonl"
    history: list[dict] = []
    patch = model.config.vision_config.backbone_config.patch_size
    batches = batch_stream(cfg, shards, loaded.tokenizer, loaded.image_size, rank, world_size, skip=step,
                           patch_size=patch, grid=model_mask_grid(model.config))
    last = stop_at if stop_at is not None else cfg.steps
    finished = True
    while step < cfg.steps:
        if step >= last:
            finished = False
            break
        elapsed = time.monotonic() - start
        if cfg.max_time_s is not None and world_size > 1:  # one clock for all ranks: same lr, same last step
            clock = torch.tensor([elapsed], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(clock, op=torch.distributed.ReduceOp.MAX)
            elapsed = float(clock)
        if cfg.max_time_s is not None and elapsed > cfg.max_time_s:
            log.info("time budget of %.0f s reached at step %d", cfg.max_time_s, step)
            break
        if cfg.max_time_s:  # a time budget: the schedule follows time as well as steps
            spent = elapsed / cfg.max_time_s
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(step, cfg, spent)
        batch = next(batches).to(device)
        diagnose = is_main and cfg.log_every > 0 and (step + 1) % cfg.log_every == 0
        metrics = train_step(train_module, batch, optimizer, scheduler, cfg, loss_cfg, params, after_backward,
                             diagnose)
        step += 1
        metrics.update(step=step, pairs=len(batch), seconds=round(time.monotonic() - start, 3))
        history.append(metrics)
        if is_main:
            with open(history_path, "a") as fh:
                fh.write(json.dumps(metrics) + "\n")
            if step % cfg.log_every == 0 or step == 1:
                log.info("step %d loss %.4f (cls %.3f box %.3f giou %.3f mask %.3f/%.3f pres %.3f) lr %.2e",
                         step, metrics["loss"], metrics["loss_cls"], metrics["loss_box_l1"],
                         metrics["loss_giou"], metrics["loss_mask_bce"], metrics["loss_mask_dice"],
                         metrics["loss_presence"], metrics["lr"])
                if diagnose:
                    from model.diagnostics import format_diagnostics

                    log.info("step %d train batch: %s", step,
                             format_diagnostics({k[5:]: v for k, v in metrics.items() if k.startswith("diag_")}))
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            _checkpoint(out_dir, step, model, optimizer, scheduler, cfg, is_main, on_checkpoint, metrics)
    if history and (not cfg.checkpoint_every or step % cfg.checkpoint_every):
        _checkpoint(out_dir, step, model, optimizer, scheduler, cfg, is_main, on_checkpoint, history[-1])
    model_dir = None
    if is_main and save_final and finished:
        model_dir = str(out_dir / "model")
        if loss_cfg.queries_per_instance > 1:  # one-to-many matching predicts duplicates: NMS them
            loaded.extra.setdefault("nms_iou", NMS_IOU)
        save_model(loaded, model_dir)
    return TrainResult(str(out_dir), model_dir, step, resumed_from, history, time.monotonic() - start)


def _checkpoint(out_dir, step, model, optimizer, scheduler, cfg, is_main, on_checkpoint, metrics):
    if is_main:
        path = save_checkpoint(out_dir, step, model, optimizer, scheduler, cfg.keep_checkpoints)
        if on_checkpoint is not None:
            on_checkpoint(path, step, metrics)
    elif on_checkpoint is not None:
        on_checkpoint(None, step, metrics)


def save_model(loaded, model_dir: str | Path) -> str:
    """`presets.save_model` into `model_dir` atomically (a temp dir renamed into place)."""
    from model import presets

    model_dir = Path(model_dir)
    tmp = model_dir.with_name(f".tmp-{model_dir.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    presets.save_model(loaded, tmp)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    os.replace(tmp, model_dir)
    return str(model_dir)


def train(config: TrainConfig | dict, shards: list[str] | str, out_dir: str | Path, **kwargs) -> TrainResult:
    """Train (or resume) on `shards` into `out_dir`; returns the result with `model_dir` set."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    return run_training(cfg, shards, out_dir, **kwargs)
