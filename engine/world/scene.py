"""Scene layout, occlusion and rendering: one deterministic image with exact instance masks.

`render_scene(seed, index, domain, image_size)` is a pure function: image `index` of seed `seed` is
the same however many images are generated, because its random streams are seeded from
(seed, index, domain) alone. Layouts are sampled in image-relative units, so the same (seed, index)
gives the same scene at any image size.

Scenes are *regular* (3-9 objects of mixed sizes, a few repeated kinds) or *crowded* (22-33 small
objects, up to 2 large ones). Some scenes add unseparable clusters: 5-9 touching small objects of
one kind, labelled as a single crowd instance (`iscrowd`). Objects are drawn in z order, later on top;
an instance's mask is its visible part. An object whose visible part would be tiny (under 30 % of
its own area or under 30 px at 224 px) is not drawn at all, so every drawn pixel of an object belongs
to a labelled instance. Visible masks are disjoint by construction: they are read from one label map.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from engine.world.shapes import Raster, rasterise
from engine.world.textures import background, pattern_mask, second_tone
from engine.world.vocab import COLOURS_RGB, CROWD_RADIUS, SIZE_RANGES, Vocabulary, vocabulary

MIN_VISIBLE_FRACTION = 0.3
MIN_VISIBLE_PX_224 = 30  # scaled by (image_size / 224) ** 2

_KEY_RE = re.compile(r"^shapes-([a-z][a-z0-9_]*)-(\d+)-(\d+)-(\d+)$")


def media_key(domain: str, image_size: int, seed: int, index: int) -> str:
    """The media id of a world image; it encodes everything needed to regenerate the image."""
    return f"shapes-{domain}-{image_size}-{seed}-{index:06d}"


def parse_media_key(key: str) -> tuple[str, int, int, int]:
    """(domain, image_size, seed, index) of a world media id; ValueError naming the key otherwise."""
    m = _KEY_RE.match(key)
    if not m:
        raise ValueError(
            f"{key!r} is not a shapes-world media id (expected shapes-<domain>-<size>-<seed>-<index>)")
    return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))


def streams(seed: int, index: int, domain: str, n: int = 4) -> list[np.random.Generator]:
    """Independent generators for one image: layout, background, pixel noise, phrases."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if index < 0:
        raise ValueError(f"image index must be non-negative, got {index!r}")
    root = np.random.SeedSequence([int(seed), int(index), zlib.crc32(domain.encode())])
    return [np.random.default_rng(s) for s in root.spawn(n)]


@dataclass(frozen=True)
class Part:
    """One drawn shape, in image-relative units (centre and radius as fractions of the side)."""

    cx: float
    cy: float
    r: float
    angle: float


@dataclass(frozen=True)
class ObjectSpec:
    shape: str
    colour: str
    pattern: str
    size: str
    parts: tuple[Part, ...]
    crowd: bool = False
    tint: tuple[float, float, float] = (0.0, 0.0, 0.0)  # per-object colour jitter, in RGB units


@dataclass
class SceneObject:
    """A labelled instance: its attributes and visible extent. Its mask is `labels == id`."""

    id: int
    shape: str
    colour: str
    pattern: str
    size: str
    iscrowd: bool
    members: int
    area: int
    bbox: tuple[int, int, int, int]  # x, y, w, h in pixels (visible part)

    @property
    def attrs(self) -> dict[str, str]:
        return {"shape": self.shape, "colour": self.colour, "pattern": self.pattern, "size": self.size}

    @property
    def kind(self) -> tuple[str, str, str, str]:
        return (self.shape, self.colour, self.pattern, self.size)


@dataclass
class Scene:
    key: str
    domain: str
    seed: int
    index: int
    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) int16, 0 = background, k = objects[k-1]
    objects: list[SceneObject] = field(default_factory=list)
    layout: str = "regular"

    @property
    def size(self) -> int:
        return self.image.shape[0]

    def mask(self, object_id: int) -> np.ndarray:
        return self.labels == object_id


# --- layout --------------------------------------------------------------------------------------


def _tint(rng: np.random.Generator) -> tuple[float, float, float]:
    return tuple(float(x) for x in rng.uniform(-10, 10, 3))  # type: ignore[return-value]


def _random_kind(rng: np.random.Generator, vocab: Vocabulary) -> tuple[str, str, str]:
    i, j, k = rng.integers((len(vocab.shape), len(vocab.colour), len(vocab.pattern)))
    return (vocab.shape[i], vocab.colour[j], vocab.pattern[k])


def _radius(rng: np.random.Generator, size: str) -> float:
    lo, hi = SIZE_RANGES[size]
    return float(rng.uniform(lo, hi))


def _place(rng: np.random.Generator, r: float, placed: list[tuple[float, float, float]],
           spread: float) -> tuple[float, float]:
    """A centre that overlaps earlier objects by at most `spread` of the radii (best of 12 tries)."""
    cands = rng.uniform(0.04, 0.96, (12, 2))
    if not placed:
        return float(cands[0, 0]), float(cands[0, 1])
    prev = np.asarray(placed)
    dist = np.hypot(cands[:, None, 0] - prev[None, :, 0], cands[:, None, 1] - prev[None, :, 1])
    cost = np.maximum(((prev[None, :, 2] + r) * spread - dist).max(axis=1), 0.0)
    best = int(np.argmax(cost <= 0)) if (cost <= 0).any() else int(np.argmin(cost))
    return float(cands[best, 0]), float(cands[best, 1])


def _cluster(rng: np.random.Generator, vocab: Vocabulary) -> ObjectSpec:
    shape, colour, pattern = _random_kind(rng, vocab)
    r = float(rng.uniform(*CROWD_RADIUS))
    k = int(rng.integers(5, 10))
    spacing = r * float(rng.uniform(0.95, 1.15))
    # the first k points of a hexagonal lattice, nearest the cluster centre first
    lattice = [(i + 0.5 * j, j * math.sqrt(3) / 2) for i in range(-3, 4) for j in range(-3, 4)]
    lattice.sort(key=lambda p: (p[0] ** 2 + p[1] ** 2, p))
    cx, cy = rng.uniform(0.15, 0.85, 2)
    parts = tuple(
        Part(
            float(cx + (lx + rng.uniform(-0.1, 0.1)) * spacing),
            float(cy + (ly + rng.uniform(-0.1, 0.1)) * spacing),
            r * float(rng.uniform(0.92, 1.08)),
            float(rng.uniform(0, 2 * math.pi)),
        )
        for lx, ly in lattice[:k]
    )
    return ObjectSpec(shape, colour, pattern, "small", parts, crowd=True, tint=_tint(rng))


def sample_layout(rng: np.random.Generator, vocab: Vocabulary) -> tuple[str, list[ObjectSpec]]:
    """The scene's layout name and its objects, bottom (drawn first) to top."""
    crowded = rng.random() < 0.35
    palette = [_random_kind(rng, vocab) for _ in range(int(rng.integers(2, 5)))]
    specs: list[ObjectSpec] = []
    placed: list[tuple[float, float, float]] = []
    if crowded:
        plan = ["large"] * int(rng.integers(0, 3)) + ["small"] * int(rng.integers(22, 34))
        spread = 0.8
    else:
        plan = [("small", "large")[int(b)] for b in rng.integers(0, 2, int(rng.integers(3, 10)))]
        spread = 0.5
    for size in plan:
        kind = palette[int(rng.integers(len(palette)))] if rng.random() < 0.6 else _random_kind(rng, vocab)
        r = _radius(rng, size)
        cx, cy = _place(rng, r, placed, spread)
        placed.append((cx, cy, r))
        part = Part(cx, cy, r, float(rng.uniform(0, 2 * math.pi)))
        specs.append(ObjectSpec(*kind, size, (part,), tint=_tint(rng)))
    if rng.random() < 0.4:
        for _ in range(1 + int(rng.random() < 0.25)):
            specs.insert(int(rng.integers(0, len(specs) + 1)), _cluster(rng, vocab))
    return ("crowded" if crowded else "regular"), specs


# --- composition ---------------------------------------------------------------------------------


@dataclass
class _Drawn:
    spec: ObjectSpec
    rasters: list[Raster]
    y0: int
    x0: int
    mask: np.ndarray  # union of the parts in the object's bbox
    index: int = -1  # position of the spec in the layout


def _rasterise_object(spec: ObjectSpec, size: int) -> _Drawn | None:
    rasters = []
    for p in spec.parts:
        ras = rasterise(spec.shape, p.cx * size, p.cy * size, p.r * size, p.angle, size, size)
        if ras is not None:
            rasters.append(ras)
    if not rasters:
        return None
    if len(rasters) == 1:
        return _Drawn(spec, rasters, rasters[0].y0, rasters[0].x0, rasters[0].mask)
    y0 = min(r.y0 for r in rasters)
    x0 = min(r.x0 for r in rasters)
    y1 = max(r.y0 + r.mask.shape[0] for r in rasters)
    x1 = max(r.x0 + r.mask.shape[1] for r in rasters)
    union = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for r in rasters:
        h, w = r.mask.shape
        union[r.y0 - y0 : r.y0 - y0 + h, r.x0 - x0 : r.x0 - x0 + w] |= r.mask
    return _Drawn(spec, rasters, y0, x0, union)


def visible_objects(specs: list[ObjectSpec], size: int) -> list[_Drawn]:
    """The objects worth drawing (bottom to top): those whose visible part is not tiny."""
    drawn = []
    for i, spec in enumerate(specs):
        d = _rasterise_object(spec, size)
        if d is not None:
            d.index = i
            drawn.append(d)
    covered = np.zeros((size, size), dtype=bool)
    min_px = MIN_VISIBLE_PX_224 * (size / 224) ** 2
    keep = []
    for d in reversed(drawn):
        h, w = d.mask.shape
        region = covered[d.y0 : d.y0 + h, d.x0 : d.x0 + w]
        visible = int(np.count_nonzero(d.mask & ~region))
        if visible >= min_px and visible >= MIN_VISIBLE_FRACTION * np.count_nonzero(d.mask):
            region |= d.mask
            keep.append(d)
    return keep[::-1]


def paint(image: np.ndarray, labels: np.ndarray, drawn: list[_Drawn], ids: list[int] | None = None) -> None:
    """Draw objects bottom to top into image (3, H, W float32) and labels (default id: position + 1)."""
    ids = ids if ids is not None else list(range(1, len(drawn) + 1))
    for obj_id, d in zip(ids, drawn):
        rgb = np.asarray(COLOURS_RGB[d.spec.colour], np.float32) + np.asarray(d.spec.tint, np.float32)
        base = np.clip(rgb, 0, 255)
        dark = second_tone(base)
        for ras in d.rasters:
            sl = ras.slices
            second = pattern_mask(d.spec.pattern, ras.u, ras.v, ras.r)[ras.mask]
            for c in range(3):
                image[c][sl][ras.mask] = np.where(second, dark[c], base[c])
            labels[sl][ras.mask] = obj_id


def describe(labels: np.ndarray, drawn: list[_Drawn]) -> list[SceneObject]:
    areas = np.bincount(labels.ravel(), minlength=len(drawn) + 1)
    objects = []
    for obj_id, d in enumerate(drawn, start=1):
        h, w = d.mask.shape
        local = labels[d.y0 : d.y0 + h, d.x0 : d.x0 + w] == obj_id
        rows, cols = np.flatnonzero(local.any(axis=1)), np.flatnonzero(local.any(axis=0))
        bbox = (d.x0 + int(cols[0]), d.y0 + int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
        s = d.spec
        objects.append(
            SceneObject(obj_id, s.shape, s.colour, s.pattern, s.size, s.crowd, len(d.rasters),
                        int(areas[obj_id]), bbox)
        )
    return objects


_NOISE_TILE: list[np.ndarray] = []


def _noise_tile() -> np.ndarray:
    """A fixed 512x512 standard-normal tile (fixed seed): per-image noise is a random crop of it."""
    if not _NOISE_TILE:
        _NOISE_TILE.append(np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32))
    return _NOISE_TILE[0]


def finish(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Add grey sensor noise and quantise to an (H, W, 3) uint8 image."""
    size = image.shape[1]
    tile = _noise_tile()
    if size > tile.shape[0]:
        noise = np.tile(tile, (size // tile.shape[0] + 1,) * 2)[:size, :size]
    else:
        y, x = rng.integers(0, tile.shape[0] - size + 1, 2)
        noise = tile[y : y + size, x : x + size]
    image += noise * sigma
    np.clip(image, 0, 255, out=image)
    return np.ascontiguousarray(image.astype(np.uint8).transpose(1, 2, 0))


def render_scene(seed: int, index: int, domain: str = "base", image_size: int = 224) -> Scene:
    """Image `index` of the world with seed `seed`: pixels, label map and instance attributes."""
    if not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an integer >= 32, got {image_size!r}")
    vocab = vocabulary(domain)
    layout_rng, bg_rng, noise_rng, _ = streams(seed, index, domain)
    layout, specs = sample_layout(layout_rng, vocab)
    drawn = visible_objects(specs, image_size)
    image = background(vocab.style.background, bg_rng, image_size, vocab.style.clutter_rgb)
    labels = np.zeros((image_size, image_size), dtype=np.int16)
    paint(image, labels, drawn)
    return Scene(
        key=media_key(domain, image_size, seed, index),
        domain=domain,
        seed=seed,
        index=index,
        image=finish(image, noise_rng, vocab.style.noise_sigma),
        labels=labels,
        objects=describe(labels, drawn),
        layout=layout,
    )
