"""PASCAL VOC segmentation data: the real layout, joint augmentation, and the embedded default.

The layout (VOC2007 and VOC2012 are the same)::

    VOCdevkit/VOC2007/JPEGImages/<id>.jpg
    VOCdevkit/VOC2007/SegmentationClass/<id>.png     palette PNG: pixel value = class index, 255 = void
    VOCdevkit/VOC2007/ImageSets/Segmentation/{train,val,trainval,test}.txt

Masks are read as indices (``np.array`` of the palette image, never converted to RGB),
resized and rotated with nearest neighbour, padded and rotated in with 255.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from songkit.core.errors import UserError
from songkit.tasks.segment.spec import (
    IGNORE_INDEX,
    MEAN,
    NUM_CLASSES,
    SIZE_MULTIPLE,
    STD,
    flat_palette,
    voc_palette,
)

# ---------------------------------------------------------------- reading files


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read any image as an RGB uint8 array (H, W, 3), EXIF orientation applied.

    Grey, palette, RGBA (alpha dropped), CMYK, YCbCr and 16-bit/float images are converted.
    A missing or corrupt file is a UserError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated JPEG fails here, not later
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except UserError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: corrupt or unreadable image ({str(e).splitlines()[0][:120]})") from None


def _to_rgb(im: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 from any Pillow mode."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im).astype(np.float64)
        top = arr.max() if arr.size else 0.0
        if im.mode == "F" and top <= 1.0:
            arr = arr * 255.0
        elif top > 255:  # 16-bit data: scale the full range down to 8 bits
            arr = arr / 257.0
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


_PALETTE_LOOKUP = {rgb: i for i, rgb in reversed(list(enumerate(voc_palette())))}


def load_mask(path: str | os.PathLike, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Read a SegmentationClass PNG as class indices (H, W) uint8; 255 = void.

    Palette ('P') and grey ('L') PNGs are read as they are stored. An RGB mask drawn with
    the VOC colours is mapped back to indices (some tools save them that way); any other
    colour is an error. Values above ``num_classes - 1`` other than 255 are an error.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such mask file")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "L"):
                mask = np.array(im, dtype=np.uint8)
            elif im.mode in ("RGB", "RGBA"):
                mask = _rgb_mask_to_index(np.asarray(im.convert("RGB")), path)
            else:
                raise UserError(f"{path}: mask in mode {im.mode}; expected a palette (P) or grey (L) PNG of class indices")
    except UserError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: corrupt or unreadable mask ({str(e).splitlines()[0][:120]})") from None
    check_mask_values(mask, path, num_classes)
    return mask


def _rgb_mask_to_index(rgb: np.ndarray, path: Path) -> np.ndarray:
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    out = np.empty(len(colours), dtype=np.uint8)
    for i, c in enumerate(colours.tolist()):
        rgb_c = (c >> 16, (c >> 8) & 255, c & 255)
        if rgb_c not in _PALETTE_LOOKUP:
            raise UserError(f"{path}: RGB mask with colour {rgb_c}, not a VOC class colour")
        out[i] = _PALETTE_LOOKUP[rgb_c]
    return out[inverse].reshape(packed.shape)


def check_mask_values(mask: np.ndarray, path, num_classes: int = NUM_CLASSES) -> None:
    """Refuse class values outside 0..num_classes-1 that are not the void label 255."""
    values = np.unique(mask)
    bad = values[(values >= num_classes) & (values != IGNORE_INDEX)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:8])
        raise UserError(
            f"{path}: class values {shown} above {num_classes - 1} (only 0-{num_classes - 1} and 255 = void allowed)"
        )


def save_mask_png(mask: np.ndarray, dest) -> None:
    """Write class indices (H, W) as a VOC palette PNG (to a path or a binary file object)."""
    im = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))
    im.putpalette(flat_palette())  # L + palette -> P: the stored values stay the indices
    im.save(dest, format="PNG")


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The image with the VOC colours of ``mask`` blended over it (background and void left clear)."""
    colours = np.array(voc_palette(), dtype=np.float32)[mask]  # (H, W, 3)
    base = image.astype(np.float32)
    paint = ((mask != 0) & (mask != IGNORE_INDEX))[..., None]
    out = np.where(paint, (1 - alpha) * base + alpha * colours, base)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- the VOC layout


def find_voc_root(path: str | os.PathLike) -> Path:
    """The year folder (the one holding JPEGImages) from a year folder or a VOCdevkit folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{p}: no such dataset folder")
    if not p.is_dir():
        raise UserError(f"{p}: expected a VOC folder (VOCdevkit or VOCdevkit/VOC2007), got a file")
    if (p / "JPEGImages").is_dir():
        return p
    for name in ("VOC2012", "VOC2007"):  # VOCdevkit/ with one or both years: the newer, larger one first
        if (p / name / "JPEGImages").is_dir():
            return p / name
    if (p / "VOCdevkit").is_dir():
        return find_voc_root(p / "VOCdevkit")
    years = sorted(q for q in p.glob("VOC*") if (q / "JPEGImages").is_dir())
    if years:
        return years[-1]
    raise UserError(f"{p}: not a VOC folder (no JPEGImages/ here or in VOC2012/ or VOC2007/)")


def read_split(root: Path, split: str) -> list[str]:
    """Image ids of ``ImageSets/Segmentation/<split>.txt``; every listed file must exist."""
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        have = sorted(q.stem for q in (root / "ImageSets" / "Segmentation").glob("*.txt"))
        raise UserError(f"{listing}: no such split list (this dataset has: {', '.join(have) or 'none'})")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    if not ids:
        raise UserError(f"{listing}: empty split list")
    for image_id in ids:
        for kind, sub, suffix in (("image", "JPEGImages", ".jpg"), ("mask", "SegmentationClass", ".png")):
            f = root / sub / f"{image_id}{suffix}"
            if not f.is_file():
                raise UserError(f"{listing}: lists '{image_id}' but its {kind} {f} does not exist")
    return ids


@dataclass
class VOCSegmentation:
    """One split of a VOC-layout dataset: decoded (image, mask) pairs by index."""

    root: Path
    split: str
    ids: list[str]
    num_classes: int = NUM_CLASSES
    cache: bool = True  # keep decoded samples in memory (the embedded set is small)

    @classmethod
    def open(cls, path, split: str, num_classes: int = NUM_CLASSES, cache: bool | None = None) -> VOCSegmentation:
        root = find_voc_root(path)
        ids = read_split(root, split)
        if cache is None:
            cache = len(ids) <= 2000
        ds = cls(root, split, ids, num_classes, cache)
        ds._memo = {}
        return ds

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, i: int) -> Path:
        return self.root / "JPEGImages" / f"{self.ids[i]}.jpg"

    def mask_path(self, i: int) -> Path:
        return self.root / "SegmentationClass" / f"{self.ids[i]}.png"

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8, mask (H, W) uint8)."""
        memo = getattr(self, "_memo", {})
        if i in memo:
            return memo[i]
        image = load_image(self.image_path(i))
        mask = load_mask(self.mask_path(i), self.num_classes)
        if mask.shape != image.shape[:2]:
            raise UserError(
                f"{self.mask_path(i)}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                f"{self.image_path(i).name} is {image.shape[1]}x{image.shape[0]}"
            )
        if self.cache:
            memo[i] = (image, mask)
        return image, mask

    def class_pixel_counts(self) -> np.ndarray:
        """Pixels per class over the whole split (void left out); also checks every sample."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for i in range(len(self)):
            _, mask = self[i]
            counts += np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=self.num_classes)[: self.num_classes]
        return counts


def class_weights_from_counts(counts: np.ndarray, cap: float = 10.0) -> np.ndarray:
    """Median-frequency balancing (Eigen & Fergus 2015, SegNet): w_c = median(f) / f_c.

    f_c is class c's share of the labelled pixels; absent classes get weight 0 (they have no
    pixels to weigh), and weights are capped at ``cap`` so a class seen in a handful of pixels
    cannot dominate the loss.
    """
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    if not present.any():
        return weights + 1.0
    freq = counts[present] / counts[present].sum()
    weights[present] = np.minimum(np.median(freq) / freq, cap)
    return weights


# ---------------------------------------------------------------- transforms (image and mask together)


@dataclass
class Augment:
    """Joint training augmentation: scale, rotation/affine, flips, crop (the seed's list).

    Images are resampled bilinearly, masks with nearest neighbour; every pixel brought in
    from outside the image is 255 in the mask (void) and the mean colour in the image.
    """

    size: int = 64  # crop side; the shorter image side is first scaled to about this
    scale: tuple[float, float] = (0.75, 1.5)
    rotate: float = 10.0  # degrees, uniform in +-rotate
    shear: float = 5.0  # degrees of affine shear, uniform in +-shear
    hflip: bool = True
    vflip: bool = False  # VOC scenes have an up: off by default (the seed's U-Net used it)
    jitter: float = 0.2  # brightness/contrast factor range

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        img = Image.fromarray(image)
        msk = Image.fromarray(mask)
        h, w = mask.shape
        s = self.size / min(h, w) * rng.uniform(*self.scale)
        new = (max(1, round(w * s)), max(1, round(h * s)))
        img = img.resize(new, Image.BILINEAR)
        msk = msk.resize(new, Image.NEAREST)
        angle = rng.uniform(-self.rotate, self.rotate) if self.rotate else 0.0
        shear = rng.uniform(-self.shear, self.shear) if self.shear else 0.0
        if angle or shear:
            coeffs = _affine_coeffs(new, angle, shear)
            fill = tuple(round(255 * m) for m in MEAN)
            img = img.transform(new, Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=fill)
            msk = msk.transform(new, Image.AFFINE, coeffs, resample=Image.NEAREST, fillcolor=IGNORE_INDEX)
        image_a = np.asarray(img, dtype=np.uint8)
        mask_a = np.asarray(msk, dtype=np.uint8)
        if self.hflip and rng.random() < 0.5:
            image_a, mask_a = image_a[:, ::-1], mask_a[:, ::-1]
        if self.vflip and rng.random() < 0.5:
            image_a, mask_a = image_a[::-1], mask_a[::-1]
        image_a, mask_a = random_crop(image_a, mask_a, self.size, rng)
        if self.jitter:
            b = rng.uniform(1 - self.jitter, 1 + self.jitter)
            c = rng.uniform(1 - self.jitter, 1 + self.jitter)
            f = image_a.astype(np.float32)
            f = (f - f.mean()) * c + f.mean() * b
            image_a = np.clip(f, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(image_a), np.ascontiguousarray(mask_a)


def _affine_coeffs(size: tuple[int, int], angle: float, shear: float) -> tuple[float, ...]:
    """Pillow's inverse affine map (output -> input) for a rotation + x-shear about the centre."""
    w, h = size
    cx, cy = w / 2, h / 2
    a, sh = math.radians(angle), math.radians(shear)
    # forward M = R(a) @ Sh(sh); Pillow wants M^-1
    m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.array([[1, math.tan(sh)], [0, 1]])
    inv = np.linalg.inv(m)
    tx = cx - inv[0, 0] * cx - inv[0, 1] * cy
    ty = cy - inv[1, 0] * cx - inv[1, 1] * cy
    return (inv[0, 0], inv[0, 1], tx, inv[1, 0], inv[1, 1], ty)


def random_crop(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator):
    """A size x size crop; smaller images are padded first (mean colour, void mask)."""
    h, w = mask.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        fill = np.array([round(255 * m) for m in MEAN], dtype=np.uint8)
        img = np.empty((h + ph, w + pw, 3), dtype=np.uint8)
        img[:] = fill
        img[:h, :w] = image
        msk = np.full((h + ph, w + pw), IGNORE_INDEX, dtype=np.uint8)
        msk[:h, :w] = mask
        image, mask, h, w = img, msk, h + ph, w + pw
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return image[y : y + size, x : x + size], mask[y : y + size, x : x + size]


def model_input_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) of the resized image the model sees: shorter side ``size``, aspect kept."""
    s = size / min(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def resize_for_model(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (bilinear, aspect kept) and pad right/bottom with the mean colour to multiples of 32.

    The caller crops the logits back to ``model_input_size`` and resizes them to the original.
    """
    h, w = image.shape[:2]
    th, tw = model_input_size(h, w, size)
    if (th, tw) != (h, w):
        image = np.asarray(Image.fromarray(image).resize((tw, th), Image.BILINEAR))
    ph, pw = -th % SIZE_MULTIPLE, -tw % SIZE_MULTIPLE
    if ph or pw:
        padded = np.empty((th + ph, tw + pw, 3), dtype=np.uint8)
        padded[:] = np.array([round(255 * m) for m in MEAN], dtype=np.uint8)
        padded[:th, :tw] = image
        image = padded
    return image


def to_tensor(images: list[np.ndarray]):
    """uint8 (H, W, 3) arrays of one shape -> normalised float tensor (B, 3, H, W)."""
    import torch

    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


# ---------------------------------------------------------------- the embedded default dataset

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
        for i in range(count):
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
    """The embedded default dataset's year folder, built into the cache on first use."""
    from songkit.core.io import cache_dir
    from songkit.core.progress import log

    base = cache_dir("segment", f"synthetic-v{SYNTH_VERSION}")
    root = base / "VOCdevkit" / "VOC2007"
    done = base / ".complete"
    if not done.is_file():
        log(f"building the embedded segmentation dataset in {base} (once)")
        write_synthetic(base)
        done.write_text("ok\n")
    return root


def resolve_data(data: str | os.PathLike | None) -> Path:
    """``--data`` (a year folder or VOCdevkit) or, when not given, the embedded dataset."""
    return embedded_dataset() if data is None else find_voc_root(data)
