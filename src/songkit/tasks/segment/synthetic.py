"""The embedded default dataset: generated pictures of textured shapes, in the real VOC layout.

Six VOC classes, each a shape with a texture (colours are random, so only shape and texture tell
them apart), a void band around every object as VOC draws it. Deterministic from the seed; built once
into ``$SONGKIT_HOME`` by ``core.data.build_once`` (atomic: a killed build never reads as complete).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from songkit.tasks.segment.constants import IGNORE_INDEX
from songkit.tasks.segment.voc import save_mask_png

SYNTH_VERSION = 1
# class index -> (shape, texture): the network has to use shape and texture; colours are random.
SYNTH_CLASSES = {
    1: ("triangle", "hstripes"),  # aeroplane
    3: ("ellipse", "dots"),  # bird
    7: ("wide", "checker"),  # car
    8: ("circle", "vstripes"),  # cat
    12: ("diamond", "noise"),  # dog
    15: ("tall", "dstripes"),  # person
}


@dataclass
class SynthSpec:
    """How the embedded dataset is generated (deterministic from the seed)."""

    train: int = 200
    val: int = 50
    seed: int = 0
    border: int = 1  # width of the void band drawn around every object, as in VOC


def _texture(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A (h, w) pattern in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(4, 7)
    phase = rng.uniform(0, period)
    if kind == "hstripes":
        return ((yy + phase) % period < period / 2).astype(np.float32)
    if kind == "vstripes":
        return ((xx + phase) % period < period / 2).astype(np.float32)
    if kind == "dstripes":
        return ((xx + yy + phase) % period < period / 2).astype(np.float32)
    if kind == "checker":
        return ((((xx + phase) // (period / 2)) + ((yy + phase) // (period / 2))) % 2).astype(np.float32)
    if kind == "dots":
        dx = (xx + phase) % period - period / 2
        dy = (yy + phase) % period - period / 2
        return (dx * dx + dy * dy < (period / 3.2) ** 2).astype(np.float32)
    return (rng.random((h, w)) > 0.5).astype(np.float32)  # noise


def _shape_polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]] | None:
    if kind == "triangle":
        pts = [(0, -1), (0.9, 0.7), (-0.9, 0.7)]
    elif kind == "diamond":
        pts = [(0, -1), (0.7, 0), (0, 1), (-0.7, 0)]
    elif kind == "wide":
        pts = [(-1, -0.45), (1, -0.45), (1, 0.45), (-1, 0.45)]
    elif kind == "tall":
        pts = [(-0.35, -1), (0.35, -1), (0.35, 1), (-0.35, 1)]
    else:
        return None
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def synth_sample(rng: np.random.Generator, border: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One VOC-like picture: a textured background and 1-4 textured objects, with a void band."""
    w = int(rng.choice([96, 112, 128]))  # about a quarter of VOC's 500 x 375, so a CPU trains on it
    h = int(rng.choice([72, 80, 96]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # background: a smooth two-colour gradient with low-frequency blobs
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / (w + h) + 0.5
    t += 0.15 * np.sin(xx / rng.uniform(5, 12) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(5, 12))
    image = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    mask = np.zeros((h, w), dtype=np.uint8)
    objects = np.zeros((h, w), dtype=bool)
    classes = list(SYNTH_CLASSES)
    for _ in range(int(rng.integers(2, 5))):
        cls = int(rng.choice(classes))
        shape, texture = SYNTH_CLASSES[cls]
        r = rng.uniform(11, 26)
        cx, cy = rng.uniform(r * 0.6, w - r * 0.6), rng.uniform(r * 0.6, h - r * 0.6)
        layer = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(layer)
        poly = _shape_polygon(shape, cx, cy, r, rng.uniform(-0.5, 0.5))
        if poly is not None:
            draw.polygon(poly, fill=1)
        elif shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
        else:  # ellipse
            draw.ellipse([cx - r, cy - 0.55 * r, cx + r, cy + 0.55 * r], fill=1)
        inside = np.asarray(layer, dtype=bool)
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        while np.abs(a - b).sum() < 150:  # a visible texture: two clearly different colours
            b = rng.uniform(0, 255, 3)
        pattern = _texture(texture, h, w, rng)[..., None]
        image = np.where(inside[..., None], a * (1 - pattern) + b * pattern, image)
        mask[inside] = cls
        objects |= inside
    if border:
        # VOC marks object outlines as void: a band `border` px wide on each side of every edge
        edges = Image.fromarray(mask)
        k = 2 * border + 1
        hi = np.asarray(edges.filter(ImageFilter.MaxFilter(k)))
        lo = np.asarray(edges.filter(ImageFilter.MinFilter(k)))
        mask = np.where(hi != lo, IGNORE_INDEX, mask).astype(np.uint8)
    image = image + rng.normal(0, 5, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_synthetic(out: str | os.PathLike, spec: SynthSpec | None = None, year: str = "VOC2007") -> Path:
    """Write the embedded dataset in the VOC layout under ``out/VOCdevkit/<year>``; returns the year folder."""
    spec = spec or SynthSpec()
    root = Path(out) / "VOCdevkit" / year
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    names = {"train": [], "val": []}
    for split, count in (("train", spec.train), ("val", spec.val)):
        for _ in range(count):
            image_id = f"2007_{len(names['train']) + len(names['val']):06d}"
            image, mask = synth_sample(rng, spec.border)
            Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=92)
            save_mask_png(mask, root / "SegmentationClass" / f"{image_id}.png")
            names[split].append(image_id)
    sets = root / "ImageSets" / "Segmentation"
    for split, ids in (("train", names["train"]), ("val", names["val"]), ("trainval", names["train"] + names["val"])):
        (sets / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def embedded_dataset() -> Path:
    """The embedded default dataset's year folder, built into ``$SONGKIT_HOME`` on first use."""
    from songkit.core.data import build_once
    from songkit.core.progress import log

    def build(tmp: Path) -> None:
        log(f"building the embedded segmentation dataset in {tmp.parent} (once, a few seconds)")
        write_synthetic(tmp)

    return build_once("segment-synthetic", build, version=str(SYNTH_VERSION)) / "VOCdevkit" / "VOC2007"
