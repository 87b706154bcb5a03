"""Metrics shared by the tasks.

``ConfusionMatrix`` follows torchvision's segmentation reference: a bincount over
(truth, prediction) pairs accumulated over the whole dataset, an ignore label
(255 for VOC void) left out, and every rate derived from the one matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


class ConfusionMatrix:
    """Accumulates a (C, C) confusion matrix: rows are truth, columns prediction."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255):
        import torch

        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros((num_classes, num_classes), dtype=torch.int64)

    def update(self, target, pred) -> None:
        """Add pairs; ``target`` and ``pred`` are integer tensors/arrays of the same shape."""
        import torch

        target = torch.as_tensor(target).flatten().to(torch.int64)
        pred = torch.as_tensor(pred).flatten().to(torch.int64).to(target.device)
        keep = (target >= 0) & (target < self.num_classes)
        if self.ignore_index is not None:
            keep &= target != self.ignore_index
        idx = self.num_classes * target[keep] + pred[keep]
        counts = torch.bincount(idx, minlength=self.num_classes**2)
        self.mat += counts.reshape(self.num_classes, self.num_classes).cpu()

    def reduce_from_all_processes(self) -> None:
        """Sum the matrix over DDP ranks (a no-op outside torchrun)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            t = self.mat.clone()
            dist.all_reduce(t)
            self.mat = t

    # --- derived rates (all from the one matrix) ---
    @property
    def total(self) -> int:
        return int(self.mat.sum())

    def accuracy(self) -> float:
        """Pixel / frame / example accuracy: trace over total."""
        total = self.mat.sum().item()
        return float(self.mat.diag().sum().item() / total) if total else float("nan")

    def per_class_accuracy(self) -> list[float]:
        """Recall per class: diag / row sum (NaN for a class absent from the truth)."""
        m = self.mat.double()
        rows = m.sum(1)
        return [float(d / r) if r > 0 else float("nan") for d, r in zip(m.diag().tolist(), rows.tolist())]

    def precision(self) -> list[float]:
        m = self.mat.double()
        cols = m.sum(0)
        return [float(d / c) if c > 0 else float("nan") for d, c in zip(m.diag().tolist(), cols.tolist())]

    def recall(self) -> list[float]:
        return self.per_class_accuracy()

    def f1(self) -> list[float]:
        out = []
        for p, r in zip(self.precision(), self.recall()):
            if math.isnan(p) or math.isnan(r):
                out.append(float("nan") if math.isnan(r) else 0.0)
            else:
                out.append(0.0 if p + r == 0 else 2 * p * r / (p + r))
        return out

    def iou(self) -> list[float]:
        """Intersection over union per class: diag / (row + col - diag); NaN when a class is
        absent from both truth and prediction (it is left out of the mean)."""
        m = self.mat.double()
        union = m.sum(1) + m.sum(0) - m.diag()
        return [float(d / u) if u > 0 else float("nan") for d, u in zip(m.diag().tolist(), union.tolist())]

    def mean_accuracy(self) -> float:
        return nanmean(self.per_class_accuracy())

    def mean_iou(self) -> float:
        return nanmean(self.iou())

    def absent_classes(self) -> list[int]:
        """Classes in neither truth nor prediction: excluded from mean IoU."""
        return [i for i, v in enumerate(self.iou()) if math.isnan(v)]

    def as_dict(self, labels: Sequence[str] | None = None) -> dict:
        labels = list(labels) if labels is not None else [str(i) for i in range(self.num_classes)]
        return {
            "accuracy": self.accuracy(),
            "mean_accuracy": self.mean_accuracy(),
            "mean_iou": self.mean_iou(),
            "per_class": {
                name: {"accuracy": a, "precision": p, "f1": f, "iou": u, "support": int(s)}
                for name, a, p, f, u, s in zip(
                    labels, self.per_class_accuracy(), self.precision(), self.f1(), self.iou(), self.mat.sum(1).tolist()
                )
            },
            "absent_classes": [labels[i] for i in self.absent_classes()],
        }


def nanmean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def bits_per_char(nats_per_char: float) -> float:
    """Cross-entropy in nats per character -> bits per character."""
    return nats_per_char / math.log(2)
