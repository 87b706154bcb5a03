"""Run folders: what ``songkit train`` finds in ``--out`` before it trains, and the files a run keeps there.

A folder holding a run is refused without ``--resume`` (``--force`` starts over); ``--resume`` takes the
options the run was started with from its ``last.ckpt``; ``metrics.jsonl`` and ``curves.png`` are written
from the history in ``last.ckpt`` so a kill between two writes never leaves them apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from songkit.core.errors import UserError
from songkit.core.io import clean_stale_temps
from songkit.core.progress import log

RUN_FILES = ("last.ckpt", "best.ckpt", "metrics.jsonl", "curves.png")


def sync_run_files(out: Path, history: list[dict]) -> None:
    """Write ``metrics.jsonl`` and ``curves.png`` from ``history`` (the one in last.ckpt)."""
    import json

    from songkit.core.io import atomic_write_text
    from songkit.core.plots import curves_png

    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history))
    if history:
        curves_png(history, out / "curves.png")


# ---------------------------------------------------------------- run folders and --resume
# options that may differ on --resume: where and how the run executes, not what it computes
RESUME_FREE = ("out", "epochs", "device", "workers", "resume", "force", "explicit")


@dataclass
class TrainRun:
    """The options every ``songkit train TASK`` shares (plain values; the CLI fills it)."""

    data: list[Path] | None = None
    out: Path = Path("runs/train")
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    schedule: str = "cosine"
    warmup_steps: int = 0
    clip_grad: float = 1.0
    patience: int = 0
    max_steps_per_epoch: int = 0
    ema: float = 0.0
    amp: bool = True
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    workers: int = 0
    force: bool = False
    explicit: frozenset = frozenset()  # the options the user typed (the rest are defaults)
    record: dict = field(default_factory=dict)  # what is saved in the checkpoint for --resume

    def train_config(self, **overrides: Any):
        """A core TrainConfig from these options (task overrides such as monitor win)."""
        from songkit.core.train import TrainConfig

        cfg = TrainConfig(
            epochs=self.epochs, lr=self.lr, optimizer=self.optimizer, weight_decay=self.weight_decay,
            schedule=self.schedule, warmup_steps=self.warmup_steps, clip_grad=self.clip_grad or None,
            patience=self.patience or None, amp=self.amp, seed=self.seed,
            max_steps_per_epoch=self.max_steps_per_epoch or None, ema=self.ema, run_options=self.record,
        )
        for key, value in overrides.items():
            setattr(cfg, key, value)
        return cfg

    def shared_record(self) -> dict:
        """The shared options that define what the run computes, as plain values."""
        rec = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in RESUME_FREE + ("record",)}
        rec["data"] = [str(p) for p in self.data] if self.data else None
        return rec


def prepare_run_folder(run: TrainRun, options: dict) -> bool:
    """Check ``run.out`` against --resume/--force before anything is built; returns False when there is
    nothing to do (a finished run). On --resume the shared and task ``options`` (a dict, updated in place)
    and ``run`` take the values the run was started with; an option the user typed with another value is
    refused with one line naming it. Without --resume a folder holding a run is refused (--force: start over).
    """
    import contextlib

    from songkit.core.checkpoint import load_checkpoint

    out = Path(run.out)
    last = out / "last.ckpt"
    if out.is_dir():
        clean_stale_temps(out, RUN_FILES)  # left by killed atomic writes
    if not run.resume:
        present = [name for name in RUN_FILES if (out / name).exists()]
        if present and not run.force:
            raise UserError(f"{out}: holds a run already ({', '.join(present)}); "
                            "--resume continues it, --force starts over")
        for name in present:
            with contextlib.suppress(OSError):
                (out / name).unlink()
    elif last.is_file():
        ck = load_checkpoint(last)
        saved = (ck.extra or {}).get("run_options") or {}
        _merge_saved(run, options, saved, last)
        ts = ck.train_state or {}
        epochs_done = int(ts.get("epoch", -1)) + 1
        sync_run_files(out, list(ck.history))
        if ts.get("done") or epochs_done >= run.epochs:
            why = "stopped early" if ts.get("done") else f"epoch {epochs_done} of {run.epochs}"
            log(f"{out}: this run has finished ({why}); nothing to do (a larger --epochs extends it)")
            return False
    run.record = {**run.shared_record(), "options": dict(options)}
    return True


def _merge_saved(run: TrainRun, options: dict, saved: dict, source: Path) -> None:
    saved_options = dict(saved.get("options") or {})
    shared = {k: v for k, v in saved.items() if k != "options"}
    for name, value in shared.items():
        if not hasattr(run, name) or name in RESUME_FREE:
            continue
        current = run.shared_record().get(name) if name == "data" else getattr(run, name)
        if name in run.explicit and current != value:
            raise UserError(f"{source}: --resume: --{name.replace('_', '-')} {_show(current)} differs from the "
                            f"run's {_show(value)}; drop it or start a new run with --force")
        setattr(run, name, [Path(p) for p in value] if name == "data" and value else value)
    if shared:  # an option newer than the run (e.g. --ema) was off then: its dataclass default, not today's CLI one
        for f in fields(TrainRun):
            if f.name not in shared and f.name not in RESUME_FREE + ("record",) and f.name not in run.explicit:
                setattr(run, f.name, f.default)
    for name, value in saved_options.items():
        if name in options and name in run.explicit and options[name] != value:
            raise UserError(f"{source}: --resume: --{name.replace('_', '-')} {_show(options[name])} differs from "
                            f"the run's {_show(value)}; drop it or start a new run with --force")
        options[name] = value


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
