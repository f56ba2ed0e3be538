"""Rendering verifier inputs for a multimodal LLM, as the SAM 3 paper does (§D.4).

- MV (`render_mv`): two square panels side by side. Left, a zoomed-out crop (the mask's box grown
  `context_scale` times, at least `min_context` of the image side) with the box drawn around the
  object; right, a zoomed-in crop (the box grown `zoom_scale` times) with the mask overlaid in a
  translucent colour and its outline opaque.
- EV (`render_ev`): the image with every accepted mask's box drawn in red; the plain image (pixel for
  pixel) when there are no masks.

Crops are square windows in image pixels (`Window`), may extend past the image (padded with grey)
and are resized to `panel` pixels; `mv_windows` gives both windows so callers and tests can map
image pixels to panel pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

BOX_COLOUR = (255, 0, 0)
MASK_COLOUR = (0, 160, 255)
MASK_ALPHA = 0.5
PAD_COLOUR = (128, 128, 128)


@dataclass(frozen=True)
class Window:
    x0: float
    y0: float
    side: float

    def to_panel(self, x: float, y: float, panel: int) -> tuple[float, float]:
        s = panel / self.side
        return (x - self.x0) * s, (y - self.y0) * s


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1) of a mask, exclusive ends; ValueError for an empty mask."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        raise ValueError("cannot render an empty mask")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _window(box, scale: float, min_side: float) -> Window:
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * scale
    side = max(side, min_side, 8.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Window(cx - side / 2, cy - side / 2, side)


def mv_windows(
    mask: np.ndarray, context_scale: float = 3.0, zoom_scale: float = 1.4, min_context: float = 0.5
) -> tuple[Window, Window]:
    """(zoomed-out window, zoomed-in window) of a mask, in image pixels."""
    h, w = mask.shape
    box = mask_box(mask)
    return _window(box, context_scale, min_context * max(h, w)), _window(box, zoom_scale, 0.0)


def _crop(img: Image.Image, win: Window, panel: int, resample) -> Image.Image:
    box = (round(win.x0), round(win.y0), round(win.x0 + win.side), round(win.y0 + win.side))
    canvas = Image.new(
        img.mode, (box[2] - box[0], box[3] - box[1]), PAD_COLOUR if img.mode == "RGB" else 0
    )
    canvas.paste(img, (-box[0], -box[1]))
    return canvas.resize((panel, panel), resample)


def render_mv(
    image: np.ndarray, mask: np.ndarray, panel: int = 384, **window_kwargs
) -> Image.Image:
    """The MV input: zoomed-out crop with a box | zoomed-in crop with the mask overlaid."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
    outer, inner = mv_windows(mask, **window_kwargs)
    pil = Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8), "RGB")
    left = _crop(pil, outer, panel, Image.BILINEAR)
    x0, y0, x1, y1 = mask_box(mask)
    a = outer.to_panel(x0, y0, panel)
    b = outer.to_panel(x1, y1, panel)
    ImageDraw.Draw(left).rectangle([a[0], a[1], b[0], b[1]], outline=BOX_COLOUR, width=2)
    right = np.asarray(_crop(pil, inner, panel, Image.BILINEAR)).astype(np.float32)
    m_img = Image.fromarray(mask.astype(np.uint8) * 255, "L")
    m = np.asarray(_crop(m_img, inner, panel, Image.NEAREST)) > 127
    right[m] = (1 - MASK_ALPHA) * right[m] + MASK_ALPHA * np.array(MASK_COLOUR, np.float32)
    edge = m & ~_erode(m)
    right[edge] = MASK_COLOUR
    out = Image.new("RGB", (2 * panel, panel))
    out.paste(left, (0, 0))
    out.paste(Image.fromarray(np.round(right).astype(np.uint8), "RGB"), (panel, 0))
    return out


def _erode(m: np.ndarray) -> np.ndarray:
    e = m.copy()
    e[1:, :] &= m[:-1, :]
    e[:-1, :] &= m[1:, :]
    e[:, 1:] &= m[:, :-1]
    e[:, :-1] &= m[:, 1:]
    return e


def render_ev(image: np.ndarray, masks: list[np.ndarray], width: int = 2) -> Image.Image:
    """The EV input: accepted masks as red boxes; the plain image when there are none."""
    pil = Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8), "RGB")
    if not masks:
        return pil
    d = ImageDraw.Draw(pil)
    for m in masks:
        if m.shape != image.shape[:2]:
            raise ValueError(f"mask {m.shape} does not match image {image.shape[:2]}")
        x0, y0, x1, y1 = mask_box(m)
        d.rectangle([x0, y0, x1 - 1, y1 - 1], outline=BOX_COLOUR, width=width)
    return pil
