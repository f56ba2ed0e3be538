"""Media sources -> the media items of a phase -> fixed work units.

A phase annotates `images` items of the campaign's source starting at `CampaignConfig.phase_start`
(shapes world: image indices of the phase's domain; folder / S3 prefix: the sorted file list;
WebDataset: the shards' samples in order). Items are cut into work units of `per_unit` items, keyed
`u00000`, `u00001`, ...: a unit is always the same slice, so its completion marker means the same
thing on every rerun.

`materialise(layout, item)` returns (media URI, width, height, image bytes): shapes-world images
and WebDataset samples are written once under `<root>/media/<domain>/`; folder and S3 images are
referenced in place. An unreadable image is reported by the caller as a quarantined item, never fatal.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from engine.campaign.config import CampaignConfig
from storage.objectstore import ObjectStore


class SourceError(ValueError):
    """A media source that cannot be listed; the message names it."""


@dataclass(frozen=True)
class MediaItem:
    media_id: str
    domain: str
    uri: str | None = None  # in place (folder / S3); None when the engine materialises it
    index: int | None = None  # shapes world / WebDataset position


def _listing(cfg: CampaignConfig, store: ObjectStore) -> list[str]:
    src = cfg.source
    prefix = src.path if src.kind == "folder" else src.prefix
    exts = tuple(e.lower() for e in src.extensions)
    try:
        uris = store.list(prefix.rstrip("/") + "/")
    except Exception as err:  # noqa: BLE001 - storage errors name the URI
        raise SourceError(f"source.{'path' if src.kind == 'folder' else 'prefix'} {prefix!r}: {err}") from None
    return [u for u in uris if u.lower().endswith(exts)]


def phase_items(cfg: CampaignConfig, phase: int, store: ObjectStore | None = None) -> list[MediaItem]:
    """The media items of a phase, in order."""
    store = store or ObjectStore(fsync=False)
    p = cfg.phase(phase)
    start = cfg.phase_start(phase)
    src = cfg.source
    if src.kind == "shapes":
        from engine.world import media_key

        return [MediaItem(media_key(p.domain, src.image_size, src.seed, i), p.domain, None, i)
                for i in range(start, start + p.images)]
    if src.kind in ("folder", "s3"):
        uris = _listing(cfg, store)
        base = (src.path if src.kind == "folder" else src.prefix).rstrip("/")
        out = []
        for uri in uris[start:start + p.images]:
            rel = uri.split(base.removeprefix("file://"), 1)[-1].lstrip("/") if src.kind == "folder" else \
                uri[len(src.prefix.rstrip("/")) + 1:]
            out.append(MediaItem(f"{src.kind}:{rel}", p.domain, uri, None))
        return out
    keys = []
    for i, sample in enumerate(_samples(cfg)):
        if i >= start + p.images:
            break
        if i >= start:
            keys.append(MediaItem(f"wds:{sample.key}", p.domain, None, i))
    return keys


def _samples(cfg: CampaignConfig) -> Iterator:
    from storage.shards import ShardReader

    return iter(ShardReader(cfg.source.shards, skip_bad=True))


def units(items: list[MediaItem], per_unit: int) -> dict[str, list[MediaItem]]:
    """Fixed slices of a phase's items, keyed u00000, u00001, ..."""
    return {f"u{k // per_unit:05d}": items[k:k + per_unit] for k in range(0, len(items), per_unit)}


def phase_units(cfg: CampaignConfig, phase: int, store: ObjectStore | None = None) -> dict[str, list[MediaItem]]:
    return units(phase_items(cfg, phase, store), cfg.phase(phase).per_unit)


def _size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.verify()
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def materialise(cfg: CampaignConfig, layout, item: MediaItem) -> tuple[str, int, int, bytes]:
    """(media URI, width, height, bytes) of an item; shapes / WebDataset media are written once."""
    store = layout.store
    if cfg.source.kind == "shapes":
        uri = layout.media(item.domain, item.media_id)
        size = cfg.source.image_size
        if store.exists(uri):
            return store.uri(uri), size, size, store.read_bytes(uri)
        from engine.world import render_scene
        from engine.world.samples import encode_png

        scene = render_scene(cfg.source.seed, item.index, item.domain, size)
        data = encode_png(scene.image)
        return store.write_bytes(uri, data), size, size, data
    if cfg.source.kind == "webdataset":
        key = item.media_id.removeprefix("wds:")
        for i, sample in enumerate(_samples(cfg)):
            if i == item.index and sample.key == key:
                uri = layout.media(item.domain, item.media_id, sample.image_ext)
                if not store.exists(uri):
                    store.write_bytes(uri, sample.image)
                return store.uri(uri), sample.width, sample.height, sample.image
        raise SourceError(f"webdataset sample {key!r} (position {item.index}) is no longer in source.shards")
    data = store.read_bytes(item.uri)
    w, h = _size(data)
    return item.uri, w, h, data
