"""Measuring a checkpoint on an NSynth split: accuracy, per-family precision/recall/F1, confusion matrix.

Notes stream through a DataLoader (decoded in its workers), so a split of any size evaluates in bounded
memory. Training's per-epoch validation runs the same ``score_notes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from songkit.core.errors import UserError
from songkit.core.progress import track
from songkit.tasks.instrument.constants import FAMILIES, TASK
from songkit.tasks.instrument.nsynth import SKIP_HINT, Collate, NSynthNotes


@dataclass
class Scores:
    """What one pass over a split's notes accumulates."""

    confusion: object  # core.metrics.ConfusionMatrix (11 x 11, rows: truth)
    nll_sum: float = 0.0
    notes: int = 0
    skipped: int = 0


def score_notes(model, dataset: NSynthNotes, *, workers: int = 0, batch_size: int = 64, skip_bad: bool = False,
                amp: bool = True, description: str = "") -> Scores:
    """Run ``model`` over every note of ``dataset`` (in order); a bad note is a UserError naming its file,
    or with ``skip_bad`` left out and counted."""
    from songkit.core.data import make_loader
    from songkit.core.metrics import ConfusionMatrix
    from songkit.tasks.instrument.infer import model_device, predict_waves

    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, seed=0, workers=workers,
                         collate_fn=Collate(), device=model_device(model))
    scores = Scores(ConfusionMatrix(len(FAMILIES), ignore_index=None))
    batches = track(loader, total=len(loader), description=description, unit="batches") if description else loader
    for batch in batches:
        if batch.problems:
            if not skip_bad:
                raise UserError(batch.problems[0] + SKIP_HINT)
            scores.skipped += len(batch.problems)
        if len(batch.labels) == 0:
            continue
        probs = predict_waves(model, batch.waves, amp=amp)  # (B, 11)
        scores.confusion.update(batch.labels, probs.argmax(1))
        scores.nll_sum += float(torch.nn.functional.nll_loss(torch.log(probs.clamp_min(1e-9)), batch.labels,
                                                             reduction="sum"))
        scores.notes += len(batch.labels)
    return scores


def metrics_of(cm) -> dict:
    """Accuracy, macro-F1 over the families present, and per-family precision/recall/F1/support."""
    prec, rec, f1 = cm.precision(), cm.recall(), cm.f1()
    support = cm.mat.sum(1).tolist()
    present = [f1[i] for i in range(len(FAMILIES)) if support[i] > 0]
    return {
        "accuracy": cm.accuracy(),
        "macro_f1": float(np.nanmean(present)) if present else float("nan"),
        "per_family": {f: {"precision": prec[i], "recall": rec[i], "f1": f1[i], "support": int(support[i])}
                       for i, f in enumerate(FAMILIES)},
        "confusion": cm.mat.tolist(),
    }


def evaluate(checkpoint: Path | None, data: list[Path] | None, split: str = "test", device: str = "auto",
             skip_bad: bool = False, confusion_png: Path | None = None, limit: int = 0, workers: int = 0,
             amp: bool = True) -> dict:
    """Accuracy, per-family precision/recall/F1 and the confusion matrix of a checkpoint on a split
    (default data: the embedded set). ``skipped`` counts the notes and entries ``skip_bad`` left out."""
    from songkit.core.plots import confusion_png as write_png
    from songkit.tasks.instrument.data import split_examples
    from songkit.tasks.instrument.infer import load
    from songkit.tasks.instrument.model import input_samples

    examples, bad_entries = split_examples(data, split, skip_bad, limit)
    model, ck = load(checkpoint, device)
    scores = score_notes(model, NSynthNotes(examples, input_samples(model)), workers=workers, skip_bad=skip_bad,
                         amp=amp, description="eval")
    result = {"task": TASK, "checkpoint": str(ck.path), "model": ck.model, "split": split, "notes": scores.notes,
              "skipped": bad_entries + scores.skipped, **metrics_of(scores.confusion)}
    if confusion_png is not None:
        write_png(scores.confusion.mat.numpy(), FAMILIES, confusion_png,
                  title=f"{ck.model} on {split}: accuracy {result['accuracy']:.3f} (rows: truth)")
        result["confusion_png"] = str(confusion_png)
    return result
