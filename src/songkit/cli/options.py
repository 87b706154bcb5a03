"""Shared command-line options, so every task spells them the same way. No torch here."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from songkit.core.train import TrainRun

Device = Annotated[str, typer.Option("--device", help="auto|cpu|cuda|cuda:N|mps (auto: cuda > mps > cpu).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same run.")]
Checkpoint = Annotated[
    Optional[Path], typer.Option("--checkpoint", "-c", metavar="CKPT",
                                 help="Checkpoint file, or a run folder (its best.ckpt); default: the shipped one.")
]
Json = Annotated[bool, typer.Option("--json", help="Write JSON (one object per line) instead of a table.")]


def train_options(**defaults: Any) -> Callable:
    """Decorate a task's train command: adds the shared training options to its signature
    and passes them to it gathered as ``run: TrainRun``. ``defaults`` set per-task defaults
    (e.g. ``epochs=30, lr=3e-3, batch_size=64, out=Path("runs/chords")``)."""
    d = {
        "data": None, "out": Path("runs/train"), "epochs": 10, "batch_size": 32, "lr": 1e-3, "optimizer": "adamw",
        "weight_decay": 0.01, "schedule": "cosine", "warmup_steps": 0, "clip_grad": 1.0, "patience": 0,
        "max_steps_per_epoch": 0, "ema": 0.0, "amp": True, "device": "auto", "seed": 0, "resume": False,
        "workers": None, "force": False,
    }
    unknown = set(defaults) - set(d)
    if unknown:
        raise TypeError(f"unknown train option defaults: {unknown}")
    d.update(defaults)
    P = inspect.Parameter
    shared = [
        P("data", P.KEYWORD_ONLY, default=d["data"], annotation=Annotated[Optional[list[Path]], typer.Option(
            "--data", "-d", help="Dataset file(s) or folder(s) in the real layout (default: the embedded dataset).")]),
        P("out", P.KEYWORD_ONLY, default=d["out"], annotation=Annotated[Path, typer.Option(
            "--out", "-o", help="Run folder: best.ckpt, last.ckpt, metrics.jsonl, curves.png.")]),
        P("epochs", P.KEYWORD_ONLY, default=d["epochs"], annotation=Annotated[int, typer.Option(
            "--epochs", min=1, help="Number of epochs.")]),
        P("batch_size", P.KEYWORD_ONLY, default=d["batch_size"], annotation=Annotated[int, typer.Option(
            "--batch-size", "-b", min=1, help="Batch size (per process under torchrun).")]),
        P("lr", P.KEYWORD_ONLY, default=d["lr"], annotation=Annotated[float, typer.Option(
            "--lr", min=0.0, help="Peak learning rate.")]),
        P("optimizer", P.KEYWORD_ONLY, default=d["optimizer"], annotation=Annotated[str, typer.Option(
            "--optimizer", help="adamw | adam | sgd.")]),
        P("weight_decay", P.KEYWORD_ONLY, default=d["weight_decay"], annotation=Annotated[float, typer.Option(
            "--weight-decay", min=0.0, help="Weight decay.")]),
        P("schedule", P.KEYWORD_ONLY, default=d["schedule"], annotation=Annotated[str, typer.Option(
            "--schedule", help="cosine (with warm-up) | plateau (reduce on plateau) | none.")]),
        P("warmup_steps", P.KEYWORD_ONLY, default=d["warmup_steps"], annotation=Annotated[int, typer.Option(
            "--warmup-steps", min=0, help="Linear warm-up steps.")]),
        P("clip_grad", P.KEYWORD_ONLY, default=d["clip_grad"], annotation=Annotated[float, typer.Option(
            "--clip-grad", min=0.0, help="Clip the global gradient norm (0: off).")]),
        P("patience", P.KEYWORD_ONLY, default=d["patience"], annotation=Annotated[int, typer.Option(
            "--patience", min=0, help="Early stopping after this many epochs without improvement (0: off).")]),
        P("max_steps_per_epoch", P.KEYWORD_ONLY, default=d["max_steps_per_epoch"],
          annotation=Annotated[int, typer.Option(
              "--max-steps-per-epoch", min=0, help="Cap the steps per epoch (0: a full pass).")]),
        P("ema", P.KEYWORD_ONLY, default=d["ema"], annotation=Annotated[float, typer.Option(
            "--ema", min=0.0, max=0.9999, metavar="DECAY",
            help="Keep a moving average of the weights with this decay (e.g. 0.999); it is evaluated and saved "
            "(0: off).")]),
        P("amp", P.KEYWORD_ONLY, default=d["amp"], annotation=Annotated[bool, typer.Option(
            "--amp/--no-amp", help="Mixed precision where it pays: bf16 on CPUs with AMX/AVX512-BF16 and on CUDA "
            "(fp16 where bf16 is missing); --no-amp: plain fp32.")]),
        P("device", P.KEYWORD_ONLY, default=d["device"], annotation=Device),
        P("seed", P.KEYWORD_ONLY, default=d["seed"], annotation=Seed),
        P("resume", P.KEYWORD_ONLY, default=d["resume"], annotation=Annotated[bool, typer.Option(
            "--resume", help="Continue a killed run from OUT/last.ckpt (options come from the run).")]),
        P("force", P.KEYWORD_ONLY, default=d["force"], annotation=Annotated[bool, typer.Option(
            "--force", help="Start over in an OUT that already holds a run (its files are replaced).")]),
        P("workers", P.KEYWORD_ONLY, default=d["workers"], annotation=Annotated[Optional[int], typer.Option(
            "--workers", min=0, metavar="N",
            help="DataLoader worker processes (default: the machine's cores, at most 4; 0: in-process).")]),
    ]
    names = [p.name for p in shared]

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        # resolve the task's annotations in the task's module (they may be strings under
        # `from __future__ import annotations`), so Typer never looks them up in this module
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [p.replace(kind=P.KEYWORD_ONLY, annotation=hints.get(p.name, p.annotation))
               for p in sig.parameters.values() if p.name != "run"]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            from songkit.core.data import default_workers
            from songkit.core.errors import ParameterSource, get_current_context

            ctx = get_current_context(silent=True)
            typed = frozenset(
                n for n in [*names, *kwargs] if ctx is not None and ctx.get_parameter_source(n) in (
                    ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
            )
            shared_values = {n: kwargs.pop(n) for n in names}
            if shared_values["workers"] is None:
                shared_values["workers"] = default_workers()
            run = TrainRun(**shared_values, explicit=typed)
            return fn(run=run, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=own + shared)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
        del wrapper.__wrapped__  # Typer must read the new signature, not fn's
        return wrapper

    return decorate


def start_training(task: str, run: TrainRun, options: Any) -> list[dict]:
    """Resolve the run folder (--resume takes the options the run was started with, --force starts over,
    a finished run does nothing), then call ``songkit.tasks.<task>.train.train(run.data, run, options)``.

    ``options`` is the task's TrainOptions dataclass (tasks/<task>/constants.py), field names = CLI names.
    """
    import importlib

    from songkit.core.train import prepare_run_folder

    values = asdict(options)
    if not prepare_run_folder(run, values):
        return []
    options = type(options)(**values)
    return importlib.import_module(f"songkit.tasks.{task}.train").train(run.data, run, options)


assert {f.name for f in fields(TrainRun)} >= {"data", "out"}
