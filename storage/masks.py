"""Binary masks <-> Instance records (COCO compressed RLE through pycocotools), with size checks.

`mask_to_instance(mask, source)` encodes a boolean HxW mask; `instance_to_mask(inst)` decodes it
back pixel-exactly. `check_instance_size(inst, height, width)` raises MaskSizeError when a mask was
made for a different image size.
"""

from __future__ import annotations

import warnings

import numpy as np
from pycocotools import mask as mask_utils

from storage.records import Instance


class MaskSizeError(ValueError):
    """A mask's size does not match its image (or the mask is not a 2-D binary array)."""


def _as_binary(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise MaskSizeError(f"mask must be 2-D (H, W), got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise MaskSizeError(f"mask of dtype {arr.dtype} has values other than 0/1")
        arr = arr.astype(bool)
    return arr


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE {'size': [h, w], 'counts': str} of a binary HxW mask."""
    arr = _as_binary(mask)
    rle = mask_utils.encode(np.asfortranarray(arr, dtype=np.uint8))
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": rle["counts"].decode("ascii"),
    }


def decode_rle(rle: dict) -> np.ndarray:
    """Boolean HxW mask from a COCO RLE (compressed str/bytes counts or uncompressed list counts)"""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        coded = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    else:
        coded = {
            "size": [h, w],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
        }
    with warnings.catch_warnings():  # pycocotools' numpy-2 copy= deprecation, harmless here
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(coded).astype(bool)


def mask_to_instance(
    mask: np.ndarray,
    source: str,
    iscrowd: bool = False,
    score: float | None = None,
    image_size: tuple[int, int] | None = None,
) -> Instance:
    """An Instance for a boolean HxW mask; `image_size` (h, w), if given, must match the mask."""
    arr = _as_binary(mask)
    if image_size is not None and tuple(arr.shape) != tuple(image_size):
        raise MaskSizeError(
            f"mask size {arr.shape[1]}x{arr.shape[0]} does not match image size "
            f"{image_size[1]}x{image_size[0]} (w x h)"
        )
    rle = encode_rle(arr)
    coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    bbox = [float(v) for v in mask_utils.toBbox(coded)]
    return Instance(rle=rle, bbox=bbox, iscrowd=bool(iscrowd), source=source, score=score)


def instance_to_mask(inst: Instance) -> np.ndarray:
    """The instance's boolean HxW mask."""
    return decode_rle(inst.rle)


def instance_area(inst: Instance) -> int:
    coded = {"size": inst.rle["size"], "counts": inst.rle["counts"].encode("ascii")}
    return int(mask_utils.area(coded))


def check_instance_size(inst: Instance, height: int, width: int, what: str = "mask") -> None:
    """Raise MaskSizeError when the instance's RLE size is not (height, width)."""
    h, w = (int(v) for v in inst.rle["size"])
    if (h, w) != (int(height), int(width)):
        raise MaskSizeError(
            f"{what} size {w}x{h} does not match image size {width}x{height} (w x h)"
        )
