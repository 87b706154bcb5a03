"""Constants of the segmentation task: VOC classes, palette, void label, input statistics, limits.

No torch, no numpy here: the CLI imports this module to build its help text.
"""

from __future__ import annotations

from dataclasses import dataclass

TASK = "segment"

# PASCAL VOC 2007/2012: 20 object classes and the background, in the index order of the
# SegmentationClass PNGs. Pixel value 255 marks "void" (object borders, difficult regions).
VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
NUM_CLASSES = len(VOC_CLASSES)  # 21
IGNORE_INDEX = 255  # VOC void: left out of the loss and of every metric

# ImageNet statistics: what torchvision's resnet34 weights expect; the default of every model
# (so a run can swap encoders without changing the data pipeline). A model's own values live in its
# config, saved in the checkpoint and used at prediction time.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".gif")
# --split spellings shared with every task -> VOC's ImageSets/Segmentation list names
SPLITS = {"train": "train", "valid": "val", "trainval": "trainval", "test": "test"}

# Every model's output stride divides 32 (five stride-2 stages at most): inputs are padded to it.
SIZE_MULTIPLE = 32
DEFAULT_SIZE = 64  # shorter image side fed to the model (embedded data; use 320 or more for real VOC)
MIN_SIZE, MAX_SIZE = 32, 2048  # --size range
DEFAULT_MODEL = "unet"  # the shipped checkpoint's model
MODEL_NAMES = ("fcn", "unet", "erfnet", "darrennet", "resnet34_unet")
INITS = ("kaiming", "xavier", "default")
CLASS_WEIGHTS_HELP = "none | auto (median-frequency balancing) | 21 comma-separated numbers"

# Limits on input pictures (issue 14), checked from the file header before anything is decoded.
# 100 MP: a 9,000 x 9,000 photo (81 MP, 243 MB decoded) passes; a decompression bomb does not.
MAX_IMAGE_PIXELS = 100_000_000
# The model sees the shorter side at `size`, but never a longer side above this many times `size`:
# a 1 x 9,000 strip is shrunk to fit rather than blown up to 64 x 576,000.
MAX_ASPECT = 8

# The shipped checkpoint was trained on the generated shapes, not on photos (issue 15): said once.
SYNTHETIC_WARNING = (
    "note: the shipped segment checkpoint was trained on songkit's generated shapes, not photos; "
    "on real pictures its masks are blobs (train on VOC: docs/segment.md)"
)


@dataclass
class TrainOptions:
    """`songkit train segment`'s own options (field names = the option names with - as _)."""

    model: str = DEFAULT_MODEL
    size: int = DEFAULT_SIZE
    width: int | None = None  # U-Net's first width (None: the model's default)
    init: str | None = None  # None: the model's own default (xavier for fcn, kaiming otherwise)
    class_weights: str = "none"
    encoder_weights: str | None = None
    train_split: str = "train"
    valid_split: str = "valid"
    augment: bool = True
    rotate: float = 10.0
    shear: float = 5.0
    vflip: bool = False


def voc_palette() -> list[tuple[int, int, int]]:
    """The 256-entry VOC colour map (the palette stored in every SegmentationClass PNG).

    Class c gets the colour whose bits come from c's bits, three at a time (VOC devkit's
    ``labelcolormap``): 0 black, 1 (128, 0, 0), 2 (0, 128, 0), ... 255 (224, 224, 192).
    """
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.append((r, g, b))
    return palette


def flat_palette() -> list[int]:
    """The VOC palette as Pillow's ``putpalette`` wants it: 768 ints."""
    return [v for rgb in voc_palette() for v in rgb]
