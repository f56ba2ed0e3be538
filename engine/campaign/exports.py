"""A phase's outputs from its final pairs: WebDataset shards and the SA-Co export, lineage on every row.

- `phase-<k>/export/saco.json`: every final pair (dropped ones kept with `label: dropped` and their
  reason), each `images[]` entry with its lineage (model version, verifier versions, ai / human source).
- `phase-<k>/shards/train-%06d.tar`: one sample per media item (image bytes + its positive and
  negative pairs, with lineage), the training input of the next retrain.
Both are written atomically and deterministically (units in key order, pairs in plan order), so a
resumed campaign and an uninterrupted one write the same bytes.
"""

from __future__ import annotations

import re

from storage.records import Pair, Sample
from storage.saco import ImageMeta, to_saco, write_saco
from storage.shards import ShardWriter
from storage.tables import read_pairs


def final_pairs(layout, phase: int, units) -> list[Pair]:
    out: list[Pair] = []
    for u in sorted(units):
        out.extend(read_pairs(layout.part(phase, "final", u), layout.store))
    return out


def media_meta(layout, phase: int, units) -> dict[str, dict]:
    meta = {}
    for u in sorted(units):
        for r in layout.read_stage(phase, "plan", u):
            meta.setdefault(r["media_id"], {"uri": r["uri"], "width": r["width"], "height": r["height"]})
    return meta


def file_name(layout, uri: str) -> str:
    root = layout.store.uri(layout.root).rstrip("/") + "/"
    return uri[len(root):] if uri.startswith(root) else uri


def sample_key(media_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-/]", "_", media_id)


def write_phase_outputs(cfg, layout, phase: int, units) -> dict:
    pairs = final_pairs(layout, phase, units)
    meta = media_meta(layout, phase, units)
    images = {m: ImageMeta(file_name=file_name(layout, v["uri"]), height=v["height"], width=v["width"])
              for m, v in meta.items()}
    export = write_saco(layout.export(phase), to_saco(pairs, images), layout.store)
    by_media: dict[str, list[Pair]] = {}
    for p in pairs:
        if p.label != "dropped":
            by_media.setdefault(p.media_id, []).append(p)
    shards = []
    with ShardWriter(layout.shards_prefix(phase), "train", max_samples=100, store=layout.store) as w:
        for media_id in sorted(by_media):
            m = meta[media_id]
            ext = m["uri"].rsplit(".", 1)[-1].lower() if "." in m["uri"].rsplit("/", 1)[-1] else "png"
            w.write(Sample(key=sample_key(media_id), image=layout.store.read_bytes(m["uri"]),
                           image_ext="jpg" if ext == "jpeg" else ext, width=m["width"], height=m["height"],
                           pairs=by_media[media_id]))
    shards = w.shards
    labels = {lab: sum(p.label == lab for p in pairs) for lab in ("positive", "negative", "dropped")}
    return {"export": export, "shards": shards, "pairs": len(pairs), "labels": labels,
            "sources": {s: sum(p.lineage.source == s for p in pairs) for s in ("ai", "human")}}
