"""Shapes-world videos for phase 4: moving objects with per-frame masks and stable track ids.

`generate_video(seed, index, domain, n_frames, image_size)` renders a static textured background and
4-8 objects that translate and spin at constant speed. Most bounce off the frame edges; *wanderers*
bounce off walls outside the frame, so they leave and later re-enter (with `guarantee_reentry`, the
first track is a wanderer timed to leave and come back within the clip). Objects keep a fixed depth
order, so they occlude each other when they cross. Frame t's label map holds track ids (0 =
background): a track's mask in a frame is its visible part, and a track whose visible part is tiny
(see `engine.world.scene`) is absent from that frame, exactly as in still images. Track ids are
stable for the whole video. Videos have no crowd clusters.

`Video.masklets(phrase)` gives, per track the phrase denotes, its per-frame masks (None where
absent): the video-NP pair ground truth.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from engine.world.phrases import Semantics, semantics
from engine.world.scene import (
    ObjectSpec,
    Part,
    _radius,
    _random_kind,
    _tint,
    finish,
    paint,
    streams,
    visible_objects,
)
from engine.world.textures import background
from engine.world.vocab import vocabulary

_KEY_RE = re.compile(r"^shapesvid-([a-z][a-z0-9_]*)-(\d+)-(\d+)-(\d+)$")
OUTSIDE_MARGIN = 0.2  # how far past the frame edge (beyond the radius) wanderers turn back


def video_key(domain: str, image_size: int, seed: int, index: int) -> str:
    return f"shapesvid-{domain}-{image_size}-{seed}-{index:06d}"


def parse_video_key(key: str) -> tuple[str, int, int, int]:
    m = _KEY_RE.match(key)
    if not m:
        raise ValueError(
            f"{key!r} is not a shapes-world video id (expected shapesvid-<domain>-<size>-<seed>-<index>)")
    return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))


@dataclass(frozen=True)
class Motion:
    """Constant-velocity motion reflected between walls (image-relative units, per frame)."""

    x0: float
    y0: float
    vx: float
    vy: float
    spin: float
    angle0: float
    lo: float  # walls, same on both axes
    hi: float

    def at(self, t: int) -> tuple[float, float, float]:
        x = _reflect(self.x0 + self.vx * t, self.lo, self.hi)
        y = _reflect(self.y0 + self.vy * t, self.lo, self.hi)
        return x, y, self.angle0 + self.spin * t


def _reflect(x: float, lo: float, hi: float) -> float:
    span = hi - lo
    m = (x - lo) % (2 * span)
    return lo + (m if m <= span else 2 * span - m)


@dataclass
class Track:
    track_id: int
    shape: str
    colour: str
    pattern: str
    size: str
    wanderer: bool

    @property
    def attrs(self) -> dict[str, str]:
        return {"shape": self.shape, "colour": self.colour, "pattern": self.pattern, "size": self.size}


@dataclass
class Video:
    key: str
    domain: str
    seed: int
    index: int
    frames: np.ndarray  # (T, H, W, 3) uint8
    labels: np.ndarray  # (T, H, W) int16 track ids, 0 = background
    tracks: list[Track]

    @property
    def n_frames(self) -> int:
        return self.frames.shape[0]

    def mask(self, t: int, track_id: int) -> np.ndarray:
        return self.labels[t] == track_id

    def presence(self) -> dict[int, np.ndarray]:
        """Per track, a (T,) bool array: is it visible (labelled) in frame t."""
        present = {tr.track_id: np.zeros(self.n_frames, dtype=bool) for tr in self.tracks}
        for t in range(self.n_frames):
            for tid in np.unique(self.labels[t]):
                if tid:
                    present[int(tid)][t] = True
        return present

    def masklets(self, phrase: str, sem: Semantics | None = None) -> dict[int, list[np.ndarray | None]]:
        """Per track the phrase denotes (visible at least once): its mask per frame, None if absent."""
        sem = sem or semantics()
        out = {}
        for tr in sem.select(phrase, self.tracks):
            masks = [self.mask(t, tr.track_id) for t in range(self.n_frames)]
            masks = [m if m.any() else None for m in masks]
            if any(m is not None for m in masks):
                out[tr.track_id] = masks
        return out


def _wanderer_motion(rng: np.random.Generator, r: float, n_frames: int, forced: bool) -> Motion:
    lo, hi = -r - OUTSIDE_MARGIN, 1 + r + OUTSIDE_MARGIN
    if forced:  # start inside near the right edge, heading out; back in by ~3/4 of the clip
        x0 = float(rng.uniform(0.6, 0.75))
        trip = (hi - x0) + (hi - (1 - r))
        vx = trip / max(2.0, 0.75 * (n_frames - 1))
        vy = float(rng.uniform(-0.01, 0.01))
        return Motion(x0, float(rng.uniform(0.25, 0.75)), vx, vy, float(rng.uniform(-0.2, 0.2)),
                      float(rng.uniform(0, 2 * math.pi)), lo, hi)
    speed, heading = float(rng.uniform(0.03, 0.07)), float(rng.uniform(0, 2 * math.pi))
    x0, y0 = (float(v) for v in rng.uniform(0.1, 0.9, 2))
    spin, angle0 = float(rng.uniform(-0.2, 0.2)), float(rng.uniform(0, 2 * math.pi))
    return Motion(x0, y0, speed * math.cos(heading), speed * math.sin(heading), spin, angle0, lo, hi)


def _bouncer_motion(rng: np.random.Generator, r: float) -> Motion:
    speed, heading = float(rng.uniform(0.01, 0.04)), float(rng.uniform(0, 2 * math.pi))
    x0, y0 = (float(v) for v in rng.uniform(r, 1 - r, 2))
    spin, angle0 = float(rng.uniform(-0.15, 0.15)), float(rng.uniform(0, 2 * math.pi))
    return Motion(x0, y0, speed * math.cos(heading), speed * math.sin(heading), spin, angle0, r, 1 - r)


def generate_video(seed: int, index: int, domain: str = "base", n_frames: int = 24, image_size: int = 224,
                   guarantee_reentry: bool = True) -> Video:
    """Video `index` of the world with seed `seed`; deterministic, independent of other videos."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames!r}")
    if guarantee_reentry and n_frames < 6:
        raise ValueError(f"guarantee_reentry needs at least 6 frames to leave and come back, got {n_frames}")
    vocab = vocabulary(domain)
    layout_rng, bg_rng, noise_rng, _ = streams(seed, index, f"video:{domain}")
    tracks, specs, motions = [], [], []
    for k in range(int(layout_rng.integers(4, 9))):
        shape, colour, pattern = _random_kind(layout_rng, vocab)
        size = ("small", "large")[int(layout_rng.integers(0, 2))]
        r = _radius(layout_rng, size)
        forced = guarantee_reentry and k == 0
        wanderer = forced or layout_rng.random() < 0.3
        motions.append(_wanderer_motion(layout_rng, r, n_frames, forced) if wanderer
                       else _bouncer_motion(layout_rng, r))
        specs.append(ObjectSpec(shape, colour, pattern, size, (Part(0.5, 0.5, r, 0.0),), tint=_tint(layout_rng)))
        tracks.append(Track(k + 1, shape, colour, pattern, size, wanderer))
    depth = layout_rng.permutation(len(specs))  # drawing order; the forced wanderer is not always on top
    bg = background(vocab.style.background, bg_rng, image_size, vocab.style.clutter_rgb)
    frames = np.empty((n_frames, image_size, image_size, 3), dtype=np.uint8)
    labels = np.zeros((n_frames, image_size, image_size), dtype=np.int16)
    for t in range(n_frames):
        frame_specs = []
        for i in depth:
            x, y, angle = motions[i].at(t)
            part = Part(x, y, specs[i].parts[0].r, angle)
            frame_specs.append(ObjectSpec(**{**specs[i].__dict__, "parts": (part,)}))
        drawn = visible_objects(frame_specs, image_size)
        image = bg.copy()
        paint(image, labels[t], drawn, ids=[int(depth[d.index]) + 1 for d in drawn])
        frames[t] = finish(image, noise_rng, vocab.style.noise_sigma)
    return Video(video_key(domain, image_size, seed, index), domain, seed, index, frames, labels, tracks)
