"""Metrics of a checkpoint on a VOC split, as a dict (the CLI formats it).

One confusion matrix over every labelled pixel of the split (void = 255 left out), at each picture's
own size (``infer.score_pairs``): pixel accuracy, mean accuracy, per-class IoU, mean IoU.
"""

from __future__ import annotations

from songkit.core.metrics import ConfusionMatrix
from songkit.tasks.segment.constants import IGNORE_INDEX
from songkit.tasks.segment.data import EvalPairs, as_list, raise_bad
from songkit.tasks.segment.infer import score_pairs
from songkit.tasks.segment.voc import VOCSegmentation


def evaluate_split(model, split: VOCSegmentation, device, amp: bool = True, size: int | None = None,
                   batch_size: int = 8, workers: int = 0, progress: bool = False) -> tuple[ConfusionMatrix, float]:
    """(confusion matrix over every labelled pixel of the split, mean cross-entropy per labelled pixel).

    Pictures are decoded in ``workers`` DataLoader processes (0: in this one)."""
    from songkit.core.data import make_loader
    from songkit.core.progress import track

    cm = ConfusionMatrix(split.num_classes, ignore_index=IGNORE_INDEX)
    loader = make_loader(EvalPairs(split), batch_size=batch_size, shuffle=False, seed=0, workers=workers,
                         collate_fn=as_list)
    batches = track(loader, total=len(loader), description="eval") if progress else loader
    loss_sum, pixels = 0.0, 0
    for pairs in batches:
        raise_bad(pairs)
        loss, n = score_pairs(model, pairs, device, amp, size, cm, IGNORE_INDEX)
        loss_sum, pixels = loss_sum + loss, pixels + n
    return cm, loss_sum / max(1, pixels)


def evaluate(checkpoint=None, data=None, split: str = "valid", device="auto", size: int | None = None,
             batch_size: int = 8, amp: bool = True, workers: int = 0, progress: bool = True) -> dict:
    """Metrics of a checkpoint (None: the shipped one) on a split of ``data`` (None: the embedded set).

    Keys: accuracy, mean_accuracy, mean_iou, per_class {name: {iou, accuracy, precision, support}},
    absent_classes, and what was measured (checkpoint, model, data, split, images, pixels, size, loss,
    matrix: the confusion matrix as lists)."""
    from songkit.core.device import resolve_device
    from songkit.tasks.segment.data import resolve_data
    from songkit.tasks.segment.infer import load

    dev = resolve_device(str(device))
    model, ck = load(checkpoint, dev, amp)
    dataset = VOCSegmentation.open(resolve_data(data), split, num_classes=len(ck.vocab))
    cm, loss = evaluate_split(model, dataset, dev, amp, size, batch_size, workers, progress)
    result = cm.as_dict(list(ck.vocab))
    result.update({"checkpoint": str(ck.path), "model": ck.model, "data": str(dataset.root), "split": split,
                   "images": len(dataset), "pixels": cm.total, "size": size or model.cfg.size, "loss": loss,
                   "matrix": cm.mat.tolist()})
    return result
