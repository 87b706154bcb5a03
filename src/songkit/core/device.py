"""Devices resolved at call time, seeding, and precision (bf16 where the CPU has it)."""

from __future__ import annotations

import contextlib
import functools
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


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when this CPU computes bf16 natively (AMX or AVX512-BF16), read at run time.

    Without native bf16 the CPU emulates it, and autocast is slower than plain fp32 (10x on an AVX2
    EPYC, measured). ``SONGKIT_CPU_BF16=1`` or ``0`` overrides the detection (benchmarks, tests).
    """
    forced = os.environ.get("SONGKIT_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    flags = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line
                    break
    names = set(flags.split())
    return bool(names & {"avx512_bf16", "amx_bf16"})


def amp_dtype(device, enabled: bool = True, model=None):
    """The autocast dtype for ``device``, or None for plain fp32.

    CUDA: bf16 where supported, else fp16 (with a GradScaler in training); CPU: bf16 when the
    CPU has AMX or AVX512-BF16; MPS: none. A model class with ``use_amp = False`` (one where bf16
    does not pay or hurts, measured) stays fp32.
    """
    import torch

    if not enabled or (model is not None and getattr(type(model), "use_amp", True) is False):
        return None
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None


def autocast(device, dtype):
    """``torch.autocast`` for ``dtype`` on ``device``; a no-op context when ``dtype`` is None."""
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def place_model(model, device, amp: bool = True, inference: bool = False):
    """Move ``model`` to ``device``; conv nets (class attribute ``channels_last = True``) go channels-last
    under autocast (the layout the fast bf16/fp16 kernels want) and for inference. Plain fp32 training on a
    CPU without native bf16 stays channels-first: measured on an AVX2 EPYC, channels-last was 0.73-1.01x
    for training but 1.23-1.50x for inference (bench/bench_segment.py --layouts).
    """
    import torch

    model = model.to(device)
    if getattr(type(model), "channels_last", False) and (inference or amp_dtype(device, amp, model) is not None):
        model = model.to(memory_format=torch.channels_last)
    return model
