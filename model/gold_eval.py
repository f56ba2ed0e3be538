"""Evaluate a model on an SA-Co gold document: predict every gold pair, score with `model.metrics`.

`predict_gold(loaded, gold, images)` runs the batched `Predictor` over the gold's image-phrase
pairs (grouped per image so vision features are computed once) and returns COCO-results
predictions keyed by the gold pair ids (`segmentation` compressed RLE at the original size,
`bbox` [x, y, w, h] normalised by the image size as in SA-Co, `score`). `evaluate_gold(...)`
adds the metrics (cgF1, pmF1, IL_MCC, ...). `images` is a folder / URI prefix holding the gold's
`file_name`s, or a mapping file_name -> image (bytes, path, PIL, array).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from model.predictor import Predictor


def _gold_doc(gold: dict | str) -> dict:
    if isinstance(gold, dict):
        return gold
    from storage.saco import read_saco

    return read_saco(str(gold))


def _image_loader(images: Mapping | str | None, gold_uri: str | None) -> Callable[[str], Any]:
    if isinstance(images, Mapping):
        return lambda name: images[name]
    from storage.objectstore import ObjectStore
    from storage.uri import join

    root = images
    if root is None:
        if gold_uri is None:
            raise ValueError("images is required when gold is given as a dict")
        root = gold_uri.rsplit("/", 1)[0] if "/" in gold_uri else "."
    store = ObjectStore()
    return lambda name: store.read_bytes(join(str(root), name))


def predict_gold(loaded, gold: dict | str, images: Mapping | str | None = None, *, batch_size: int = 32,
                 image_batch_size: int = 8, device=None, progress: bool = False) -> list[dict]:
    """COCO-results predictions (score >= the predictor's threshold) for every pair in `gold`."""
    doc = _gold_doc(gold)
    load = _image_loader(images, gold if isinstance(gold, str) else None)
    by_file: dict[str, list[dict]] = {}
    for entry in doc["images"]:
        if entry.get("label") == "dropped":
            continue
        by_file.setdefault(entry["file_name"], []).append(entry)
    items = [(name, load(name), [e["text_input"] for e in entries]) for name, entries in by_file.items()]
    predictor = Predictor(loaded, batch_size=batch_size, image_batch_size=image_batch_size, device=device)
    results = predictor.predict_iter(items)
    if progress:
        from rich.progress import track

        results = track(results, total=len(items), description="predict gold", transient=True)
    out: list[dict] = []
    for res in results:
        if res.error:
            raise ValueError(f"gold image {res.image_id!r}: {res.error}")
        entries = by_file[res.image_id]
        for pair in res.pairs:
            entry = entries[pair.prompt_index]
            w, h = entry["width"], entry["height"]
            for inst in pair.instances:
                x, y, bw, bh = inst.bbox
                out.append({
                    "image_id": entry["id"], "category_id": 1, "score": inst.score,
                    "segmentation": inst.rle, "bbox": [x / w, y / h, bw / w, bh / h],
                })
    return out


def evaluate_gold(loaded, gold: dict | str, images: Mapping | str | None = None, **kwargs) -> dict:
    """Metrics (cgF1 0-100, pmF1, IL_MCC, ...) of `loaded` on the gold document."""
    from model.metrics import evaluate

    doc = _gold_doc(gold)
    if images is None and isinstance(gold, str):
        images = gold.rsplit("/", 1)[0] if "/" in gold else "."
    return evaluate(doc, predict_gold(loaded, doc, images, **kwargs), iou_type="segm")
