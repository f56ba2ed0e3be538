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

import numpy as np
import torch
from torch import nn

from model.losses import LossConfig, sam3_loss
from model.pair_model import Sam3PairModel, forward_pairs

log = logging.getLogger("sam3_engine.train")
CKPT_DIR = "checkpoints"
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
        reinit_weights(loaded.model, cfg.init, cfg.seed)
        return loaded
    from transformers import Sam3Model

    from model.tokenizer import build_tokenizer

    tok = build_tokenizer(max_length=presets.MAX_TEXT_LEN)
    config = presets.tiny_config(len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, num_queries, **size)
    for key, value in overrides.items():
        _set_nested(config, key, value)
    torch.manual_seed(cfg.seed)
    model = Sam3Model(config).eval()
    reinit_weights(model, cfg.init, cfg.seed)
    return presets.LoadedModel(model=model, tokenizer=tok, image_size=presets._config_image_size(config),
                               preset="tiny")


def reinit_weights(model: nn.Module, scheme: str | None, seed: int) -> None:
    """Re-initialise a fresh model (`scheme` "torch"; None: keep HF's init).

    "torch": Linear / Conv layers get PyTorch's default init, and the DETR decoder's queries are
    spread out (`spread_queries`): HF's init gives every query the same reference box (the image
    centre, half its size) and near-zero embeddings, so all queries start identical and a model
    trained from scratch takes very long to break that symmetry.
    """
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
        spread_queries(decoder, seed)


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
               params: list, after_backward: Callable | None = None) -> dict:
    """One optimisation step on a PairBatch already on the device; returns float loss terms."""
    use_bf16 = cfg.bf16 and batch.pixel_values.device.type == "cuda"
    outputs = forward_pairs(pair_model, batch, torch.bfloat16 if use_bf16 else None)
    losses = sam3_loss(outputs, batch.targets, loss_cfg)
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
    return result


# ---------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out_dir: str | Path, step: int, model, optimizer, scheduler, keep: int = 2) -> Path:
    """Write checkpoints/step-XXXXXXXX atomically (temp dir, fsync, rename); prune old ones."""
    root = Path(out_dir) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    state = {
        "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "rng": _rng_state(),
    }
    with open(tmp / "state.pt", "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(out_dir)[:-keep] if keep else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    root = Path(out_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / "state.pt").exists())


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def load_checkpoint(path: str | Path, model, optimizer, scheduler) -> int:
    state = torch.load(Path(path) / "state.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return int(state["step"])


# ---------------------------------------------------------------- the loop


def mask_grid(image_size: int, patch_size: int) -> int:
    """Side of Sam3Model's pred_masks: 4x the ViT patch grid."""
    return 4 * (image_size // patch_size)


def batch_stream(cfg: TrainConfig, shards, tokenizer, image_size: int, rank: int = 0, world_size: int = 1,
                 skip: int = 0, patch_size: int = 14) -> Iterator:
    """Endless deterministic PairBatch stream for this rank, fast-forwarded past `skip` batches."""
    from model.data import iter_batches, iter_samples

    sampling = cfg.sampling_config()
    sampling.seed = sampling.seed + 1000 * rank
    if "mask_size" not in cfg.sampling:  # GT masks at the prediction grid (4x the patch grid)
        sampling.mask_size = mask_grid(image_size, patch_size)
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
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    pair_model = Sam3PairModel(model, aux=cfg.aux_loss)
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
                           patch_size=patch)
    last = stop_at if stop_at is not None else cfg.steps
    finished = True
    while step < cfg.steps:
        if step >= last:
            finished = False
            break
        if cfg.max_time_s is not None and time.monotonic() - start > cfg.max_time_s:
            log.info("time budget of %.0f s reached at step %d", cfg.max_time_s, step)
            break
        if cfg.max_time_s:  # a time budget: the schedule follows time as well as steps
            spent = (time.monotonic() - start) / cfg.max_time_s
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(step, cfg, spent)
        batch = next(batches).to(device)
        metrics = train_step(train_module, batch, optimizer, scheduler, cfg, loss_cfg, params, after_backward)
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
