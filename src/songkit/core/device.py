"""Devices resolved at call time, and seeding."""

from __future__ import annotations

import os
import random

from songkit.core.errors import UserError

DEVICE_CHOICES = "auto|cpu|cuda|cuda:N|mps"


def resolve_device(spec: str = "auto"):
    """Return the ``torch.device`` for ``spec`` (auto: cuda > mps > cpu).

    Under torchrun with CUDA, ``auto``/``cuda`` pick the GPU of this process's LOCAL_RANK.
    """
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            spec = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        else:
            return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise UserError("--device mps: MPS is not available on this machine")
        return torch.device("mps")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec}: CUDA is not available on this machine")
        if spec == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        try:
            index = int(spec.split(":", 1)[1])
        except ValueError:
            raise UserError(f"--device {spec}: expected {DEVICE_CHOICES}") from None
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    raise UserError(f"--device {spec}: expected {DEVICE_CHOICES}")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) so a run is repeatable."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
