"""Constants of the segmentation task: VOC classes, palette, void label, input statistics.

No torch here: the CLI imports this module to build its help text.
"""

from __future__ import annotations

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

# ImageNet statistics: what torchvision's resnet34 weights expect; used for every model
# so that a run can swap encoders without changing the data pipeline.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".gif")
SPLITS = ("train", "val", "trainval", "test")

# Every model's output stride divides 32 (five stride-2 stages at most): inputs are padded to it.
SIZE_MULTIPLE = 32
DEFAULT_SIZE = 64  # shorter image side fed to the model (embedded data; use 320 or more for real VOC)
DEFAULT_MODEL = "erfnet"
MODEL_NAMES = ("fcn", "unet", "erfnet", "darrennet", "resnet34_unet")
INITS = ("kaiming", "xavier", "default")


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
