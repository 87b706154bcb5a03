"""Pictures people look at, drawn with Pillow: training curves and confusion matrices."""

from __future__ import annotations

import math
from collections.abc import Sequence

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _font(size: int = 12):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _save(img, path) -> None:
    from songkit.core.io import open_output

    with open_output(path, "wb") as f:
        img.save(f, format="PNG")


def _panel(draw, box, series: dict[str, list[tuple[float, float]]], title: str, font) -> None:
    """Draw one line chart of named (x, y) series inside ``box`` = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    px0, py0, px1, py1 = x0 + 60, y0 + 24, x1 - 10, y1 - 30
    draw.rectangle([px0, py0, px1, py1], outline=(0, 0, 0))
    draw.text((x0 + 60, y0 + 4), title, fill=(0, 0, 0), font=font)
    points = [p for s in series.values() for p in s if math.isfinite(p[1])]
    if not points:
        return
    xmin, xmax = min(p[0] for p in points), max(p[0] for p in points)
    ymin, ymax = min(p[1] for p in points), max(p[1] for p in points)
    if xmax == xmin:
        xmax = xmin + 1
    if ymax == ymin:
        ymax, ymin = ymax + 0.5, ymin - 0.5
    pad = 0.05 * (ymax - ymin)
    ymin, ymax = ymin - pad, ymax + pad

    def xy(x: float, y: float) -> tuple[float, float]:
        return (px0 + (x - xmin) / (xmax - xmin) * (px1 - px0), py1 - (y - ymin) / (ymax - ymin) * (py1 - py0))

    for i in range(5):  # y ticks
        v = ymin + (ymax - ymin) * i / 4
        _, yy = xy(xmin, v)
        draw.line([px0 - 4, yy, px0, yy], fill=(0, 0, 0))
        draw.text((x0 + 2, yy - 6), f"{v:.3g}", fill=(0, 0, 0), font=font)
    for x in sorted({p[0] for p in points})[:: max(1, len({p[0] for p in points}) // 8)]:
        xx, _ = xy(x, ymin)
        draw.line([xx, py1, xx, py1 + 4], fill=(0, 0, 0))
        draw.text((xx - 4, py1 + 6), f"{x:g}", fill=(0, 0, 0), font=font)
    ly = py0 + 4
    for k, (name, pts) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        pts = [p for p in pts if math.isfinite(p[1])]
        if len(pts) > 1:
            draw.line([xy(*p) for p in pts], fill=color, width=2)
        for p in pts:
            cx, cy = xy(*p)
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=color)
        draw.line([px1 - 150, ly + 6, px1 - 130, ly + 6], fill=color, width=2)
        draw.text((px1 - 125, ly), name, fill=(0, 0, 0), font=font)
        ly += 14


def curves_png(history: Sequence[dict], path, x_key: str = "epoch") -> None:
    """Loss curves (left) and every other per-epoch metric (right) from a training history."""
    from PIL import Image, ImageDraw

    losses: dict[str, list] = {}
    metrics: dict[str, list] = {}
    for row in history:
        x = row.get(x_key)
        for key, value in row.items():
            if key in (x_key, "lr", "time", "seconds", "step", "items_per_s") or not isinstance(value, (int, float)):
                continue
            target = losses if "loss" in key else metrics
            target.setdefault(key, []).append((float(x), float(value)))
    width = 1100 if metrics else 560
    img = Image.new("RGB", (width, 360), "white")
    draw = ImageDraw.Draw(img)
    font = _font()
    _panel(draw, (0, 0, 550, 360), losses, "loss", font)
    if metrics:
        _panel(draw, (550, 0, 1100, 360), metrics, "metrics", font)
    _save(img, path)


def confusion_png(matrix, labels: Sequence[str], path,
                  title: str = "confusion matrix (rows: truth, normalised)") -> None:
    """A row-normalised confusion matrix as a heat map with labels and counts."""
    import numpy as np
    from PIL import Image, ImageDraw

    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    cell = max(14, min(48, 800 // max(n, 1)))
    font = _font(max(8, min(12, cell // 3)))
    margin = 10 + 7 * max((len(str(s)) for s in labels), default=1)
    top = 24
    gy = top + margin  # the grid starts below the rotated column labels
    size = (max(margin + n * cell + 20, 8 * len(title) + margin), gy + n * cell + 10)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((margin, 4), title, fill=(0, 0, 0), font=_font(12))
    for i in range(n):
        draw.text((4, gy + i * cell + cell // 3), str(labels[i]), fill=(0, 0, 0), font=font)
        for j in range(n):
            v = norm[i, j]
            shade = int(255 * (1 - v))
            x, y = margin + j * cell, gy + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255), outline=(220, 220, 220))
            if cell >= 28 and m[i, j] > 0:
                draw.text((x + 2, y + cell // 3), f"{v:.2f}", fill=(0, 0, 0) if v < 0.6 else (255, 255, 255), font=font)
    for j in range(n):  # column labels, written vertically
        label = str(labels[j])
        txt = Image.new("RGBA", (margin, cell), (255, 255, 255, 0))
        ImageDraw.Draw(txt).text((2, cell // 3), label, fill=(0, 0, 0), font=font)
        rot = txt.rotate(90, expand=True)
        img.paste(rot, (margin + j * cell, top), rot)
    _save(img, path)
