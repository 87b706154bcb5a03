"""Checkpoints: one file, tensors and plain values only, written atomically.

Layout (a plain dict, loadable with ``torch.load(weights_only=True)``)::

    format          "songkit-checkpoint"
    format_version  FORMAT_VERSION
    songkit_version "0.1.0"
    task            "generate" | "chords" | ...
    model           the model name inside the task ("lstm", "blstm", ...)
    config          the model config dataclass as a dict (rebuild with Cfg(**config))
    vocab           the label / character vocabulary (list or dict of plain values)
    state_dict      the weights (no "module." / "_orig_mod." prefixes)
    history         one dict of metrics per epoch
    extra           task-specific plain values (feature settings, split, ...)
    train_state     only in a run's last.ckpt: optimizer, scheduler, RNG, epoch (for --resume)
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from songkit import __version__
from songkit.core.errors import UserError

FORMAT = "songkit-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint (all tensors on the CPU)."""

    path: Path
    task: str
    model: str
    config: dict
    vocab: Any
    state_dict: dict
    history: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    train_state: dict | None = None
    format_version: int = FORMAT_VERSION
    songkit_version: str = __version__


def _plain(value: Any) -> Any:
    """Dataclasses and paths become plain values (tensors pass through)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)) or _is_tensor(value):
        return value
    raise TypeError(f"checkpoints hold only tensors and plain values, not {type(value).__name__}")


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def clean_state_dict(state_dict: dict) -> dict:
    """Strip DDP's ``module.`` and torch.compile's ``_orig_mod.`` prefixes; detach to CPU."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value.detach().cpu() if hasattr(value, "detach") else value
    return out


def save_checkpoint(
    path: str | os.PathLike,
    *,
    task: str,
    model: str,
    config: Any,
    vocab: Any,
    state_dict: dict,
    history: list | tuple = (),
    extra: dict | None = None,
    train_state: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file in the same folder, then rename)."""
    import torch

    from songkit.core.io import atomic_write_bytes

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "songkit_version": __version__,
        "task": task,
        "model": model,
        "config": _plain(config),
        "vocab": _plain(vocab),
        "state_dict": _plain(clean_state_dict(state_dict)),
        "history": _plain(list(history)),
        "extra": _plain(extra or {}),
    }
    if train_state is not None:
        payload["train_state"] = _plain(train_state)
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_checkpoint(path: str | os.PathLike, task: str | None = None, map_location: str = "cpu") -> Checkpoint:
    """Load a checkpoint safely (``weights_only=True``, onto the CPU).

    A missing file, a file that is not a songkit checkpoint, one holding pickled
    objects, one of another task, or one of a newer format is a UserError.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such checkpoint file")
    if not zipfile.is_zipfile(p):  # torch.save writes a zip archive
        raise UserError(f"{p}: not a songkit checkpoint (not a PyTorch checkpoint archive)")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if "Unsupported global" in str(e) or "GLOBAL" in str(e):
            raise UserError(
                f"{p}: refused: holds pickled Python objects, not only tensors and plain values "
                "(songkit never executes pickled code)"
            ) from None
        raise UserError(f"{p}: not a songkit checkpoint ({first[:120]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{p}: not a songkit checkpoint ({first[:120]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{p}: not a songkit checkpoint (no songkit header)")
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(
            f"{p}: checkpoint format {version} is newer than this songkit reads ({FORMAT_VERSION}); upgrade songkit"
        )
    if task is not None and obj.get("task") != task:
        raise UserError(f"{p}: a '{obj.get('task')}' checkpoint, but this command needs a '{task}' checkpoint")
    try:
        return Checkpoint(
            path=p,
            task=obj["task"],
            model=obj["model"],
            config=dict(obj["config"]),
            vocab=obj["vocab"],
            state_dict=obj["state_dict"],
            history=list(obj.get("history", [])),
            extra=dict(obj.get("extra") or {}),
            train_state=obj.get("train_state"),
            format_version=version,
            songkit_version=obj.get("songkit_version", "?"),
        )
    except (KeyError, TypeError) as e:
        raise UserError(f"{p}: damaged songkit checkpoint (missing {e})") from None


def default_checkpoint(task: str) -> Path:
    """The default checkpoint of ``task``: ``$SONGKIT_HOME/<task>.ckpt`` when it exists
    (a local cache), else the one shipped in the package. Nothing is downloaded."""
    home = os.environ.get("SONGKIT_HOME")
    if home and (Path(home) / f"{task}.ckpt").is_file():
        return Path(home) / f"{task}.ckpt"
    path = Path(__file__).resolve().parent.parent / "tasks" / task / "weights" / "default.ckpt"
    if not path.is_file():
        raise UserError(
            f"{path}: no default checkpoint for '{task}' in this install; pass --checkpoint "
            f"or build one with `make checkpoint-{task}`"
        )
    return path
