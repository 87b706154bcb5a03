"""Training a chord model: windows of chroma from ``data.ChromaWindows`` through ``core.train.fit``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from songkit.core.errors import UserError
from songkit.core.progress import log
from songkit.core.train import TrainRun, fit
from songkit.tasks.chords import constants as C
from songkit.tasks.chords.constants import TrainOptions


def quality_weights(songs, alpha: float) -> torch.Tensor:
    """(25,) loss weights: each quality (N, maj, min) weighted by its share of training frames ** -alpha.

    Per quality, not per class: the windows are transposed at random, so the 12 roots of a quality are
    equally common in training whatever the songs' keys. Scaled so the frame-weighted mean weight is 1
    (the loss keeps its size, so the learning rate means the same).
    """
    import numpy as np

    labels = np.concatenate([np.asarray(s.labels) for s in songs])
    labels = labels[labels != C.IGNORE]
    quality = C.class_quality(labels)
    share = np.bincount(quality, minlength=3) / max(len(quality), 1)
    w = np.where(share > 0, np.maximum(share, 1e-6) ** -alpha, 0.0)
    w /= max(float((share * w).sum()), 1e-12)
    return torch.tensor([w[0]] + [w[1]] * 12 + [w[2]] * 12, dtype=torch.float32)


class ChordTrainTask:
    """The duck-typed task of ``core.train.fit``: seeded windows in, cross-entropy out."""

    def __init__(self, train_songs, valid_songs, seq_len: int, batch_size: int, seed: int, augment: bool = True,
                 workers: int = 0, label_smoothing: float = 0.0, class_balance: float = 0.0,
                 crf_frame_loss: float = 0.0):
        from songkit.tasks.chords.data import ChromaWindows

        self.windows = ChromaWindows(train_songs, seq_len, seed, augment)
        self.valid = valid_songs or train_songs[:1]
        self.batch_size, self.seed, self.workers = batch_size, seed, workers
        self.label_smoothing, self.crf_frame_loss = label_smoothing, crf_frame_loss
        self.weight = quality_weights(train_songs, class_balance) if class_balance else None  # (25,) or None

    def batches(self, epoch: int, rank: int = 0, world: int = 1):
        from songkit.core.data import make_loader

        return make_loader(self.windows, batch_size=self.batch_size, shuffle=True, seed=self.seed, epoch=epoch,
                           rank=rank, world=world, workers=self.workers, drop_last=True)

    def num_batches(self, epoch: int, rank: int = 0, world: int = 1) -> int:
        self.windows.set_epoch(epoch)
        return len(self.windows) // world // self.batch_size

    def train_step(self, model, batch, device):
        x, y = (t.to(device) for t in batch)  # (B, L, 24), (B, L)
        logits = model(x).float()  # (B, L, 25)
        crf = getattr(getattr(model, "module", model), "crf", None)  # DDP wraps the model
        count = int((y != C.IGNORE).sum())

        def frame_loss():
            return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                                     ignore_index=C.IGNORE, label_smoothing=self.label_smoothing,
                                                     weight=self.weight)

        if crf is None:
            return frame_loss(), count
        from songkit.tasks.chords.crf import nll

        # path NLL per scored frame, so the learning rate means what it does for cross-entropy; the frame term keeps
        # every frame teaching the emissions once the transitions say "stay" (the path loss alone underfits them)
        loss = nll(logits, y, crf()) / max(count, 1)
        if self.crf_frame_loss:
            loss = loss + self.crf_frame_loss * frame_loss()
        return loss, count

    def evaluate(self, model, device) -> dict[str, float]:
        from songkit.tasks.chords.crf import nll
        from songkit.tasks.chords.hmm import viterbi
        from songkit.tasks.chords.infer import song_log_probs

        core = getattr(model, "module", model)
        trans = core.decoding_transitions() if getattr(core, "crf", None) is not None else None  # (25, 25)
        total_loss, correct, count = 0.0, 0, 0
        for s, lp in zip(self.valid, song_log_probs(model, [s.chroma for s in self.valid], device)):
            y = torch.as_tensor(s.labels)
            keep = y != C.IGNORE
            if not keep.any():
                continue
            if trans is None:  # frame-wise: the loss trained, and argmax
                lp = torch.from_numpy(lp)
                total_loss += float(torch.nn.functional.nll_loss(lp[keep], y[keep], reduction="sum"))
                correct += int((lp[keep].argmax(-1) == y[keep]).sum())
            else:  # a CRF's frame scores mean nothing alone: its path loss, and its decoded path
                total_loss += float(nll(torch.from_numpy(lp)[None], y[None], torch.from_numpy(trans).float()))
                correct += int((torch.from_numpy(viterbi(lp, transitions=trans))[keep] == y[keep]).sum())
            count += int(keep.sum())
        return {"val_loss": total_loss / max(count, 1), "val_acc": correct / max(count, 1)}


def model_config(options: TrainOptions, train_songs=None):
    """The model config of a run: the model's preset, ``--hidden-size``, and learned HMM transitions."""
    from songkit.tasks.chords.hmm import learn_transitions
    from songkit.tasks.chords.model import make_config

    over = {}
    if options.hidden_size:
        key = {"frame": "hidden", "blstm": "hidden", "attention": "channels"}.get(options.model, "rnn_hidden")
        over[key] = options.hidden_size
    if options.crf:
        over["crf"] = True
    if options.learn_transitions and train_songs:
        over["transitions"] = learn_transitions([s.labels for s in train_songs])
    cfg = make_config(options.model, **over)
    cfg.check()
    return cfg


def load_songs(data: list[Path] | None, cfg, options: TrainOptions):
    """(train songs, validation songs, data name) from every ``--data`` folder (default: the embedded chorales)."""
    from songkit.tasks.chords.bach import ensure_embedded
    from songkit.tasks.chords.data import load, split_of

    roots = list(data or []) or [ensure_embedded()]
    splits = C.SPLITS if options.every_song else ("train", "valid")
    songs = [s for r in roots for s in load(r, cfg, splits, options.folds, options.fold, options.limit)]
    train = [s for s in songs if split_of(s.name, options.folds, options.fold) != "valid"]
    valid = [s for s in songs if split_of(s.name, options.folds, options.fold) == "valid"]
    if not train:  # a handful of songs: train and validate on all of them
        train, valid = songs, songs[:1]
    name = " + ".join(str(r) for r in data) if data else "embedded-bach-chorales"
    return train, valid, name


def train(data: list[Path] | None, run: TrainRun, options: TrainOptions) -> list[dict]:
    """Train a chord model on Billboard chroma and/or audio+.lab folders; returns the per-epoch history."""
    from songkit.tasks.chords.model import MODELS

    if options.model not in MODELS:
        raise UserError(f"--model {options.model}: expected one of {', '.join(MODELS)}")
    if options.crf and (options.label_smoothing or options.class_balance):
        raise UserError("--crf trains on whole label paths: it does not go with --label-smoothing or --class-balance")
    if options.crf_frame_loss and not options.crf:
        raise UserError("--crf-frame-loss weighs a frame loss against a CRF's path loss: it needs --crf")
    if options.folds and options.every_song:
        raise UserError("--every-song trains on the held-out fold too: it does not go with --folds")
    if options.folds and not 0 <= options.fold < options.folds:
        raise UserError(f"--fold {options.fold}: expected 0..{options.folds - 1} with --folds {options.folds}")
    base = model_config(options)
    train_songs, valid_songs, name = load_songs(data, base, options)
    cfg = model_config(options, train_songs)
    frames = sum(len(s.labels) for s in train_songs)
    log(f"chords: {options.model}, {len(train_songs)} train songs ({frames} frames), "
        f"{len(valid_songs)} validation songs")
    task = ChordTrainTask(train_songs, valid_songs, options.seq_len, run.batch_size, run.seed, options.augment,
                          run.workers, options.label_smoothing, options.class_balance, options.crf_frame_loss)
    meta = {"task": C.TASK, "model": options.model, "config": asdict(cfg), "vocab": C.VOCAB,
            "extra": {"data": name, "input": "bothchroma24-normalized", "seq_len": options.seq_len,
                      "folds": options.folds, "fold": options.fold,
                      "train_songs": [s.name for s in train_songs]}}
    return fit(lambda: MODELS[options.model][1](cfg), task, run.train_config(monitor="val_acc", monitor_mode="max"),
               run.out, meta, device=run.device, resume=run.resume)
