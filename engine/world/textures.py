"""Object fill patterns and domain backgrounds for the shapes world (vectorised numpy).

A pattern is a function of an object's local coordinates (u, v) and radius r that returns where the
object's *second* tone goes (a darker shade of its colour), so the colour stays readable whatever the
pattern. Backgrounds are textured and cluttered (smooth noise, paper grid, wood grain, scribbled lines;
a starry sky for the `night` domain) but never contain grammar shapes, so they add no instances.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image

PatternFn = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


def _period(r: float, k: float, floor: float) -> float:
    return max(floor, k * r)


def _solid(u, v, r):
    return np.zeros(u.shape, dtype=bool)


def _striped(u, v, r):
    p = _period(r, 0.55, 5.0)
    return np.floor(u / (p / 2)).astype(np.int32) % 2 == 1


def _dotted(u, v, r):
    p = _period(r, 0.6, 5.0)
    du, dv = np.mod(u, p) - p / 2, np.mod(v, p) - p / 2
    return du * du + dv * dv <= (0.3 * p) ** 2


def _checkered(u, v, r):
    p = _period(r, 0.5, 4.0)
    return (np.floor(u / p).astype(np.int32) + np.floor(v / p).astype(np.int32)) % 2 == 1


def _wavy(u, v, r):
    p = _period(r, 0.6, 6.0)
    shifted = u + 0.3 * p * np.sin(2 * math.pi * v / (1.4 * p))
    return np.floor(shifted / (p / 2)).astype(np.int32) % 2 == 1


def _zigzag(u, v, r):
    p = _period(r, 0.6, 6.0)
    tri = np.abs(np.mod(v / p, 1.0) - 0.5) * p * 0.8
    return np.floor((u + tri) / (p / 2)).astype(np.int32) % 2 == 1


PATTERNS: dict[str, PatternFn] = {
    "solid": _solid,
    "striped": _striped,
    "dotted": _dotted,
    "checkered": _checkered,
    "wavy": _wavy,
    "zigzag": _zigzag,
}


def second_tone(rgb: np.ndarray) -> np.ndarray:
    """The pattern's second tone: a darker shade (a mid grey for near-white colours)."""
    return rgb * (0.62 if rgb.min() > 200 else 0.45)


def pattern_mask(pattern: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    try:
        fn = PATTERNS[pattern]
    except KeyError:
        raise ValueError(f"no renderer for pattern {pattern!r} (known: {sorted(PATTERNS)})") from None
    return fn(u, v, r)


# --- backgrounds ---------------------------------------------------------------------------------


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinear value noise in [0, 1], (size, size) float32, `cells` control points per side."""
    grid = rng.random((cells, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.Resampling.BILINEAR))


def _draw_polyline(img: np.ndarray, xs: np.ndarray, ys: np.ndarray, rgb, alpha: float) -> None:
    h, w = img.shape[1:]
    ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    yy, xx = ys[ok].astype(np.int32), xs[ok].astype(np.int32)
    for c in range(3):
        img[c, yy, xx] = img[c, yy, xx] * (1 - alpha) + float(rgb[c]) * alpha


def scribbles(img: np.ndarray, rng: np.random.Generator, rgb, count: int, alpha: float = 0.45) -> None:
    """Draw `count` 1-px clutter strokes (straight lines and gentle curves) onto img in place."""
    size = img.shape[1]
    x0, y0 = rng.uniform(0, size, (2, count))
    length, theta = rng.uniform(0.2, 0.8, count) * size, rng.uniform(0, 2 * math.pi, count)
    bend, freq = rng.uniform(0, 0.08, count) * size, rng.uniform(0.5, 2.0, count)
    steps = (length * 1.5).astype(np.int64) + 2
    stroke = np.repeat(np.arange(count), steps)
    t = (np.arange(steps.sum()) - np.repeat(np.cumsum(steps) - steps, steps)) / np.repeat(steps - 1, steps)
    off = bend[stroke] * np.sin(2 * math.pi * freq[stroke] * t)
    c, s = np.cos(theta)[stroke], np.sin(theta)[stroke]
    xs = x0[stroke] + t * length[stroke] * c - off * s
    ys = y0[stroke] + t * length[stroke] * s + off * c
    _draw_polyline(img, xs, ys, rgb, alpha)


def _planes(size: int, per_channel) -> np.ndarray:
    """A (3, size, size) float32 image whose channel c is per_channel(c)."""
    img = np.empty((3, size, size), dtype=np.float32)
    for c in range(3):
        img[c] = per_channel(c)
    return img


def _paper(rng: np.random.Generator, size: int, clutter_rgb) -> np.ndarray:
    tone = (rng.uniform(175, 225) + rng.uniform(-12, 12, 3)).astype(np.float32)
    lum = smooth_noise(rng, size, 5) * 36 - 18 + smooth_noise(rng, size, 24) * 14 - 7
    style = rng.integers(3)
    tint = np.ones(3, np.float32)
    if style == 1:  # graph paper
        step = int(rng.integers(10, 22))
        lines = (np.arange(size) % step) == 0
        lum[lines, :] -= 0.18 * tone.mean()
        lum[:, lines] -= 0.18 * tone.mean()
    elif style == 2:  # wood grain
        yy = np.arange(size, dtype=np.float32)[:, None]
        warp = smooth_noise(rng, size, 4) * size * 0.15
        lum += np.sin((yy + warp) * rng.uniform(0.25, 0.6)) * 10
        tint = np.array([1.0, 0.9, 0.75], np.float32)
    img = _planes(size, lambda c: (lum + tone[c]) * tint[c])
    scribbles(img, rng, clutter_rgb, int(rng.integers(3, 9)))
    return img


def _night_sky(rng: np.random.Generator, size: int, clutter_rgb) -> np.ndarray:
    top = np.array([10, 14, 40], np.float32) + rng.uniform(-6, 6, 3).astype(np.float32)
    bottom = np.array([2, 3, 12], np.float32)
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None]
    haze = smooth_noise(rng, size, 6)
    rows = np.arange(size, dtype=np.float32)[:, None]
    centre = rng.uniform(0, size) + smooth_noise(rng, size, 3) * 40
    band = np.exp(-((rows - centre) ** 2) / (2 * (size * 0.08) ** 2)) * rng.uniform(0.3, 1.0)
    haze_rgb, band_rgb = (8, 14, 30), (10, 40, 30)
    img = _planes(size, lambda c: top[c] * (1 - t) + bottom[c] * t + haze * haze_rgb[c] + band * band_rgb[c])
    n_stars = int(size * size * rng.uniform(0.001, 0.003))
    ys, xs = rng.integers(0, size, n_stars), rng.integers(0, size, n_stars)
    img[:, ys, xs] = rng.uniform(150, 230, n_stars).astype(np.float32)
    scribbles(img, rng, clutter_rgb, int(rng.integers(2, 6)), alpha=0.35)
    return img


BACKGROUNDS: dict[str, Callable[[np.random.Generator, int, tuple], np.ndarray]] = {
    "paper": _paper,
    "night_sky": _night_sky,
}


def background(kind: str, rng: np.random.Generator, size: int, clutter_rgb) -> np.ndarray:
    """A (3, size, size) float32 background image (channel planes) of the given family."""
    return BACKGROUNDS[kind](rng, size, clutter_rgb)
