"""ConfusionMatrix golden values, pictures as real PNGs."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from songkit.core.metrics import ConfusionMatrix, bits_per_char
from songkit.core.plots import confusion_png, curves_png


def test_confusion_matrix_golden():
    cm = ConfusionMatrix(3, ignore_index=255)
    truth = torch.tensor([0, 0, 1, 1, 1, 255, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 2, 1])
    cm.update(truth, pred)
    assert cm.mat.tolist() == [[1, 1, 0], [1, 2, 0], [0, 1, 0]]
    assert cm.accuracy() == pytest.approx(3 / 6)  # the void pixel is not counted
    assert cm.per_class_accuracy() == pytest.approx([0.5, 2 / 3, 0.0])
    assert cm.iou() == pytest.approx([1 / 3, 2 / 5, 0.0])
    assert cm.mean_iou() == pytest.approx((1 / 3 + 2 / 5) / 3)
    assert cm.precision()[:2] == pytest.approx([0.5, 0.5])


def test_absent_class_left_out_of_mean():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    assert math.isnan(cm.iou()[2]) and cm.absent_classes() == [2] and cm.mean_iou() == 1.0


def test_bits_per_char():
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)


def test_pictures_are_pngs(tmp_path):
    curves_png([{"epoch": 1, "train_loss": 2.0, "val_loss": 2.1, "val_acc": 0.3},
                {"epoch": 2, "train_loss": 1.5, "val_loss": 1.7, "val_acc": 0.5}], tmp_path / "c.png")
    confusion_png(np.eye(4) * 5 + 1, ["a", "b", "c", "d"], tmp_path / "m.png")
    for name in ("c.png", "m.png"):
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG" and img.size[0] > 100
            assert len(img.convert("RGB").getcolors(maxcolors=1 << 20)) > 3  # something was drawn
