"""Training an instrument-family classifier: NSynth notes streamed through core.data.make_loader (decoded
and augmented in the workers) into core.train.fit."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from songkit.core.errors import UserError
from songkit.core.progress import log
from songkit.core.train import TrainRun, fit
from songkit.tasks.instrument.augment import AugmentConfig
from songkit.tasks.instrument.constants import (
    FAMILIES,
    FRONTENDS,
    MODEL_NAMES,
    SAMPLE_RATE,
    TASK,
    TrainOptions,
)
from songkit.tasks.instrument.evaluate import score_notes
from songkit.tasks.instrument.model import MODELS
from songkit.tasks.instrument.nsynth import SKIP_HINT, Collate, NSynthNotes


class InstrumentTrainTask:
    """core.train.fit's protocol over streamed notes: batches in an order that is a function of
    (seed, epoch) whatever ``workers``; validation accuracy and NLL over a whole split."""

    def __init__(self, train_set: NSynthNotes, valid_set: NSynthNotes, *, batch_size: int, seed: int,
                 workers: int = 0, mixup_alpha: float = 0.0, skip_bad: bool = False, amp: bool = True):
        self.train_set, self.valid_set = train_set, valid_set
        self.batch_size, self.seed, self.workers = batch_size, seed, workers
        self.mixup_alpha, self.skip_bad, self.amp = mixup_alpha, skip_bad, amp
        self.skipped: set[str] = set()

    def loader(self, epoch: int, rank: int, world: int):
        from songkit.core.data import make_loader

        return make_loader(self.train_set, batch_size=self.batch_size, shuffle=True, seed=self.seed, epoch=epoch,
                           rank=rank, world=world, workers=self.workers,
                           collate_fn=Collate(self.mixup_alpha, self.seed, epoch))

    def num_batches(self, epoch: int, rank: int, world: int) -> int:
        return len(self.loader(epoch, rank, world))

    def batches(self, epoch: int, rank: int, world: int):
        for batch in self.loader(epoch, rank, world):
            if batch.problems:
                if not self.skip_bad:
                    raise UserError(batch.problems[0] + SKIP_HINT)
                new = set(batch.problems) - self.skipped
                if new:
                    log(f"skipped {len(new)} unreadable or silent note(s) (first: {min(new)})")
                    self.skipped |= new
            if len(batch.labels):
                yield batch

    def train_step(self, model, batch, device):
        waves = batch.waves.to(device, non_blocking=True)  # (B, N)
        logits = model(waves).float()  # (B, 11)
        if batch.targets is not None:  # mixup: soft targets
            loss = torch.nn.functional.cross_entropy(logits, batch.targets.to(device))
        else:
            loss = torch.nn.functional.cross_entropy(logits, batch.labels.to(device))
        return loss, waves.shape[0]

    def evaluate(self, model, device) -> dict[str, float]:
        s = score_notes(model, self.valid_set, workers=self.workers, skip_bad=self.skip_bad, amp=self.amp)
        return {"val_loss": s.nll_sum / max(1, s.notes), "val_acc": s.confusion.accuracy()}


def train(data: list[Path] | None, run: TrainRun, options: TrainOptions) -> list[dict]:
    """Train ``options.model`` on NSynth-format data (default: the embedded set); returns the history.

    The best epoch by validation accuracy is ``run.out/best.ckpt``. Validation is the ``valid`` split,
    or ``test`` when there is none (logged)."""
    from songkit.tasks.instrument.data import resolve_data, split_examples

    if options.model not in MODEL_NAMES:
        raise UserError(f"--model {options.model}: expected one of {', '.join(MODEL_NAMES)}")
    if options.frontend not in FRONTENDS:
        raise UserError(f"--frontend {options.frontend}: expected one of {', '.join(FRONTENDS)}")
    splits = resolve_data(data)
    valid_split = "valid" if "valid" in splits else "test"
    if "train" not in splits or valid_split not in splits:
        raise UserError(f"{', '.join(map(str, data or ['the embedded set']))}: training needs nsynth-train "
                        "and nsynth-valid (or nsynth-test) splits")
    if valid_split != "valid":
        log("no valid split: selecting the best epoch on the test split")
    train_ex, _ = split_examples(data, "train", options.skip_bad, options.limit, run.seed)
    valid_limit = max(1, options.limit // 4) if options.limit else 0
    valid_ex, _ = split_examples(data, valid_split, options.skip_bad, valid_limit, run.seed)
    aug = None
    if options.augment:
        timbre = {"eq_db": 8.0, "reverb": 0.3} if options.timbre else {}
        aug = AugmentConfig(mixup_alpha=options.mixup, **timbre)
    cfg = MODELS[options.model][0]()
    if options.frontend != "logmel":
        if not hasattr(cfg, "frontend"):
            raise UserError(f"--frontend {options.frontend}: model {options.model} has no log-mel front end")
        cfg.frontend = options.frontend
    return train_examples(train_ex, valid_ex, run, options.model, cfg, aug, skip_bad=options.skip_bad, data=data)


def train_examples(train_ex: list, valid_ex: list, run: TrainRun, model: str, cfg, aug: AugmentConfig | None,
                   skip_bad: bool = False, data: list[Path] | None = None) -> list[dict]:
    """Train model ``model`` with config ``cfg`` on lists of nsynth.Example (augmented with ``aug`` when
    given), selecting on ``valid_ex``; ``fit`` builds the model after seeding."""
    module_cls = MODELS[model][1]
    samples = cfg.clip_samples
    train_set = NSynthNotes(train_ex, samples, augment=aug, seed=run.seed)
    log(f"{model}: {len(train_ex)} train notes, {len(valid_ex)} validation notes, {run.workers} loader worker(s)")
    task = InstrumentTrainTask(train_set, NSynthNotes(valid_ex, samples), batch_size=run.batch_size, seed=run.seed,
                               workers=run.workers, mixup_alpha=aug.mixup_alpha if aug else 0.0, skip_bad=skip_bad,
                               amp=run.amp)
    meta = {"task": TASK, "model": model, "config": asdict(cfg), "vocab": list(FAMILIES),
            "extra": {"sample_rate": SAMPLE_RATE, "input_samples": samples,
                      "augment": asdict(aug) if aug else None,
                      "data": [str(p) for p in data] if data else "embedded"}}
    return fit(lambda: module_cls(cfg), task, run.train_config(monitor="val_acc", monitor_mode="max"), run.out,
               meta, device=run.device, resume=run.resume)
