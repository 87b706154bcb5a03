"""Transforms of image and mask together (training), and the resize-and-pad the models see.

As torchvision's segmentation references keep them: apart from the dataset, one random draw applied
to both. Images are resampled bilinearly, masks with nearest neighbour (no new class values);
every pixel brought in from outside the picture is void (255) in the mask and the mean colour in
the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from songkit.tasks.segment.constants import (
    IGNORE_INDEX,
    MAX_ASPECT,
    MEAN,
    SIZE_MULTIPLE,
    STD,
)


def fill_colour(mean=MEAN) -> tuple[int, int, int]:
    """The mean colour as uint8 RGB: what padding and rotated-in corners are filled with."""
    return tuple(round(255 * m) for m in mean)


MEAN_COLOUR = fill_colour()  # ImageNet's mean as RGB (124, 116, 104)


def scale_for(height: int, width: int, size: int) -> float:
    """The factor that brings the shorter side to ``size``, but the longer side to at most
    ``MAX_ASPECT * size`` (a 1 x 9,000 strip is shrunk, not blown up to 64 x 576,000)."""
    return min(size / min(height, width), MAX_ASPECT * size / max(height, width))


def model_input_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) of the resized picture the model sees: shorter side ``size``, aspect kept (within limits)."""
    s = scale_for(height, width, size)
    return max(1, round(height * s)), max(1, round(width * s))


def resize_for_model(image: np.ndarray, size: int, mean=MEAN) -> np.ndarray:
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
        padded[:] = np.array(fill_colour(mean), dtype=np.uint8)
        padded[:th, :tw] = image
        image = padded
    return image


def to_tensor(images: list[np.ndarray], mean=MEAN, std=STD):
    """uint8 (H, W, 3) arrays of one shape -> normalised float tensor (B, 3, H, W)."""
    import torch

    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@dataclass
class Augment:
    """Joint training augmentation: scale, rotation/affine, flips, crop (the seed's list)."""

    size: int = 64  # crop side; the shorter image side is first scaled to about this
    scale: tuple[float, float] = (0.75, 1.5)
    rotate: float = 10.0  # degrees, uniform in +-rotate
    shear: float = 5.0  # degrees of affine shear, uniform in +-shear
    hflip: bool = True
    vflip: bool = False  # VOC scenes have an up: off by default (the seed's U-Net used it)
    jitter: float = 0.2  # brightness/contrast factor range
    fill: tuple[int, int, int] = MEAN_COLOUR  # the model's mean colour

    @classmethod
    def scale_and_crop(cls, size: int, fill=MEAN_COLOUR) -> Augment:
        """``--no-augment``: only the random scale and crop (no flips, rotation, shear, colour)."""
        return cls(size=size, rotate=0.0, shear=0.0, hflip=False, vflip=False, jitter=0.0, fill=fill)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        img = Image.fromarray(image)
        msk = Image.fromarray(mask)
        h, w = mask.shape
        s = scale_for(h, w, self.size) * rng.uniform(*self.scale)
        new = (max(1, round(w * s)), max(1, round(h * s)))
        img = img.resize(new, Image.BILINEAR)
        msk = msk.resize(new, Image.NEAREST)
        angle = rng.uniform(-self.rotate, self.rotate) if self.rotate else 0.0
        shear = rng.uniform(-self.shear, self.shear) if self.shear else 0.0
        if angle or shear:
            coeffs = _affine_coeffs(new, angle, shear)
            img = img.transform(new, Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=tuple(self.fill))
            msk = msk.transform(new, Image.AFFINE, coeffs, resample=Image.NEAREST, fillcolor=IGNORE_INDEX)
        image_a = np.asarray(img, dtype=np.uint8)
        mask_a = np.asarray(msk, dtype=np.uint8)
        if self.hflip and rng.random() < 0.5:
            image_a, mask_a = image_a[:, ::-1], mask_a[:, ::-1]
        if self.vflip and rng.random() < 0.5:
            image_a, mask_a = image_a[::-1], mask_a[::-1]
        image_a, mask_a = random_crop(image_a, mask_a, self.size, rng, self.fill)
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


def random_crop(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator, fill=MEAN_COLOUR):
    """A size x size crop; smaller pictures are padded first (mean colour, void mask)."""
    h, w = mask.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        img = np.empty((h + ph, w + pw, 3), dtype=np.uint8)
        img[:] = np.array(fill, dtype=np.uint8)
        img[:h, :w] = image
        msk = np.full((h + ph, w + pw), IGNORE_INDEX, dtype=np.uint8)
        msk[:h, :w] = mask
        image, mask, h, w = img, msk, h + ph, w + pw
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return image[y : y + size, x : x + size], mask[y : y + size, x : x + size]
