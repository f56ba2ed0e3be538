"""A phase's outputs from its final pairs: WebDataset shards and the SA-Co export, lineage on every row.

- `phase-<k>/export/saco.json`: every final pair (dropped ones kept with `label: dropped` and their
  reason), each `images[]` entry with its lineage (model version, verifier versions, ai / human source);
  the SA-Co layout of `storage.saco.to_saco`, one unit at a time.
- `phase-<k>/shards/train-%06d.tar`: one sample per media item (image bytes + its positive and
  negative pairs, with lineage), the training input of the next retrain.
Both stream unit by unit (a unit is a slice of media, so all pairs of an image are in one unit): memory
stays flat whatever the phase's size. Both are written atomically and deterministically (units in key
order, pairs in plan order), so a resumed campaign and an uninterrupted one write the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from storage.records import Pair, Sample
from storage.saco import CATEGORIES, ImageMeta, to_saco
from storage.shards import ShardWriter
from storage.tables import read_pairs


def unit_pairs(layout, phase: int, unit: str) -> list[Pair]:
    return read_pairs(layout.part(phase, "final", unit), layout.store)


def final_pairs(layout, phase: int, units) -> list[Pair]:
    return [p for u in sorted(units) for p in unit_pairs(layout, phase, u)]


def unit_meta(layout, phase: int, unit: str) -> dict[str, dict]:
    meta = {}
    for r in layout.read_stage(phase, "plan", unit):
        meta.setdefault(r["media_id"], {"uri": r["uri"], "width": r["width"], "height": r["height"]})
    return meta


def file_name(layout, uri: str) -> str:
    root = layout.store.uri(layout.root).rstrip("/") + "/"
    return uri.removeprefix(root)


def sample_key(media_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-/]", "_", media_id)


def _units(layout, phase: int, units) -> Iterator[tuple[str, list[Pair], dict[str, dict]]]:
    for u in sorted(units):
        yield u, unit_pairs(layout, phase, u), unit_meta(layout, phase, u)


def write_saco_stream(layout, phase: int, units) -> str:
    """The SA-Co export, written entry by entry (two passes: images, then annotations)."""
    def dump(x) -> str:
        return json.dumps(x, ensure_ascii=False, separators=(",", ":"))

    with layout.store.atomic_writer(layout.export(phase)) as f:
        f.write(b'{"info":' + dump({"format": "sa-co/gold-image", "writer": "sam3-engine"}).encode() + b',"images":[')
        first, next_ann = True, 1
        for section in ("images", "annotations"):
            if section == "annotations":
                f.write(b'],"annotations":[')
                first = True
            for _u, pairs, meta in _units(layout, phase, units):
                images = {m: ImageMeta(file_name=file_name(layout, v["uri"]), height=v["height"], width=v["width"])
                          for m, v in meta.items()}
                doc = to_saco(pairs, images)
                for entry in doc[section]:
                    if section == "annotations":
                        entry["id"] = next_ann
                        next_ann += 1
                    f.write((b"" if first else b",") + dump(entry).encode())
                    first = False
        f.write(b'],"categories":' + dump(CATEGORIES).encode() + b"}")
    return f.uri


def write_phase_outputs(cfg, layout, phase: int, units) -> dict:
    export = write_saco_stream(layout, phase, units)
    labels = {"positive": 0, "negative": 0, "dropped": 0}
    sources = {"ai": 0, "human": 0}
    mask_sources: dict[str, int] = {}  # who made each accepted mask: model (a proposal MV accepted), human, ...
    n = 0
    with ShardWriter(layout.shards_prefix(phase), "train", max_samples=100, store=layout.store) as w:
        for _u, pairs, meta in _units(layout, phase, units):
            by_media: dict[str, list[Pair]] = {}
            for p in pairs:
                n += 1
                labels[p.label] += 1
                sources[p.lineage.source] = sources.get(p.lineage.source, 0) + 1
                if p.label == "positive":
                    for inst in p.instances:
                        mask_sources[inst.source] = mask_sources.get(inst.source, 0) + 1
                if p.label != "dropped":
                    by_media.setdefault(p.media_id, []).append(p)
            for media_id in sorted(by_media):
                m = meta[media_id]
                name = m["uri"].rsplit("/", 1)[-1]
                ext = name.rsplit(".", 1)[-1].lower() if "." in name else "png"
                w.write(Sample(key=sample_key(media_id), image=layout.store.read_bytes(m["uri"]),
                               image_ext="jpg" if ext == "jpeg" else ext, width=m["width"], height=m["height"],
                               pairs=by_media[media_id]))
    return {"export": export, "shards": w.shards, "pairs": n, "labels": labels, "sources": sources,
            "mask_sources": mask_sources}
