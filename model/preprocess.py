"""Image and text preprocessing for SAM 3, as ``Sam3ImageProcessor`` and ``Sam3Processor`` do it.

Images: bytes / path / PIL / numpy → RGB uint8 (EXIF orientation applied; any PIL mode: RGBA, LA
and palette transparency composited on white as transformers' ``convert_to_rgb`` does; L, 1, I;16,
I, F, CMYK, YCbCr...; 16-bit and float arrays scaled to 8 bits) → resized (bilinear, antialiased,
aspect not kept) to the preset's square size → ``(x / 255 - mean) / std``. A file that cannot be
decoded raises ``ImageDecodeError`` naming the image id.

Text: ``tokenize`` pads every phrase to ``max_len`` tokens (SAM 3 uses 32) with an attention mask.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

try:  # the exact resize of Sam3ImageProcessor (torchvision backend); optional
    from torchvision.transforms.v2 import functional as _tvF
except Exception:  # noqa: BLE001 - torchvision missing or broken: fall back to torch
    _tvF = None

IMAGENET_STANDARD = (0.5, 0.5, 0.5)


class ImageDecodeError(ValueError):
    """An image that cannot be decoded or converted; ``image_id`` says which."""

    def __init__(self, image_id: Any, reason: str):
        super().__init__(f"image {image_id!r}: {reason}")
        self.image_id = image_id
        self.reason = reason


def _array_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale an integer/float/bool array (H,W) or (H,W,C) to uint8."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr.astype(np.float32))
        peak = float(arr.max()) if arr.size else 0.0
        scale = 255.0 if peak <= 1.0 else (255.0 / 65535.0 if peak > 255.0 else 1.0)
        return np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.int64)
        peak = int(arr.max()) if arr.size else 0
        if peak > 255:  # 16-bit (or wider) data: scale its range to 8 bits
            top = 65535 if peak <= 65535 else peak
            return np.clip((arr * 255 + top // 2) // top, 0, 255).astype(np.uint8)
        return np.clip(arr, 0, 255).astype(np.uint8)
    raise TypeError(f"unsupported array dtype {arr.dtype}")


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    arr = _array_to_uint8(np.asarray(arr))
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    if arr.ndim == 3 and arr.shape[2] == 4:
        return np.asarray(_composite_on_white(Image.fromarray(arr, "RGBA")))
    raise ValueError(f"array of shape {arr.shape} is not an image (expected HxW, HxWx1, HxWx3 or HxWx4)")


def _composite_on_white(img: Image.Image) -> Image.Image:
    img = img.convert("RGBA")
    background = Image.new("RGBA", img.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, img).convert("RGB")


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _array_to_rgb(np.asarray(img))
    if "A" in img.getbands() or img.info.get("transparency") is not None:
        if img.mode == "P":
            img = img.convert("RGBA")
        return np.asarray(_composite_on_white(img))
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def load_image(image: Any, image_id: Any = None) -> np.ndarray:
    """Decode ``image`` (bytes, path, PIL image, numpy array or CHW/HWC tensor) to RGB uint8 (H,W,3)."""
    try:
        if isinstance(image, (bytes, bytearray, memoryview)):
            with Image.open(io.BytesIO(bytes(image))) as pil:
                pil.load()
                return _pil_to_rgb(pil)
        if isinstance(image, (str, os.PathLike)):
            with Image.open(image) as pil:
                pil.load()
                return _pil_to_rgb(pil)
        if isinstance(image, Image.Image):
            return _pil_to_rgb(image)
        if isinstance(image, torch.Tensor):
            arr = image.detach().cpu().numpy()
            if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
                arr = arr.transpose(1, 2, 0)
            return _array_to_rgb(arr)
        if isinstance(image, np.ndarray):
            return _array_to_rgb(image)
    except ImageDecodeError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure becomes a named error
        raise ImageDecodeError(image_id, f"cannot decode image: {type(err).__name__}: {err}") from err
    raise ImageDecodeError(image_id, f"unsupported image type {type(image).__name__}")


def resize_normalise(rgb: np.ndarray | torch.Tensor, image_size: int, mean: Sequence[float] = IMAGENET_STANDARD,
                     std: Sequence[float] = IMAGENET_STANDARD, device: str | torch.device | None = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RGB uint8 (H,W,3) → normalised ``(3, image_size, image_size)`` on ``device``."""
    if isinstance(rgb, np.ndarray):
        rgb = np.ascontiguousarray(rgb)
        t = torch.from_numpy(rgb if rgb.flags.writeable else rgb.copy())
    else:
        t = rgb
    t = t.to(device=device, non_blocking=True).permute(2, 0, 1)
    if tuple(t.shape[-2:]) != (image_size, image_size):
        if _tvF is not None:
            t = _tvF.resize(t, [image_size, image_size], antialias=True)
        else:
            t = torch.nn.functional.interpolate(
                t[None].float(), size=(image_size, image_size), mode="bilinear", align_corners=False,
                antialias=True,
            )[0].round_().clamp_(0, 255)
    m = torch.tensor(mean, device=t.device).view(3, 1, 1)
    s = torch.tensor(std, device=t.device).view(3, 1, 1)
    return ((t.float() / 255.0 - m) / s).to(dtype)


def preprocess_image(image: Any, image_size: int, mean: Sequence[float] = IMAGENET_STANDARD,
                     std: Sequence[float] = IMAGENET_STANDARD, image_id: Any = None,
                     device: str | torch.device | None = None) -> torch.Tensor:
    """Any image → the model's ``pixel_values`` for it: a float tensor ``(3, image_size, image_size)``."""
    return resize_normalise(load_image(image, image_id), image_size, mean, std, device=device)


def tokenize(tokenizer: Any, phrases: Sequence[str], max_len: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask ``(len(phrases), max_len)`` (long), padded and truncated."""
    enc = tokenizer(list(phrases), padding="max_length", truncation=True, max_length=max_len,
                    return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def boxes_xywh_to_cxcywh(boxes: Sequence[Sequence[float]], width: int, height: int) -> torch.Tensor:
    """Pixel ``[x, y, w, h]`` boxes at the original size → normalised ``(cx, cy, w, h)`` (SAM 3 input)."""
    b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    b = b / scale
    return torch.stack([b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2, b[:, 2], b[:, 3]], dim=1)
