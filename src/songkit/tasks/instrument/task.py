"""Training, prediction and evaluation for instrument-family classification.

``train`` builds an :class:`InstrumentTrainTask` for ``songkit.core.train.fit``;
``predict`` classifies audio files; ``evaluate`` measures a checkpoint on an NSynth split.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from songkit.core.errors import UserError
from songkit.core.progress import log
from songkit.tasks.instrument.data import (
    check_signal,
    load_clips,
    read_examples,
    resolve_data,
)
from songkit.tasks.instrument.model import MODELS, build_model, input_samples
from songkit.tasks.instrument.spec import FAMILIES, SAMPLE_RATE, TASK


@dataclass
class AugmentConfig:
    """Waveform augmentation (drawn per example, seeded by (seed, epoch)).

    Gain and noise stop a model keying on a SoundFont's level and noise floor; small delays on
    the onset position; speed changes of up to ``max_semitones`` (pitch and duration together,
    by resampling) on the exact tuning of a sample set; mixup (Zhang et al. 2018) smooths the
    decision boundaries between families, which is what carries over to unseen instruments.
    """

    enabled: bool = True
    gain_db: float = 6.0  # uniform in +-gain_db
    max_shift_ms: float = 30.0  # onset delayed by up to this
    noise_snr_db: tuple[float, float] = (25.0, 50.0)  # white noise at a uniform SNR; applied to half the batch
    max_semitones: float = 0.5  # speed change of +- this many semitones
    mixup_alpha: float = 0.2  # Beta(alpha, alpha) mixing weights; 0 disables


def augment(waves: np.ndarray, targets: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator):
    """``waves (B, N)``, one-hot ``targets (B, C)`` -> augmented copies (numpy, float32)."""
    b, n = waves.shape
    out = waves.copy()
    if cfg.max_semitones > 0:
        for i in range(b):
            rate = 2.0 ** (rng.uniform(-cfg.max_semitones, cfg.max_semitones) / 12.0)
            pos = np.arange(n, dtype=np.float64) * rate  # read faster (rate > 1: higher) or slower
            out[i] = np.interp(pos, np.arange(n), waves[i], right=0.0)
    if cfg.max_shift_ms > 0:
        max_shift = int(cfg.max_shift_ms * SAMPLE_RATE / 1000)
        for i in range(b):
            s = int(rng.integers(0, max_shift + 1))
            if s:
                out[i, s:] = out[i, :-s].copy()
                out[i, :s] = 0.0
    if cfg.gain_db > 0:
        out *= (10.0 ** (rng.uniform(-cfg.gain_db, cfg.gain_db, size=(b, 1)) / 20.0)).astype(np.float32)
    if cfg.noise_snr_db:
        lo, hi = cfg.noise_snr_db
        rms = np.sqrt(np.mean(out**2, axis=1, keepdims=True)) + 1e-8
        snr = rng.uniform(lo, hi, size=(b, 1))
        noisy = rng.random((b, 1)) < 0.5
        out += (noisy * rms * 10.0 ** (-snr / 20.0) * rng.standard_normal((b, n))).astype(np.float32)
    if cfg.mixup_alpha > 0:
        lam = rng.beta(cfg.mixup_alpha, cfg.mixup_alpha, size=(b, 1)).astype(np.float32)
        lam = np.maximum(lam, 1 - lam)  # the first example dominates
        perm = rng.permutation(b)
        out = lam * out + (1 - lam) * out[perm]
        targets = lam * targets + (1 - lam) * targets[perm]
    return out.astype(np.float32), targets.astype(np.float32)


class InstrumentTrainTask:
    """The core training protocol over in-memory clips (a few thousand notes fit easily)."""

    def __init__(self, train_waves, train_labels, valid_waves, valid_labels, batch_size: int = 32,
                 seed: int = 0, aug: AugmentConfig | None = None, eval_batch: int = 128):
        self.train_waves, self.train_labels = train_waves, train_labels
        self.valid_waves, self.valid_labels = valid_waves, valid_labels
        self.batch_size, self.seed, self.eval_batch = batch_size, seed, eval_batch
        self.aug = aug or AugmentConfig(enabled=False)

    def num_batches(self, epoch: int, rank: int, world: int) -> int:
        return math.ceil(len(self.train_labels) / world / self.batch_size)

    def batches(self, epoch: int, rank: int, world: int):
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.train_labels))
        per_rank = math.ceil(len(order) / world)
        order = np.resize(order, per_rank * world)[rank::world]  # same count on every rank
        aug_rng = np.random.default_rng([self.seed, epoch, rank, 1])
        eye = np.eye(len(FAMILIES), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start: start + self.batch_size]
            waves, targets = self.train_waves[idx], eye[self.train_labels[idx]]
            if self.aug.enabled:
                waves, targets = augment(waves, targets, self.aug, aug_rng)
            yield torch.from_numpy(waves), torch.from_numpy(targets)

    def train_step(self, model, batch, device):
        waves, targets = (t.to(device) for t in batch)
        logits = model(waves)  # (B, 11)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)  # soft targets (mixup)
        return loss, waves.shape[0]

    def evaluate(self, model, device) -> dict[str, float]:
        probs = predict_waves(model, self.valid_waves, device, self.eval_batch)
        labels = torch.from_numpy(self.valid_labels)
        nll = torch.nn.functional.nll_loss(torch.log(probs.clamp_min(1e-9)), labels).item()
        acc = (probs.argmax(1) == labels).float().mean().item()
        return {"val_loss": nll, "val_acc": acc}


@torch.no_grad()
def predict_waves(model, waves: np.ndarray, device, batch: int = 128) -> torch.Tensor:
    """Softmax probabilities ``(N, 11)`` on the CPU for clips ``(N, samples)``."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(waves), batch):
        x = torch.from_numpy(np.ascontiguousarray(waves[start: start + batch])).to(device)
        out.append(torch.softmax(model(x).float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros((0, len(FAMILIES)))


def _split_data(data: list[Path] | None, split: str, samples: int, skip_bad: bool, max_notes: int = 0,
                seed: int = 0):
    """Clips of one split; ``max_notes`` > 0 keeps a seeded random subset (the real NSynth train
    split is 289,205 notes: 18.5 GB as float32 first seconds, more than this machine holds)."""
    import random

    dirs = resolve_data(data)
    if split not in dirs:
        raise UserError(f"{', '.join(str(d) for ds in dirs.values() for d in ds)}: no nsynth-{split} split here")
    examples = [ex for d in dirs[split] for ex in read_examples(d, skip_bad)]
    if not examples:
        raise UserError(f"{dirs[split][0]}: no examples in the {split} split")
    if max_notes and len(examples) > max_notes:
        examples = sorted(random.Random(seed).sample(examples, max_notes), key=lambda e: e.note_str)
        log(f"{split}: using {max_notes} of the split's notes (--max-notes)")
    return load_clips(examples, samples, skip_bad, description=f"read {split}")


def train(data: list[Path] | None, model_name: str, run, skip_bad: bool = False,
          aug: AugmentConfig | None = None, config: dict | None = None, max_notes: int = 0) -> list[dict]:
    """Train ``model_name`` on NSynth-format data (train split; valid split for model selection).
    ``max_notes`` caps the training notes (and the validation notes at a quarter of that)."""
    from songkit.core.train import fit

    from songkit.core.device import seed_everything

    if model_name not in MODELS:
        raise UserError(f"--model {model_name}: expected one of {', '.join(MODELS)}")
    seed_everything(run.seed)  # the initial weights come from --seed too
    model = build_model(model_name, config)
    samples = input_samples(model)
    dirs = resolve_data(data)
    if "train" not in dirs:
        raise UserError(f"{', '.join(str(d) for ds in dirs.values() for d in ds)}: no nsynth-train split to train on")
    valid_split = "valid" if "valid" in dirs else "test" if "test" in dirs else None
    if valid_split is None:
        raise UserError(f"{dirs['train'][0].parent}: needs nsynth-valid (or nsynth-test) beside nsynth-train "
                        "for model selection")
    tw, tl, _ = _split_data(data, "train", samples, skip_bad, max_notes, run.seed)
    vw, vl, _ = _split_data(data, valid_split, samples, skip_bad, max(1, max_notes // 4) if max_notes else 0, run.seed)
    log(f"{model_name}: {len(tl)} train notes, {len(vl)} {valid_split} notes, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters")
    aug = aug or AugmentConfig(enabled=False)
    task = InstrumentTrainTask(tw, tl, vw, vl, batch_size=run.batch_size, seed=run.seed, aug=aug)
    cfg = run.train_config(monitor="val_acc", monitor_mode="max")
    meta = {"task": TASK, "model": model_name, "config": asdict(model.cfg), "vocab": list(FAMILIES),
            "extra": {"sample_rate": SAMPLE_RATE, "input_samples": samples, "augment": asdict(aug),
                      "data": [str(p) for p in data] if data else "embedded"}}
    return fit(model, task, cfg, run.out, meta, device=run.device, resume=run.resume)


def load_model(checkpoint: Path | None, device: str = "auto"):
    """(model in eval mode on its device, checkpoint) from a file or the shipped default."""
    from songkit.core.checkpoint import default_checkpoint, load_checkpoint
    from songkit.core.device import resolve_device

    path = checkpoint or default_checkpoint(TASK)
    ck = load_checkpoint(path, task=TASK)
    if ck.model not in MODELS:
        raise UserError(f"{path}: unknown instrument model '{ck.model}'")
    if list(ck.vocab) != FAMILIES:
        raise UserError(f"{path}: its labels are not NSynth's 11 families")
    model = build_model(ck.model, ck.config)
    try:
        model.load_state_dict(ck.state_dict)
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not fit model '{ck.model}' ({str(e).splitlines()[0]})") from None
    dev = resolve_device(device)
    return model.to(dev).eval(), ck


def audio_windows(path: Path, samples: int, windows: bool) -> np.ndarray:
    """The clips of one file ``(W, samples)``: its first ``samples`` (W = 1), or with ``windows``
    every non-silent window of that length (the last one zero-padded)."""
    from songkit.core.audio import read_audio

    if str(path) == "-":  # audio bytes on stdin: through a temporary file (soundfile needs to seek)
        import sys
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".audio") as tmp:
            tmp.write(sys.stdin.buffer.read())
            tmp.flush()
            try:
                x, _ = read_audio(tmp.name, SAMPLE_RATE)
            except UserError as e:
                raise UserError(e.message.replace(tmp.name, "-")) from None
    else:
        x, _ = read_audio(path, SAMPLE_RATE)
    check_signal(x, path)
    if not windows:
        x = x[:samples]
        if float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) < 1e-4:
            raise UserError(f"{path}: the first {samples / SAMPLE_RATE:.2f} s are silent; try --windows")
        return np.pad(x, (0, samples - len(x)))[None]
    n = max(1, math.ceil(len(x) / samples))
    clips = np.pad(x, (0, n * samples - len(x))).reshape(n, samples)
    loud = np.sqrt(np.mean(clips.astype(np.float64) ** 2, axis=1)) >= 1e-4
    return clips[loud]


def predict(paths: list[Path], checkpoint: Path | None = None, top: int = 1, windows: bool = False,
            device: str = "auto", skip_bad: bool = False) -> list[dict]:
    """Family probabilities per file: ``{"file", "family", "probability", "top": [[family, p], ...], "windows"}``."""
    from songkit.core.progress import track

    if top < 1:
        raise UserError(f"--top {top}: expected >= 1")
    model, _ = load_model(checkpoint, device)
    samples = input_samples(model)
    dev = next(model.parameters()).device
    results = []
    for path in track(paths, total=len(paths), description="classify", unit="files"):
        try:
            clips = audio_windows(Path(path), samples, windows)
        except UserError as e:
            if not skip_bad:
                raise
            log(f"skipped: {e.message}")
            continue
        probs = predict_waves(model, clips, dev).mean(0)  # average over windows
        order = torch.argsort(probs, descending=True)[: min(top, len(FAMILIES))].tolist()
        results.append({"file": str(path), "family": FAMILIES[order[0]], "probability": float(probs[order[0]]),
                        "top": [[FAMILIES[i], float(probs[i])] for i in order], "windows": len(clips)})
    if skip_bad and len(results) < len(paths):
        log(f"skipped {len(paths) - len(results)} of {len(paths)} file(s)")
    return results


def evaluate(checkpoint: Path | None, data: list[Path] | None, split: str = "test", device: str = "auto",
             skip_bad: bool = False, png: Path | None = None, max_notes: int = 0) -> dict:
    """Accuracy, per-family precision/recall/F1 and the confusion matrix of a checkpoint on a split."""
    from songkit.core.metrics import ConfusionMatrix
    from songkit.core.plots import confusion_png

    model, ck = load_model(checkpoint, device)
    waves, labels, _ = _split_data(data, split, input_samples(model), skip_bad, max_notes)
    probs = predict_waves(model, waves, next(model.parameters()).device)
    cm = ConfusionMatrix(len(FAMILIES), ignore_index=None)
    cm.update(torch.from_numpy(labels), probs.argmax(1))
    prec, rec, f1 = cm.precision(), cm.recall(), cm.f1()
    support = cm.mat.sum(1).tolist()
    result = {
        "checkpoint": str(ck.path), "model": ck.model, "split": split, "notes": len(labels),
        "accuracy": cm.accuracy(),
        "per_family": {f: {"precision": prec[i], "recall": rec[i], "f1": f1[i], "support": int(support[i])}
                       for i, f in enumerate(FAMILIES)},
        "macro_f1": float(np.nanmean([f1[i] for i in range(len(FAMILIES)) if support[i] > 0])),
        "confusion": cm.mat.tolist(),
    }
    if png is not None:
        confusion_png(cm.mat.numpy(), FAMILIES, png,
                      title=f"{ck.model} on {split}: accuracy {cm.accuracy():.3f} (rows: truth)")
        result["confusion_png"] = str(png)
    return result
