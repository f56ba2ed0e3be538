"""Masks between the engine (COCO RLE `Instance`s) and Label Studio (brush RLE, polygon results).

Label Studio's brush format is not COCO RLE: it is the rle-pack bit stream (label-studio-converter
/ `label_studio_sdk.converter.brush`) of the flattened H x W x 4 RGBA canvas. We encode a mask as
255 in all four channels where it is set, and decode a brush by thresholding the alpha channel at
128 (strokes drawn in the browser are anti-aliased at their edges). The encode and decode
themselves are the SDK's, so the bit stream is exactly what Label Studio reads and writes.

- `instance_to_brush(inst)` / `mask_to_brush(mask)`: the brush RLE (list of byte values);
- `brush_to_mask(rle, width, height)`: the boolean H x W mask back;
- `brush_result(...)` / `polygon_result(...)`: one Label Studio `result` item (a prediction or an
  annotation region) for an instance;
- `result_to_instance(item)`: a brush or polygon region of an annotation as an `Instance`.
"""

from __future__ import annotations

import uuid

import numpy as np
from label_studio_sdk.converter import brush as ls_brush
from PIL import Image, ImageDraw

from storage.masks import instance_to_mask, mask_to_instance
from storage.records import Instance

ALPHA_THRESHOLD = 128


class BrushFormatError(ValueError):
    """A brush RLE that does not decode to the stated image size."""


def mask_to_brush(mask: np.ndarray) -> list[int]:
    """Label Studio brush RLE (byte values) of a boolean H x W mask."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise BrushFormatError(f"mask must be 2-D (H, W), got shape {arr.shape}")
    rgba = np.repeat(arr.astype(bool).ravel(), 4).astype(np.uint8) * 255
    return [int(v) for v in ls_brush.encode_rle(rgba)]


def brush_to_mask(rle: list[int] | bytes, width: int, height: int) -> np.ndarray:
    """The boolean H x W mask of a Label Studio brush RLE (alpha >= 128)."""
    flat = ls_brush.decode_rle(bytes(bytearray(int(v) for v in rle)))
    if flat.size != width * height * 4:
        raise BrushFormatError(
            f"brush RLE holds {flat.size} values, expected {width}x{height}x4 = {width * height * 4} (w x h x rgba)"
        )
    return flat.reshape(height, width, 4)[:, :, 3] >= ALPHA_THRESHOLD


def instance_to_brush(inst: Instance) -> tuple[list[int], int, int]:
    """(brush RLE, width, height) of an instance."""
    mask = instance_to_mask(inst)
    return mask_to_brush(mask), int(mask.shape[1]), int(mask.shape[0])


def _region_id() -> str:
    return uuid.uuid4().hex[:10]


def brush_result(inst: Instance, from_name: str, to_name: str, label: str, *, region_id: str | None = None,
                 readonly: bool = False, score: float | None = None) -> dict:
    """One `brushlabels` result item for an instance (predictions and annotations share the shape)."""
    rle, width, height = instance_to_brush(inst)
    item = {
        "id": region_id or _region_id(),
        "type": "brushlabels",
        "from_name": from_name,
        "to_name": to_name,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": rle, "brushlabels": [label]},
    }
    if readonly:
        item["readonly"] = True
    if score is not None:
        item["score"] = float(score)
    return item


def polygon_points_to_mask(points: list[list[float]], width: int, height: int) -> np.ndarray:
    """Rasterise a Label Studio polygon (points in percent of width / height) to a boolean mask."""
    if len(points) < 3:
        raise BrushFormatError(f"a polygon needs at least 3 points, got {len(points)}")
    canvas = Image.new("L", (width, height), 0)
    xy = [(float(x) * width / 100.0, float(y) * height / 100.0) for x, y in points]
    ImageDraw.Draw(canvas).polygon(xy, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def polygon_result(points_px: list[tuple[float, float]], width: int, height: int, from_name: str, to_name: str,
                   label: str) -> dict:
    """One `polygonlabels` result item from pixel points."""
    points = [[100.0 * x / width, 100.0 * y / height] for x, y in points_px]
    return {
        "id": _region_id(), "type": "polygonlabels", "from_name": from_name, "to_name": to_name,
        "original_width": width, "original_height": height, "image_rotation": 0,
        "value": {"points": points, "closed": True, "polygonlabels": [label]},
    }


def result_to_mask(item: dict) -> np.ndarray | None:
    """The mask of a brush or polygon region, or None for other result types."""
    kind = str(item.get("type", "")).lower()
    value = item.get("value") or {}
    if kind not in ("brushlabels", "brush", "polygonlabels", "polygon"):
        return None
    try:
        width, height = int(item["original_width"]), int(item["original_height"])
    except (KeyError, TypeError, ValueError):
        raise BrushFormatError(f"region {item.get('id')!r} has no original_width/original_height") from None
    if kind.startswith("brush"):
        if value.get("format", "rle") != "rle" or "rle" not in value:
            raise BrushFormatError(f"brush region {item.get('id')!r} is not in rle format")
        return brush_to_mask(value["rle"], width, height)
    return polygon_points_to_mask(value.get("points") or [], width, height)


def result_to_instance(item: dict, source: str = "human") -> Instance | None:
    """A brush or polygon region as an Instance (None for other result types or empty masks).

    A region labelled "crowd" (case-insensitive) becomes a crowd instance.
    """
    mask = result_to_mask(item)
    if mask is None or not mask.any():
        return None
    value = item.get("value") or {}
    labels = value.get("brushlabels") or value.get("polygonlabels") or value.get("labels") or []
    crowd = any(str(label).lower() == "crowd" for label in labels)
    return mask_to_instance(mask, source=source, iscrowd=crowd)
