"""SA-Co gold format (image GT, COCO-derived): export pairs to it and import them back.

Layout of a document (reference/sam3.md section 5):
- `images`: one entry per (image, noun phrase) pair: `id` (the pair id string from `pair_id()`),
  `file_name`, `text_input` (the phrase), `height`, `width`, `is_instance_exhaustive`,
  `is_pixel_exhaustive`; extra keys `media_id` and `lineage` (and `reason` when the pair has one).
- `annotations`: `id` (int), `image_id` (the pair id), `bbox` [x, y, w, h] normalised by the image
  size, `segmentation` (COCO compressed RLE, counts as str), `area` (pixels), `category_id` 1,
  `iscrowd` (0/1), `source`; `score` when the instance has one.
- `categories`: the dummy [{"id": 1, "name": "object"}].
A pair with no annotations is a negative.

Dropped pairs (ungroundable, vague, ...) are kept so nothing is lost and the export round-trips:
they are `images` entries with `"label": "dropped"` and `"reason"`, and no annotations. A plain
SA-Co evaluator would read them as negatives, so evaluation must use `without_dropped(doc)` (or
export with `include_dropped=False`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pycocotools import mask as mask_utils
from pydantic import BaseModel, Field, ValidationError

from storage.errors import SacoFormatError
from storage.masks import MaskSizeError, check_instance_size, instance_area
from storage.objectstore import ObjectStore, default_store
from storage.records import Instance, Lineage, Pair

CATEGORIES = [{"id": 1, "name": "object"}]
_DOC = "<saco document>"


class ImageMeta(BaseModel):
    """The media item a pair is on: its file name and size in pixels."""

    file_name: str
    height: int = Field(gt=0)
    width: int = Field(gt=0)


def to_saco(
    pairs: Iterable[Pair], images: Mapping[str, ImageMeta], *, include_dropped: bool = True
) -> dict:
    """Export pairs to an SA-Co gold document; `images` maps Pair.media_id to its ImageMeta."""
    doc: dict[str, Any] = {
        "info": {"format": "sa-co/gold-image", "writer": "sam3-engine"},
        "images": [],
        "annotations": [],
        "categories": [dict(c) for c in CATEGORIES],
    }
    seen: dict[str, Pair] = {}
    next_ann = 1
    for pair in pairs:
        if pair.label == "dropped" and not include_dropped:
            continue
        meta = images.get(pair.media_id)
        if isinstance(meta, Mapping):
            meta = ImageMeta.model_validate(meta)
        if meta is None:
            raise SacoFormatError(
                _DOC,
                f"pair {pair.media_id!r}/{pair.phrase!r}: no ImageMeta for "
                f"media_id {pair.media_id!r}",
            )
        pid = pair.pair_id
        if pid in seen:
            raise SacoFormatError(
                _DOC,
                f"pair {pair.media_id!r}/{pair.phrase!r} duplicates pair id {pid} "
                f"(phrase {seen[pid].phrase!r})",
            )
        seen[pid] = pair
        entry: dict[str, Any] = {
            "id": pid,
            "file_name": meta.file_name,
            "text_input": pair.phrase,
            "height": meta.height,
            "width": meta.width,
            "is_instance_exhaustive": pair.is_instance_exhaustive,
            "is_pixel_exhaustive": pair.is_pixel_exhaustive,
            "media_id": pair.media_id,
            "lineage": pair.lineage.model_dump(),
        }
        if pair.label == "dropped":
            entry["label"] = "dropped"
        if pair.reason is not None:
            entry["reason"] = pair.reason
        doc["images"].append(entry)
        for inst in pair.instances:
            try:
                check_instance_size(
                    inst,
                    meta.height,
                    meta.width,
                    what=f"pair {pid} ({pair.media_id!r}/{pair.phrase!r}) mask",
                )
            except MaskSizeError as err:
                raise SacoFormatError(_DOC, str(err)) from None
            x, y, w, h = inst.bbox
            ann = {
                "id": next_ann,
                "image_id": pid,
                "bbox": [x / meta.width, y / meta.height, w / meta.width, h / meta.height],
                "segmentation": {"size": list(inst.rle["size"]), "counts": inst.rle["counts"]},
                "area": instance_area(inst),
                "category_id": 1,
                "iscrowd": int(inst.iscrowd),
                "source": inst.source,
            }
            if inst.score is not None:
                ann["score"] = inst.score
            doc["annotations"].append(ann)
            next_ann += 1
    return doc


def without_dropped(doc: dict) -> dict:
    """A copy of `doc` without dropped pairs: what an SA-Co evaluator should be given."""
    keep = [e for e in doc["images"] if e.get("label") != "dropped"]
    ids = {e["id"] for e in keep}
    return {
        **doc,
        "images": keep,
        "annotations": [a for a in doc["annotations"] if a["image_id"] in ids],
    }


def _segmentation_rle(seg: Any, h: int, w: int, where: str) -> dict:
    if isinstance(seg, list):  # polygons (plain COCO): merge into one RLE
        coded = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        return {"size": [int(s) for s in coded["size"]], "counts": coded["counts"].decode("ascii")}
    if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
        raise SacoFormatError(_DOC, f"{where}: segmentation is not an RLE dict or polygon list")
    if isinstance(seg["counts"], list):  # uncompressed RLE
        coded = mask_utils.frPyObjects(seg, *seg["size"])
        return {"size": [int(s) for s in coded["size"]], "counts": coded["counts"].decode("ascii")}
    return {"size": [int(s) for s in seg["size"]], "counts": seg["counts"]}


def _instance(ann: dict, h: int, w: int, where: str) -> Instance:
    rle = _segmentation_rle(ann.get("segmentation"), h, w, where)
    x, y, bw, bh = (float(v) for v in ann["bbox"])
    inst = Instance(
        rle=rle,
        bbox=[x * w, y * h, bw * w, bh * h],
        iscrowd=bool(ann.get("iscrowd", 0)),
        source=str(ann.get("source", "human")),
        score=ann.get("score"),
    )
    try:
        check_instance_size(inst, h, w, what=f"{where} mask")
    except MaskSizeError as err:
        raise SacoFormatError(_DOC, str(err)) from None
    return inst


def from_saco(doc: dict) -> tuple[list[Pair], dict[str, ImageMeta]]:
    """Import an SA-Co gold document: its pairs (in `images` order) and ImageMeta by media_id.

    Entries without `media_id` (documents from elsewhere) use their file_name as media id.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise SacoFormatError(_DOC, "not an SA-Co document: no 'images' list")
    anns_by_pair: dict[str, list[dict]] = {}
    image_ids = {e.get("id") for e in doc["images"] if isinstance(e, dict)}
    for ann in doc.get("annotations", []) or []:
        if ann.get("image_id") not in image_ids:
            raise SacoFormatError(
                _DOC,
                f"annotation {ann.get('id')!r} refers to unknown image_id {ann.get('image_id')!r}",
            )
        anns_by_pair.setdefault(ann["image_id"], []).append(ann)
    pairs: list[Pair] = []
    metas: dict[str, ImageMeta] = {}
    for entry in doc["images"]:
        where = f"images entry {entry.get('id')!r}" if isinstance(entry, dict) else "images entry"
        try:
            meta = ImageMeta(
                file_name=entry["file_name"], height=entry["height"], width=entry["width"]
            )
            media_id = str(entry.get("media_id") or entry["file_name"])
            if metas.setdefault(media_id, meta) != meta:
                raise SacoFormatError(
                    _DOC, f"{where}: media {media_id!r} appears with two sizes/names"
                )
            instances = [
                _instance(a, meta.height, meta.width, f"{where} annotation {a.get('id')!r}")
                for a in sorted(anns_by_pair.get(entry["id"], []), key=lambda a: a.get("id", 0))
            ]
            dropped = entry.get("label") == "dropped"
            if dropped and instances:
                raise SacoFormatError(_DOC, f"{where}: dropped pair has annotations")
            label = "dropped" if dropped else ("positive" if instances else "negative")
            pairs.append(
                Pair(
                    media_id=media_id,
                    phrase=entry["text_input"],
                    label=label,
                    reason=entry.get("reason"),
                    is_instance_exhaustive=bool(entry.get("is_instance_exhaustive", True)),
                    is_pixel_exhaustive=bool(entry.get("is_pixel_exhaustive", True)),
                    instances=instances,
                    lineage=Lineage(**(entry.get("lineage") or {})),
                )
            )
        except SacoFormatError:
            raise
        except (KeyError, TypeError, ValueError, ValidationError) as err:
            raise SacoFormatError(_DOC, f"{where}: {type(err).__name__}: {err}") from None
    return pairs, metas


def write_saco(uri: str, doc: dict, store: ObjectStore | None = None) -> str:
    """Write the document as JSON, atomically (nothing under `uri` until it is complete)."""
    data = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return (store or default_store()).write_bytes(uri, data)


def read_saco(uri: str, store: ObjectStore | None = None) -> dict:
    """Read an SA-Co JSON document (use `from_saco` to turn it into pairs)."""
    data = (store or default_store()).read_bytes(uri)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SacoFormatError(uri, f"not valid JSON: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise SacoFormatError(uri, "not an SA-Co document: no 'images' list")
    return doc
