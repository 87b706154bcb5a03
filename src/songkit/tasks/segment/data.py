"""Datasets over a VOC split for training and evaluation, and the embedded default.

Pictures are decoded and jointly augmented in ``__getitem__``, so DataLoader workers
(``core.data.make_loader``, ``--workers``) share the work. Each item's random draw comes from
``core.data.item_rng(seed, epoch, index)``: the crops do not depend on which worker decoded them,
on ``--workers``, or on ``--resume``. A bad file inside a worker comes back as its one-line message
(``BadItem``) and is raised in the training process, where it prints as one line, not a worker's
traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from songkit.core.errors import UserError
from songkit.tasks.segment.transforms import Augment, to_tensor
from songkit.tasks.segment.voc import VOCSegmentation, find_voc_root


def resolve_data(data: str | os.PathLike | None) -> Path:
    """``--data`` (a year folder or VOCdevkit) or, when not given, the embedded dataset."""
    if data is None:
        from songkit.tasks.segment.synthetic import embedded_dataset

        return embedded_dataset()
    return find_voc_root(data)


class BadItem(str):
    """The one-line message of a file that failed to load in a worker process."""


def raise_bad(items) -> None:
    """Raise the first BadItem among a batch's items (in the main process: one line, exit 2)."""
    for item in items:
        if isinstance(item, BadItem):
            raise UserError(str(item))


class TrainCrops:
    """Augmented, normalised crops of a VOC split: item i -> (image (3, S, S) float, mask (S, S) int64)."""

    def __init__(self, split: VOCSegmentation, augment: Augment, seed: int, mean, std):
        self.split, self.augment, self.seed = split, augment, seed
        self.mean, self.std = tuple(mean), tuple(std)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        import torch

        from songkit.core.data import item_rng

        try:
            image, mask = self.split[i]
        except UserError as e:
            return BadItem(str(e))
        image, mask = self.augment(image, mask, item_rng(self.seed, self.epoch, i))
        return to_tensor([image], self.mean, self.std)[0], torch.from_numpy(mask.astype(np.int64))


def collate_crops(items):
    """Stack (image, mask) items into (B, 3, S, S), (B, S, S); a bad item is raised here or in the caller."""
    import torch

    bad = [item for item in items if isinstance(item, BadItem)]
    if bad:
        return bad[0]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


class EvalPairs:
    """A VOC split's decoded (image, mask) pairs at their own size, for evaluation in workers."""

    def __init__(self, split: VOCSegmentation):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        try:
            return self.split[i]
        except UserError as e:
            return BadItem(str(e))


def as_list(items):
    """collate_fn that keeps a batch as a list (pictures of different sizes)."""
    return list(items)
