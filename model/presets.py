"""SAM 3 model presets and loading: ``tiny`` (CPU-trainable), ``full`` (facebook/sam3), saved dirs.

- ``build_tiny(seed)``: a ~320K-parameter ``Sam3Model`` (224 px) with the offline tokenizer of
  ``model.tokenizer``; trains on a CPU. ``tiny_config()`` is its ``Sam3Config``.
- ``build_full(seed)``: the default ``Sam3Config`` (840M parameters) with random weights, for timing.
- ``load_model(ref_or_dir)``: ``"tiny"``; ``"full"`` (the directory named by ``$SAM3_FULL_DIR``);
  or any local directory written by ``save_model`` / ``save_pretrained`` (e.g. a facebook/sam3
  snapshot). Only local files are read. A missing or incompatible directory raises
  ``ModelLoadError`` naming the path and what is wrong.

Everything returns a ``LoadedModel``: the model in eval mode plus what pre/post-processing needs
(tokenizer, input size, normalisation, text length).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

TINY_IMAGE_SIZE = 224
# DETR queries of the tiny preset. The shapes world has crowded scenes with 20+ objects, and a
# generic phrase ("shape") can match every one of them: DETR-style detectors need more queries than
# the most crowded image has instances (each query predicts at most one), with headroom for
# matching. 32 covers those scenes at negligible cost (hidden size 32).
TINY_NUM_QUERIES = 32
MAX_TEXT_LEN = 32  # SAM 3's text length (CLIP max positions); Sam3Processor pads to 32
IMAGENET_STANDARD = (0.5, 0.5, 0.5)  # Sam3ImageProcessor's mean and std
SAM3_MODEL_TYPES = ("sam3", "sam3_video")  # a sam3_video config carries the detector config
ENGINE_SETTINGS = "sam3_engine.json"  # LoadedModel.extra: how this model's outputs are post-processed
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class ModelLoadError(RuntimeError):
    """A model reference or directory that cannot be loaded; the message says which and why."""


@dataclass
class LoadedModel:
    """A SAM 3 model ready for inference or training, with its preprocessing parameters."""

    model: Any  # transformers.Sam3Model
    tokenizer: Any  # a CLIP tokenizer
    image_size: int
    image_mean: tuple[float, float, float] = IMAGENET_STANDARD
    image_std: tuple[float, float, float] = IMAGENET_STANDARD
    max_text_len: int = MAX_TEXT_LEN
    preset: str = "dir"  # tiny | full | dir
    source: str | None = None  # the directory it was loaded from
    extra: dict = field(default_factory=dict)  # inference settings saved with the model (e.g. nms_iou)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> LoadedModel:
        self.model.to(device=device, dtype=dtype)
        return self


def _sam3_classes():
    from transformers import CLIPTextConfig, Sam3Config, Sam3Model
    from transformers.models.sam3 import configuration_sam3 as c

    return Sam3Config, Sam3Model, CLIPTextConfig, c


def tiny_config(vocab_size: int, bos_id: int, eos_id: int, pad_id: int, num_queries: int = TINY_NUM_QUERIES,
                hidden: int = 32, vit_layers: int = 2, decoder_layers: int = 2):
    """The tiny preset's ``Sam3Config`` (reference/sam3.md §6), for a tokenizer with these ids.

    `hidden` (width of every part), `vit_layers` and `decoder_layers` (DETR decoder) size it.
    """
    Sam3Config, _, CLIPTextConfig, c = _sam3_classes()
    heads = 4
    grid = TINY_IMAGE_SIZE // 14
    vit = c.Sam3ViTConfig(
        hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=vit_layers, num_attention_heads=heads,
        image_size=TINY_IMAGE_SIZE, patch_size=14, window_size=8, global_attn_indexes=[vit_layers - 1],
        pretrain_image_size=TINY_IMAGE_SIZE,
    )
    vision = c.Sam3VisionConfig(
        backbone_config=vit, fpn_hidden_size=hidden,
        backbone_feature_sizes=[[grid * 4] * 2, [grid * 2] * 2, [grid] * 2],
    )
    text = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=4 * hidden, projection_dim=hidden,
        num_hidden_layers=2, num_attention_heads=heads, max_position_embeddings=MAX_TEXT_LEN,
        hidden_act="gelu", bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id,
    )
    small = dict(hidden_size=hidden, num_attention_heads=heads, intermediate_size=2 * hidden)
    return Sam3Config(
        vision_config=vision,
        text_config=text,
        geometry_encoder_config=c.Sam3GeometryEncoderConfig(num_layers=1, **small),
        detr_encoder_config=c.Sam3DETREncoderConfig(num_layers=1, **small),
        detr_decoder_config=c.Sam3DETRDecoderConfig(num_layers=decoder_layers, num_queries=num_queries, **small),
        mask_decoder_config=c.Sam3MaskDecoderConfig(
            hidden_size=hidden, num_upsampling_stages=2, num_attention_heads=heads
        ),
    )


def _config_image_size(config) -> int:
    size = config.vision_config.backbone_config.image_size
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise ModelLoadError(f"non-square input size {size} is not supported")
        size = size[0]
    return int(size)


def build_tiny(seed: int = 0, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
               num_queries: int = TINY_NUM_QUERIES) -> LoadedModel:
    """A freshly initialised tiny model (deterministic by ``seed``) with its offline tokenizer."""
    from model.tokenizer import build_tokenizer

    _, Sam3Model, _, _ = _sam3_classes()
    tok = build_tokenizer(max_length=MAX_TEXT_LEN)
    config = tiny_config(len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, num_queries)
    torch.manual_seed(seed)
    model = Sam3Model(config).eval().to(device=device, dtype=dtype)
    return LoadedModel(model=model, tokenizer=tok, image_size=TINY_IMAGE_SIZE, preset="tiny")


def build_full(seed: int = 0, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> LoadedModel:
    """The default ``Sam3Config`` with random weights (for timing; real weights: ``load_model``).

    The tokenizer is the tiny preset's (its ids fit the full vocabulary); outputs are meaningless.
    """
    from model.tokenizer import build_tokenizer

    Sam3Config, Sam3Model, _, _ = _sam3_classes()
    config = Sam3Config()
    torch.manual_seed(seed)
    with torch.device(device):  # initialise in place on the GPU: much faster than on CPU
        model = Sam3Model(config)
    model = model.eval().to(device=device, dtype=dtype)  # buffers made with an explicit device too
    tok = build_tokenizer(max_length=MAX_TEXT_LEN)
    return LoadedModel(model=model, tokenizer=tok, image_size=_config_image_size(config), preset="full")


def save_model(loaded: LoadedModel, out_dir: str | Path) -> Path:
    """Write model, tokenizer and image-processor settings so ``load_model(out_dir)`` restores them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    processor = {
        "image_processor_type": "Sam3ImageProcessor",
        "size": {"height": loaded.image_size, "width": loaded.image_size},
        "image_mean": list(loaded.image_mean),
        "image_std": list(loaded.image_std),
        "do_resize": True, "do_rescale": True, "do_normalize": True, "do_convert_rgb": True,
        "rescale_factor": 1 / 255,
    }
    (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    if loaded.extra:
        (out / ENGINE_SETTINGS).write_text(json.dumps(loaded.extra, indent=2))
    return out


def _check_dir(path: Path) -> dict:
    if not path.exists():
        raise ModelLoadError(f"model directory {path} does not exist")
    if not path.is_dir():
        raise ModelLoadError(f"model path {path} is not a directory (expected a save_pretrained folder)")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(f"model directory {path} has no config.json (not a save_pretrained folder)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{cfg_file} is not valid JSON: {err}") from None
    model_type = cfg.get("model_type") if isinstance(cfg, dict) else None
    if model_type not in SAM3_MODEL_TYPES:
        raise ModelLoadError(
            f"model directory {path} holds a {model_type!r} model, not SAM 3 "
            f"(config.json model_type must be one of {', '.join(SAM3_MODEL_TYPES)})"
        )
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelLoadError(f"model directory {path} has no weights (expected one of {', '.join(WEIGHT_FILES)})")
    return cfg


def _load_tokenizer(path: Path):
    from transformers import AutoTokenizer, CLIPTokenizer

    errors = []
    for cls in (AutoTokenizer, CLIPTokenizer):
        try:
            return cls.from_pretrained(path, local_files_only=True)
        except Exception as err:  # noqa: BLE001 - report every attempt
            errors.append(f"{cls.__name__}: {err}")
    raise ModelLoadError(f"model directory {path} has no loadable tokenizer ({'; '.join(errors)})")


def _image_settings(path: Path, default_size: int) -> tuple[int, tuple, tuple]:
    size, mean, std = default_size, IMAGENET_STANDARD, IMAGENET_STANDARD
    for name in ("preprocessor_config.json", "processor_config.json"):
        f = path / name
        if not f.is_file():
            continue
        data = json.loads(f.read_text())
        data = data.get("image_processor", data)
        mean = tuple(data.get("image_mean", mean))
        std = tuple(data.get("image_std", std))
        break
    return size, mean, std


def load_model(ref_or_dir: str | Path, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None, seed: int = 0) -> LoadedModel:
    """Load ``"tiny"`` (fresh), ``"full"`` ($SAM3_FULL_DIR) or a local save_pretrained directory."""
    if str(ref_or_dir) == "tiny":
        return build_tiny(seed=seed, device=device, dtype=dtype)
    if str(ref_or_dir) == "full":
        env = os.environ.get("SAM3_FULL_DIR")
        if not env:
            raise ModelLoadError(
                "preset 'full' loads facebook/sam3 weights from a local directory: set SAM3_FULL_DIR "
                "or pass the directory itself (nothing is downloaded)"
            )
        ref_or_dir = env
    path = Path(ref_or_dir).expanduser()
    _check_dir(path)
    _, Sam3Model, _, _ = _sam3_classes()
    try:
        kwargs = {"dtype": dtype} if dtype is not None else {}
        model = Sam3Model.from_pretrained(path, local_files_only=True, **kwargs)
    except Exception as err:  # noqa: BLE001 - surface as a load error naming the directory
        raise ModelLoadError(f"cannot load SAM 3 weights from {path}: {type(err).__name__}: {err}") from err
    model = model.eval().to(device)
    tok = _load_tokenizer(path)
    size, mean, std = _image_settings(path, _config_image_size(model.config))
    settings = path / ENGINE_SETTINGS
    extra = json.loads(settings.read_text()) if settings.is_file() else {}
    return LoadedModel(model=model, tokenizer=tok, image_size=size, image_mean=mean, image_std=std,
                       preset="dir", source=str(path), extra=extra)
