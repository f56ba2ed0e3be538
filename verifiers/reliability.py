"""Reliability-diagram PNGs drawn with PIL (no plotting library needed).

`reliability_png(curves, path)` draws, for each named curve (the `bins` of
`verifiers.calibration.reliability`), the observed frequency of the positive label against the mean
predicted probability in each bin, over the diagonal of perfect calibration, with a bar chart of the
bin counts below and a legend with each curve's ECE. Plot geometry is exposed (`PLOT`) so tests can
check pixels.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = (560, 620)
PLOT = (70, 40, 530, 500)  # x0, y0, x1, y1 of the calibration panel (probability 0..1 on both axes)
HIST = (70, 530, 530, 600)  # the count bars
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
DIAGONAL = (150, 150, 150)


def to_pixel(p: float, q: float) -> tuple[int, int]:
    """Pixel of (predicted p, observed q) in the calibration panel."""
    x0, y0, x1, y1 = PLOT
    return round(x0 + p * (x1 - x0)), round(y1 - q * (y1 - y0))


def reliability_png(curves: dict[str, dict], path: str | Path, title: str = "reliability") -> Path:
    """Write the diagram of `curves` {name: reliability dict} to `path` (PNG); returns the path."""
    img = Image.new("RGB", SIZE, "white")
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = PLOT
    d.rectangle(PLOT, outline="black")
    for t in range(11):
        v = t / 10
        px, _ = to_pixel(v, 0)
        _, py = to_pixel(0, v)
        d.line([(px, y1), (px, y1 + 4)], fill="black")
        d.line([(x0 - 4, py), (x0, py)], fill="black")
        if t % 2 == 0:
            d.text((px - 8, y1 + 6), f"{v:.1f}", fill="black")
            d.text((x0 - 32, py - 5), f"{v:.1f}", fill="black")
    d.line([to_pixel(0, 0), to_pixel(1, 1)], fill=DIAGONAL, width=1)
    d.text((x0, 12), title, fill="black")
    d.text(((x0 + x1) // 2 - 60, y1 + 16), "mean predicted P", fill="black")
    d.text((8, y0 - 14), "observed", fill="black")
    hx0, hy0, hx1, hy1 = HIST
    d.rectangle(HIST, outline="black")
    n_curves = max(1, len(curves))
    for c, (name, rel) in enumerate(curves.items()):
        colour = COLOURS[c % len(COLOURS)]
        pts = [to_pixel(b["mean_p"], b["observed"]) for b in rel["bins"] if b["count"]]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        for px, py in pts:
            d.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour)
        top = max((b["count"] for b in rel["bins"]), default=0) or 1
        for b in rel["bins"]:
            if not b["count"]:
                continue
            bx0 = hx0 + b["lo"] * (hx1 - hx0)
            width = (b["hi"] - b["lo"]) * (hx1 - hx0) / n_curves
            bl = bx0 + c * width
            h = (hy1 - hy0 - 2) * b["count"] / top
            d.rectangle([bl + 1, hy1 - h, bl + width - 1, hy1 - 1], fill=colour)
        d.text(
            (x0 + 10, y0 + 10 + 16 * c), f"{name}  ECE {rel['ece']:.3f}  n={rel['n']}", fill=colour
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path
