"""Exact, vectorised rasterisers for the world's shapes.

Every shape is a pure inside-test on object-local coordinates (u, v) in pixels — the pixel centre
relative to the object centre, rotated by the object's angle — against its circumradius r. Masks are
hard-edged (no anti-aliasing), so the rendered pixels *are* the ground-truth mask. `rasterise` works
on the object's clipped bounding box only, which keeps rendering cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

InsideTest = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


def _regular_polygon(n: int, phase: float = -math.pi / 2) -> InsideTest:
    """Regular n-gon of circumradius r with a vertex at angle `phase` (default: pointing up)."""
    normals = np.array([phase + (2 * k + 1) * math.pi / n for k in range(n)])
    cos_n, sin_n = np.cos(normals)[:, None, None], np.sin(normals)[:, None, None]
    apothem = math.cos(math.pi / n)

    def inside(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
        return np.all(u[None] * cos_n + v[None] * sin_n <= apothem * r, axis=0)

    return inside


def _circle(u, v, r):
    return u * u + v * v <= r * r


def _ring(u, v, r):
    d2 = u * u + v * v
    return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)


def _square(u, v, r):
    half = r / math.sqrt(2.0)
    return (np.abs(u) <= half) & (np.abs(v) <= half)


def _diamond(u, v, r):
    return np.abs(u) / (0.62 * r) + np.abs(v) / r <= 1.0


def _cross(u, v, r):
    arm, length = 0.3 * r, 0.95 * r
    au, av = np.abs(u), np.abs(v)
    return ((au <= arm) & (av <= length)) | ((av <= arm) & (au <= length))


def _crescent(u, v, r):
    return (u * u + v * v <= r * r) & ((u - 0.45 * r) ** 2 + v * v > (0.8 * r) ** 2)


_STAR_POINTS, _STAR_INNER = 5, 0.45


def _star(u, v, r):
    sector = 2 * math.pi / _STAR_POINTS
    rho = np.hypot(u, v)
    phi = np.mod(np.arctan2(v, u) + math.pi / 2, sector)  # outer vertex points up
    phi = np.minimum(phi, sector - phi)  # fold onto [0, sector/2]
    px, py = rho * np.cos(phi), rho * np.sin(phi)
    bx, by = _STAR_INNER * r * math.cos(sector / 2), _STAR_INNER * r * math.sin(sector / 2)
    return (bx - r) * py - by * (px - r) >= 0


SHAPES: dict[str, InsideTest] = {
    "circle": _circle,
    "ring": _ring,
    "square": _square,
    "triangle": _regular_polygon(3),
    "hexagon": _regular_polygon(6, phase=0.0),
    "diamond": _diamond,
    "star": _star,
    "cross": _cross,
    "crescent": _crescent,
}


@dataclass
class Raster:
    """A shape's pixels inside its clipped bounding box [y0:y1, x0:x1], plus local coordinates."""

    y0: int
    x0: int
    mask: np.ndarray  # bool (h, w)
    u: np.ndarray  # float32 (h, w), rotated object-local x
    v: np.ndarray
    r: float  # circumradius in pixels

    @property
    def slices(self) -> tuple[slice, slice]:
        h, w = self.mask.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def rasterise(
    shape: str, cx: float, cy: float, r: float, angle: float, height: int, width: int
) -> Raster | None:
    """The shape's exact mask clipped to the image, or None when nothing of it is inside."""
    try:
        inside = SHAPES[shape]
    except KeyError:
        raise ValueError(f"no rasteriser for shape {shape!r} (known: {sorted(SHAPES)})") from None
    y0, y1 = max(0, int(math.floor(cy - r - 1))), min(height, int(math.ceil(cy + r + 1)))
    x0, x1 = max(0, int(math.floor(cx - r - 1))), min(width, int(math.ceil(cx + r + 1)))
    if y1 <= y0 or x1 <= x0:
        return None
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
    c, s = math.cos(angle), math.sin(angle)
    u = dx * c + dy * s
    v = dy * c - dx * s
    mask = inside(u, v, r)
    if not mask.any():
        return None
    return Raster(y0, x0, mask, u, v, r)
