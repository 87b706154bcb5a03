"""PASCAL VOC segmentation files: pictures, index masks, split lists, the folder layout.

The layout (VOC2007 and VOC2012 are the same)::

    VOCdevkit/VOC2007/JPEGImages/<id>.jpg
    VOCdevkit/VOC2007/SegmentationClass/<id>.png     palette PNG: pixel value = class index, 255 = void
    VOCdevkit/VOC2007/ImageSets/Segmentation/{train,val,trainval,test}.txt

Masks are read as indices (``np.array`` of the palette image, never converted to RGB). Every file's
size is checked from its header before it is decoded: a decompression bomb is one line, not gigabytes.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from songkit.core.errors import UserError
from songkit.tasks.segment.constants import (
    IGNORE_INDEX,
    MAX_IMAGE_PIXELS,
    NUM_CLASSES,
    SPLITS,
    flat_palette,
    voc_palette,
)

# ---------------------------------------------------------------- reading files


def _open(path: Path, data: bytes | None, kind: str) -> Image.Image:
    """Open a picture lazily and check its header size before anything is decoded."""
    with warnings.catch_warnings():
        # Pillow warns above 89 MP (and about damaged metadata) and refuses above 179 MP; songkit's own
        # limit is checked below
        warnings.simplefilter("ignore")
        try:
            im = Image.open(io.BytesIO(data) if data is not None else path)
        except Image.DecompressionBombError:
            raise UserError(f"{path}: {kind} larger than {_mp(MAX_IMAGE_PIXELS)} (refused before decoding)") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise UserError(f"{path}: corrupt or unreadable {kind} ({_first_line(e)})") from None
    w, h = im.size
    if w < 1 or h < 1:
        im.close()
        raise UserError(f"{path}: {kind} of {w} x {h} pixels")
    if w * h > MAX_IMAGE_PIXELS:
        im.close()
        raise UserError(f"{path}: {kind} of {w:,} x {h:,} pixels ({_mp(w * h)}) is larger than "
                        f"{_mp(MAX_IMAGE_PIXELS)} (refused before decoding; downscale it first)")
    return im


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.3g} MP"


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:120]


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header alone; a missing, corrupt or oversized file is a UserError."""
    with _open(Path(path), None, "image") as im:
        return im.size


def load_image(path: str | os.PathLike, data: bytes | None = None) -> np.ndarray:
    """Read any picture as an RGB uint8 array (H, W, 3), EXIF orientation applied.

    ``data``: the file's bytes when they do not come from ``path`` (stdin; ``path`` then only names
    it). Grey, palette, RGBA (alpha dropped), CMYK, YCbCr and 16-bit/float pictures are converted.
    A missing, corrupt or oversized file is a UserError naming it.
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise UserError(f"{path}: no such image file")
    im = _open(path, data, "image")
    try:
        with im, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about damaged EXIF: the result is one line or none
            im.load()  # decode now: a truncated JPEG fails here, not later
            return _to_rgb(ImageOps.exif_transpose(im))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: corrupt or unreadable image ({_first_line(e)})") from None


def _to_rgb(im: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 from any Pillow mode."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im).astype(np.float32)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        top = float(arr.max()) if arr.size else 0.0
        if im.mode == "F" and top <= 1.0:
            arr = arr * 255.0
        elif top > 255:  # 16-bit data: scale the full range down to 8 bits
            arr = arr / (65535.0 / 255.0 if top <= 65535 else top / 255.0)
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
    im = _open(path, None, "mask")
    try:
        with im, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if im.mode in ("P", "L"):
                mask = np.array(im, dtype=np.uint8)
            elif im.mode in ("RGB", "RGBA"):
                mask = _rgb_mask_to_index(np.asarray(im.convert("RGB")), path)
            else:
                raise UserError(f"{path}: mask in mode {im.mode}; expected a palette (P) or grey (L) PNG of "
                                "class indices")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: corrupt or unreadable mask ({_first_line(e)})") from None
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


def mask_png_bytes(mask: np.ndarray) -> bytes:
    """Class indices (H, W) as the bytes of a VOC palette PNG."""
    im = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))
    im.putpalette(flat_palette())  # L + palette -> P: the stored values stay the indices
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def save_mask_png(mask: np.ndarray, dest: str | os.PathLike) -> None:
    """Write class indices (H, W) as a VOC palette PNG."""
    Path(dest).write_bytes(mask_png_bytes(mask))


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The picture with the VOC colours of ``mask`` blended over it (background and void left clear).

    In uint8 Pillow operations, so a 9,000 x 9,000 picture costs a few copies of 243 MB, not float32 ones.
    """
    base = Image.fromarray(image)
    colours = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))
    colours.putpalette(flat_palette())
    painted = Image.blend(base, colours.convert("RGB"), alpha)
    paint = Image.fromarray(((mask != 0) & (mask != IGNORE_INDEX)).astype(np.uint8) * 255)
    return Image.composite(painted, base, paint)


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


def split_list_name(split: str) -> str:
    """The ImageSets/Segmentation list behind a ``--split`` value (valid -> val.txt).

    Other list names a dataset has (e.g. a custom ``small.txt``) pass through; VOC's own ``val``
    is refused with the shared spelling, so one word means one thing in every task.
    """
    if split == "val":
        raise UserError("--split val: spelled 'valid' in songkit (VOC's val.txt)")
    return SPLITS.get(split, split)


def read_split(root: Path, split: str) -> list[str]:
    """Image ids of the split's list; every listed file must exist."""
    listing = root / "ImageSets" / "Segmentation" / f"{split_list_name(split)}.txt"
    if not listing.is_file():
        have = sorted(q.stem for q in (root / "ImageSets" / "Segmentation").glob("*.txt"))
        have = [next((k for k, v in SPLITS.items() if v == h), h) for h in have]
        raise UserError(f"{listing}: no such split list (this dataset has: {', '.join(have) or 'none'})")
    try:
        text = listing.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(f"{listing}: unreadable split list ({_first_line(e)})") from None
    ids = [line.split()[0] for line in text.splitlines() if line.strip()]
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
    """One split of a VOC-layout dataset: decoded (image, mask) pairs by index (decoded on each access,
    so DataLoader workers can share the work and memory stays bounded whatever the split's size)."""

    root: Path
    split: str
    ids: list[str]
    num_classes: int = NUM_CLASSES

    @classmethod
    def open(cls, path, split: str, num_classes: int = NUM_CLASSES) -> VOCSegmentation:
        root = find_voc_root(path)
        return cls(root, split, read_split(root, split), num_classes)

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, i: int) -> Path:
        return self.root / "JPEGImages" / f"{self.ids[i]}.jpg"

    def mask_path(self, i: int) -> Path:
        return self.root / "SegmentationClass" / f"{self.ids[i]}.png"

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8, mask (H, W) uint8)."""
        image = load_image(self.image_path(i))
        mask = load_mask(self.mask_path(i), self.num_classes)
        if mask.shape != image.shape[:2]:
            raise UserError(
                f"{self.mask_path(i)}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                f"{self.image_path(i).name} is {image.shape[1]}x{image.shape[0]}"
            )
        return image, mask

    def check_headers(self) -> None:
        """Every picture and mask readable, within the size limit and of one size, from the headers
        alone (fast: nothing is decoded), so a bad file stops a run before its first step."""
        for i in range(len(self)):
            image_w, image_h = image_size(self.image_path(i))
            with _open(self.mask_path(i), None, "mask") as m:
                mask_w, mask_h = m.size
            # EXIF rotation of the JPEG is applied on load: compare the shown size too
            if (mask_w, mask_h) not in ((image_w, image_h), (image_h, image_w)):
                raise UserError(f"{self.mask_path(i)}: mask is {mask_w}x{mask_h} but its image "
                                f"{self.image_path(i).name} is {image_w}x{image_h}")

    def class_pixel_counts(self) -> np.ndarray:
        """Pixels per class over the whole split (void left out); decodes and checks every pair."""
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
