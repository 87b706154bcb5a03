"""Classifying audio: Python objects in, Python objects out (never stdin or stdout).

``load`` gets a model through core's one loader; ``predict_waves`` is the one forward path (the same
autocast as training and evaluation); ``predict`` classifies files.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from songkit.core.errors import UserError
from songkit.core.progress import log
from songkit.tasks.instrument.constants import FAMILIES, SAMPLE_RATE, TASK
from songkit.tasks.instrument.model import MODELS, input_samples
from songkit.tasks.instrument.nsynth import check_signal, is_silent


def load(checkpoint: Path | None, device: str = "auto"):
    """``(model in eval mode on its device, Checkpoint)`` from a file, a run folder or the shipped default."""
    from songkit.core.checkpoint import load_model

    def check_vocab(vocab) -> None:
        if list(vocab) != FAMILIES:
            raise ValueError("not NSynth's 11 families in NSynth's order")

    return load_model(checkpoint, TASK, MODELS, device, check_vocab=check_vocab)


def model_device(model) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def predict_waves(model, waves, amp: bool = True, batch: int = 128) -> torch.Tensor:
    """Family probabilities ``(B, 11)`` float32 of clips ``waves (B, N)`` (numpy or tensor), in batches,
    on the model's device, under the same autocast as training (core.device.amp_dtype)."""
    from songkit.core.device import amp_dtype, autocast

    dev = model_device(model)
    waves = torch.as_tensor(waves)
    dtype = amp_dtype(dev, amp, model)
    out = []
    for start in range(0, len(waves), batch):
        with autocast(dev, dtype):
            logits = model(waves[start: start + batch].to(dev))  # (b, 11)
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out) if out else torch.zeros((0, len(FAMILIES)))


def audio_windows(path: Path, samples: int, windows: bool) -> np.ndarray:
    """The clips of one file ``(W, samples)``: its first ``samples`` (W = 1), or with ``windows``
    every non-silent window of that length (the last one zero-padded). ``-`` is a temporary copy of
    stdin made by the caller, named ``display``."""
    from songkit.core.audio import read_audio

    x, _ = read_audio(path, SAMPLE_RATE)
    check_signal(x, path)
    if not windows:
        x = x[:samples]
        if is_silent(x):
            raise UserError(f"{path}: the first {samples / SAMPLE_RATE:.2f} s are silent; try --windows")
        return np.pad(x, (0, samples - len(x)))[None]
    n = max(1, math.ceil(len(x) / samples))
    clips = np.pad(x, (0, n * samples - len(x))).reshape(n, samples)
    return clips[[not is_silent(c) for c in clips]]


def classify(model, clips: np.ndarray, top: int) -> dict:
    """``{"family", "probability", "top": [[family, p], ...], "windows"}`` of one file's clips
    (the probabilities averaged over its windows)."""
    probs = predict_waves(model, clips).mean(0)  # (11,)
    order = torch.argsort(probs, descending=True)[: min(top, len(FAMILIES))].tolist()
    return {"family": FAMILIES[order[0]], "probability": float(probs[order[0]]),
            "top": [[FAMILIES[i], float(probs[i])] for i in order], "windows": len(clips)}


def predict(paths: list[Path], checkpoint: Path | None = None, top: int = 1, windows: bool = False,
            device: str = "auto", skip_bad: bool = False, names: dict | None = None) -> tuple[list[dict], int]:
    """Family probabilities per file: ``([{"file", "family", "probability", "top", "windows"}, ...],
    number of files skipped)``. ``names`` maps a path to the name shown for it (``-`` for stdin).
    A bad file is a UserError naming it, or with ``skip_bad`` left out and counted."""
    from songkit.core.progress import track

    if top < 1:
        raise UserError(f"--top {top}: expected >= 1")
    names = names or {}
    model, _ = load(checkpoint, device)
    samples = input_samples(model)
    results, skipped = [], 0
    for path in track(paths, total=len(paths), description="classify", unit="files"):
        shown = names.get(path, str(path))
        try:
            clips = audio_windows(Path(path), samples, windows)
        except UserError as e:
            message = e.message.replace(str(path), shown)
            if not skip_bad:
                raise UserError(message) from None
            log(f"skipped: {message}")
            skipped += 1
            continue
        results.append({"file": shown, **classify(model, clips, top)})
    return results, skipped

