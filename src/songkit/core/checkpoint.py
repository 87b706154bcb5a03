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
from songkit.core.config import build_config, check_plain, first_line
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
    payload["weights_sha256"] = weights_checksum(payload["state_dict"])
    if train_state is not None:
        payload["train_state"] = _plain(train_state)
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def ship_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, *, task: str) -> Path:
    """Copy a trained checkpoint to a shipped default: the same fields, the float weights stored as
    float16 (half the file; :func:`load_model` copies them back into the fp32 model), no train_state.

    Refused (UserError) when a weight does not fit float16 (non-finite after the cast) or when
    ``dst`` is ``src``: a failure leaves ``dst`` as it was.
    """
    import torch

    ck = load_checkpoint(src, task=task)
    if Path(dst).resolve() == ck.path.resolve():
        raise UserError(f"{dst}: is the checkpoint being copied; give another output")
    half = {}
    for key, value in ck.state_dict.items():
        if value.is_floating_point() and value.dtype != torch.float16:
            value = value.to(torch.float16)
            if not bool(torch.isfinite(value).all()):
                raise UserError(f"{ck.path}: state_dict.{key}: does not fit float16")
        half[key] = value
    return save_checkpoint(dst, task=ck.task, model=ck.model, config=ck.config, vocab=ck.vocab, state_dict=half,
                           history=ck.history, extra=ck.extra)


def weights_checksum(state_dict: dict) -> str:
    """sha256 over the weights in key order: each key, dtype, shape and the tensor's bytes.

    Stored at save time and verified on load, so a flipped bit inside a weight is caught
    (the zip archive has no checksum of its own that torch checks).
    """
    import hashlib

    import torch

    digest = hashlib.sha256()
    for key in sorted(state_dict):
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            continue
        t = value.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder meaning its ``best.ckpt``."""
    p = Path(path)
    if p.is_dir():
        if not (p / "best.ckpt").is_file():
            raise UserError(f"{p}: a folder without best.ckpt (give a checkpoint file or a run folder)")
        return p / "best.ckpt"
    return p


def load_checkpoint(path: str | os.PathLike, task: str | None = None, map_location: str = "cpu") -> Checkpoint:
    """Load a checkpoint safely (``weights_only=True``, onto the CPU); ``path`` may be a run folder
    (its ``best.ckpt``).

    A missing file, a file that is not a songkit checkpoint, a damaged archive, one holding
    pickled objects, one of another task, one of a newer format, a field of the wrong type, or
    weights that do not match the checksum stored at save time are each one UserError line
    naming the file (and the field).
    """
    import torch

    p = resolve_checkpoint_path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such checkpoint file")
    try:
        is_zip = zipfile.is_zipfile(p)  # torch.save writes a zip archive
    except (zipfile.BadZipFile, OSError, ValueError):  # a damaged end record (e.g. "spans multiple disks")
        is_zip = False
    if not is_zip:
        raise UserError(f"{p}: not a songkit checkpoint (not a PyTorch checkpoint archive)")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e) or "GLOBAL" in str(e):
            raise UserError(
                f"{p}: refused: holds pickled Python objects, not only tensors and plain values "
                "(songkit never executes pickled code)"
            ) from None
        raise UserError(f"{p}: not a songkit checkpoint ({first_line(e)})") from None
    except MemoryError:
        raise UserError(f"{p}: damaged checkpoint archive (it claims more memory than there is)") from None
    except Exception as e:  # a damaged archive fails in many ways: KeyError, BadZipFile, RuntimeError, ...
        raise UserError(f"{p}: damaged or not a songkit checkpoint ({type(e).__name__}: {first_line(e)})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{p}: not a songkit checkpoint (no songkit header)")
    version = obj.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise UserError(
            f"{p}: checkpoint format {str(version)[:20]} is newer than this songkit reads ({FORMAT_VERSION}); "
            "upgrade songkit"
        )
    for name, kinds in _FIELDS.items():
        if name not in obj and name in _REQUIRED:
            raise UserError(f"{p}: {name}: missing (damaged songkit checkpoint)")
        if name in obj and not isinstance(obj[name], kinds):
            raise UserError(f"{p}: {name}: a {type(obj[name]).__name__}, expected {_kind_names(kinds)}")
    if task is not None and obj["task"] != task:
        raise UserError(f"{p}: a '{obj['task'][:40]}' checkpoint, but this command needs a '{task}' checkpoint")
    for key in obj["config"]:
        if not isinstance(key, str):
            raise UserError(f"{p}: config: a key of type {type(key).__name__}, expected field names")
    for key, value in obj["state_dict"].items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UserError(f"{p}: state_dict.{str(key)[:60]}: a {type(value).__name__}, expected a tensor")
    try:
        check_plain(obj["vocab"], "vocab")
    except ValueError as e:
        raise UserError(f"{p}: {e}") from None
    stored = obj.get("weights_sha256")
    if stored is not None and stored != weights_checksum(obj["state_dict"]):
        raise UserError(f"{p}: state_dict: weights differ from their checksum (the file was damaged after saving)")
    return Checkpoint(
        path=p,
        task=obj["task"],
        model=obj["model"],
        config=dict(obj["config"]),
        vocab=obj["vocab"],
        state_dict=dict(obj["state_dict"]),
        history=list(obj.get("history") or []),
        extra=dict(obj.get("extra") or {}),
        train_state=obj.get("train_state"),
        format_version=version,
        songkit_version=str(obj.get("songkit_version", "?")),
    )


# fields of the payload and the types they must have (old checkpoints may lack the optional ones)
_FIELDS: dict[str, tuple[type, ...]] = {
    "task": (str,), "model": (str,), "config": (dict,), "state_dict": (dict,), "history": (list, tuple),
    "extra": (dict,), "train_state": (dict, type(None)), "songkit_version": (str,), "weights_sha256": (str,),
}
_REQUIRED = ("task", "model", "config", "state_dict")


def _kind_names(kinds: tuple[type, ...]) -> str:
    return " or ".join("None" if k is type(None) else k.__name__ for k in kinds)


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


def load_model(path: str | os.PathLike | None, task: str, models: dict, device: Any = "cpu",
               check_vocab: Any = None) -> tuple[Any, Checkpoint]:
    """The one model loader: ``(model in eval mode on device, Checkpoint)``.

    ``path`` None is the task's shipped default (:func:`default_checkpoint`); a folder means its
    ``best.ckpt``. ``models`` is the task's ``{name: (ConfigDataclass, ModuleClass)}``.
    The checkpoint is validated as a whole before the model is built: task, model name, config
    (:func:`build_config`), vocabulary (``check_vocab(vocab)`` may raise ValueError), state_dict keys
    and shapes against a weightless ("meta") build of the model, finite weights and their checksum.
    Every failure is one ``UserError`` line naming the file and the field.
    """
    import torch

    p = default_checkpoint(task) if path is None else resolve_checkpoint_path(path)
    ck = load_checkpoint(p, task=task)
    p = ck.path
    if ck.model not in models:
        raise UserError(f"{p}: model: unknown {ck.model[:40]!r} (expected one of {', '.join(models)})")
    cfg_cls, module_cls = models[ck.model]
    cfg = build_config(cfg_cls, ck.config, p)
    if check_vocab is not None:
        try:
            check_vocab(ck.vocab)
        except (ValueError, TypeError) as e:
            raise UserError(f"{p}: vocab: {first_line(e)}") from None
    for key, value in ck.state_dict.items():
        if value.is_floating_point() or value.is_complex():
            if not bool(torch.isfinite(value).all()):
                raise UserError(f"{p}: state_dict.{key}: NaN or infinite weights")
    try:
        with torch.device("meta"):  # shapes without memory: a huge config cannot allocate gigabytes here
            skeleton = module_cls(cfg)
    except Exception:  # some modules compute buffers on the CPU while built; they get checked below
        skeleton = None
    if skeleton is not None:
        _check_weights_fit(p, ck, skeleton.state_dict())
    try:
        model = module_cls(cfg)
    except (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError, IndexError, MemoryError) as e:
        raise UserError(f"{p}: config: does not build model {ck.model!r} ({first_line(e)})") from None
    if skeleton is None:
        _check_weights_fit(p, ck, model.state_dict())
    try:
        model.load_state_dict(ck.state_dict)
    except (RuntimeError, TypeError, ValueError) as e:
        raise UserError(f"{p}: state_dict: does not fit model {ck.model!r} ({first_line(e)})") from None
    from songkit.core.device import place_model

    return place_model(model, _device(device), inference=True).eval(), ck


def _check_weights_fit(p: Path, ck: Checkpoint, expected: dict) -> None:
    """The checkpoint's state_dict has exactly the keys and shapes of the model its config builds."""
    got = ck.state_dict
    for key, want in expected.items():
        if key not in got:
            raise UserError(f"{p}: state_dict.{key}: missing (model {ck.model!r} with this config has it)")
        if tuple(got[key].shape) != tuple(want.shape):
            raise UserError(f"{p}: state_dict.{key}: shape {tuple(got[key].shape)}, the config gives "
                            f"{tuple(want.shape)}")
    extra = [k for k in got if k not in expected]
    if extra:
        raise UserError(f"{p}: state_dict.{extra[0][:80]}: not a weight of model {ck.model!r} with this config")


def _device(device: Any):
    """A torch.device from a spec string ("auto", "cpu", ...) or a torch.device."""
    import torch

    if isinstance(device, torch.device):
        return device
    from songkit.core.device import resolve_device

    return resolve_device(str(device))
