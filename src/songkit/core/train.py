"""The training loop shared by every task: ``fit(model, task, cfg, out_dir, meta)``.

A task supplies deterministic batches and a loss; ``fit`` supplies the rest:
AdamW/Adam/SGD, a warm-up + cosine or reduce-on-plateau schedule, gradient
clipping, an optional moving average of the weights (``ema``: what is evaluated and saved),
early stopping on a validation metric, ``best.ckpt`` and ``last.ckpt``
in the run folder, ``--resume`` from ``last.ckpt`` with the same result as an
uninterrupted run, autocast (bf16 on CPUs with AMX/AVX512-BF16 and on CUDA), and
DistributedDataParallel under torchrun (rank 0 writes the files). Per-epoch metrics go to
``metrics.jsonl`` and ``curves.png``; both are rewritten from ``last.ckpt`` on resume, so a run's
files always agree with its last checkpoint.

The model is built by ``fit`` from a factory after seeding (nanoGPT's habit): the same seed gives the
same initial weights, whatever the caller did with the RNGs before.

The task protocol (duck-typed)::

    batches(epoch, rank, world) -> iterable   # deterministic from (seed, epoch); the same count on every rank
    num_batches(epoch, rank, world) -> int | None
    train_step(model, batch, device) -> (mean loss tensor, number of items)
    evaluate(model, device) -> {"val_loss": ..., ...}
    on_epoch_start(epoch)                     # optional: reset state carried across batches
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from songkit.core.errors import UserError
from songkit.core.io import clean_stale_temps
from songkit.core.progress import log, make_progress, show_bars
from songkit.core.runs import (  # noqa: F401 - TrainRun and prepare_run_folder are part of this module's API
    RUN_FILES,
    TrainRun,
    prepare_run_folder,
    sync_run_files,
)

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "plateau", "none")


@dataclass
class TrainConfig:
    """Optimisation settings (saved in every checkpoint's train_state)."""

    epochs: int = 10
    lr: float = 1e-3
    optimizer: str = "adamw"  # adamw | adam | sgd
    weight_decay: float = 0.01
    momentum: float = 0.9  # sgd only
    schedule: str = "cosine"  # cosine (per step, after warm-up) | plateau (per epoch, on monitor) | none
    warmup_steps: int = 0
    min_lr_ratio: float = 0.05  # cosine floor as a fraction of lr
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    clip_grad: float | None = 1.0  # max global grad norm; None/0 disables
    patience: int | None = None  # early stopping: epochs without improvement of `monitor`
    monitor: str = "val_loss"
    monitor_mode: str = "min"  # min | max
    amp: bool = True  # autocast where it pays: core.device.amp_dtype (bf16 CPU/CUDA, fp16 CUDA)
    seed: int = 0
    max_steps_per_epoch: int | None = None
    ema: float = 0.0  # decay of a moving average of the weights (0: off); the average is evaluated and saved
    run_options: dict = field(default_factory=dict)  # what the run was started with (for --resume)

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"--optimizer {self.optimizer}: expected one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"--schedule {self.schedule}: expected one of {', '.join(SCHEDULES)}")
        if self.monitor_mode not in ("min", "max"):
            raise UserError(f"monitor mode {self.monitor_mode}: expected min or max")
        if self.epochs < 1 or self.lr <= 0:
            raise UserError("--epochs must be >= 1 and --lr > 0")
        if not 0.0 <= self.ema < 1.0:
            raise UserError(f"--ema {self.ema}: expected a decay in [0, 1) (0: off; 0.999 is usual)")


# ---------------------------------------------------------------- distributed
def dist_env() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) when run plainly."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _init_distributed(device) -> bool:
    import torch.distributed as dist

    _, world = dist_env()
    if world <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            import torch

            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return True


def _all_sum(values: list[float], device) -> list[float]:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


# ---------------------------------------------------------------- schedule
def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to ``min_lr_ratio * lr``: a plain function of the step."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule != "cosine" or total_steps <= cfg.warmup_steps:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


def build_optimizer(params, cfg: TrainConfig):
    import torch

    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


# ---------------------------------------------------------------- RNG state (plain values + tensors)
def _rng_state() -> dict:
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def ema_decay(step: int, decay: float) -> float:
    """The EMA's decay at ``step``: short memory at first (the early weights are far from any optimum)."""
    return min(decay, (1 + step) / (10 + step))


def ema_pairs(ema_model, model) -> tuple[list, list, list]:
    """(averaged, sources, copied pairs): the two models' tensors matched once, outside the step loop
    (the Parameter and buffer objects themselves, so a module that re-points its storage stays matched)."""
    pairs = list(zip(ema_model.state_dict(keep_vars=True).values(), model.state_dict(keep_vars=True).values(),
                     strict=True))
    avg = [(e, m) for e, m in pairs if e.is_floating_point()]
    return [e for e, _ in avg], [m for _, m in avg], [(e, m) for e, m in pairs if not e.is_floating_point()]


def ema_update(ema_model, model, decay: float, pairs: tuple[list, list, list] | None = None) -> None:
    """``ema = decay * ema + (1 - decay) * model`` over every float parameter and buffer (BatchNorm
    statistics too); integer buffers are copied. ``pairs``: :func:`ema_pairs`, when the caller keeps them."""
    import torch

    averaged, sources, copied = pairs or ema_pairs(ema_model, model)
    with torch.no_grad():
        if averaged:
            torch._foreach_lerp_(averaged, sources, 1.0 - decay)
        for e, m in copied:
            e.copy_(m)


def _improved(value: float, best: float | None, mode: str) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


# ---------------------------------------------------------------- fit


def fit(
    build_model: Callable[[], Any],
    task,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    meta: dict[str, Any],
    device: str = "auto",
    resume: bool = False,
    stop_after_epoch: int | None = None,
) -> list[dict]:
    """Seed, build the model with ``build_model()``, train it on ``task``; returns the per-epoch history.

    ``meta`` holds what goes into every checkpoint: task, model, config, vocab, extra.
    ``stop_after_epoch`` ends the run after that epoch as if it were killed (for tests).
    """
    import torch

    from songkit.core.checkpoint import _plain, load_checkpoint, save_checkpoint
    from songkit.core.device import amp_dtype, autocast, place_model, resolve_device, seed_everything

    cfg.check()
    dev = resolve_device(device)
    distributed = _init_distributed(dev)
    rank, world = dist_env()
    is_main = rank == 0
    out = Path(out_dir)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(out, RUN_FILES)  # left by killed atomic writes

    seed_everything(cfg.seed)  # before anything random is built: same initial weights on every rank and run
    model = build_model if isinstance(build_model, torch.nn.Module) else build_model()
    dtype = amp_dtype(dev, cfg.amp, model)
    model = place_model(model, dev, cfg.amp)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    plateau = None
    if cfg.schedule == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=cfg.monitor_mode, factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)  # bf16 needs no scaling

    history: list[dict] = []
    resumed_ema = None
    start_epoch, step, best, bad_epochs, done = 0, 0, None, 0, False
    last_path = out / "last.ckpt"
    if resume:
        if last_path.is_file():
            ck = load_checkpoint(last_path, task=meta["task"])
            if ck.model != meta["model"] or ck.config != _plain(meta["config"]):
                raise UserError(f"{last_path}: --resume with a different model or config than this run folder holds")
            if not ck.train_state:
                raise UserError(f"{last_path}: has no training state to resume from")
            ts = ck.train_state
            if bool(cfg.ema) != ("raw_state" in ts):  # its saved weights are the average or the raw ones
                raise UserError(f"{last_path}: --resume with{'' if cfg.ema else 'out'} --ema, but the run was "
                                f"started with{'out' if cfg.ema else ''} it")
            model.load_state_dict(ts["raw_state"] if cfg.ema else ck.state_dict)
            resumed_ema = ck.state_dict if cfg.ema else None
            optimizer.load_state_dict(ts["optimizer"])
            if plateau is not None and ts.get("plateau"):
                plateau.load_state_dict(ts["plateau"])
            if ts.get("scaler"):
                scaler.load_state_dict(ts["scaler"])
            _set_rng_state(ts["rng"])
            start_epoch, step = ts["epoch"] + 1, ts["step"]
            best, bad_epochs, done = ts["best"], ts["bad_epochs"], ts.get("done", False)
            history = list(ck.history)
            if is_main:
                sync_run_files(out, history)  # a kill between last.ckpt and metrics.jsonl left them apart
                log(f"resuming {out} after epoch {start_epoch} (step {step})")
        elif is_main:
            log(f"no {last_path} to resume from: starting a new run")

    raw_model = model
    # the averaged weights are evaluated and saved as the model; the raw ones only go into last.ckpt's train_state
    ema_model, pairs = None, None
    if cfg.ema:
        import copy

        ema_model = copy.deepcopy(raw_model)
        if resumed_ema is not None:
            ema_model.load_state_dict(resumed_ema)
        ema_model.requires_grad_(False)
        pairs = ema_pairs(ema_model, raw_model)
    eval_model = ema_model if ema_model is not None else raw_model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    def steps_in(epoch: int) -> int | None:
        n = task.num_batches(epoch, rank, world) if hasattr(task, "num_batches") else None
        if n is not None and cfg.max_steps_per_epoch:
            n = min(n, cfg.max_steps_per_epoch)
        return n

    per_epoch = steps_in(0)
    total_steps = (per_epoch or 1) * cfg.epochs
    extra = {**(meta.get("extra") or {}), "run_options": cfg.run_options} if cfg.run_options else meta.get("extra")

    def save(path: Path, with_state: bool, epoch: int) -> None:
        ts = None
        if with_state:
            ts = {
                "optimizer": optimizer.state_dict(),
                "plateau": plateau.state_dict() if plateau is not None else None,
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "rng": _rng_state(),
                # done: stopped early (a run that reached --epochs can be extended with a larger --epochs)
                "epoch": epoch, "step": step, "best": best, "bad_epochs": bad_epochs, "done": done,
                "train_config": asdict(cfg),
            }
            if ema_model is not None:
                ts["raw_state"] = raw_model.state_dict()
        save_checkpoint(path, task=meta["task"], model=meta["model"], config=meta["config"],
                        vocab=meta.get("vocab"), state_dict=eval_model.state_dict(), history=history,
                        extra=extra, train_state=ts)

    epoch = start_epoch
    finished_epoch = start_epoch  # epochs whose last.ckpt is written
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if done:
                break
            t0 = time.time()
            model.train()
            if hasattr(task, "on_epoch_start"):
                task.on_epoch_start(epoch)
            n_steps = steps_in(epoch)
            loss_sum, item_sum = 0.0, 0
            with make_progress() as bar:
                bar_task = bar.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=n_steps, rate="", info="")
                for i, batch in enumerate(task.batches(epoch, rank, world)):
                    if cfg.max_steps_per_epoch and i >= cfg.max_steps_per_epoch:
                        break
                    if plateau is None:
                        for group in optimizer.param_groups:
                            group["lr"] = lr_at(step, total_steps, cfg)
                    with autocast(dev, dtype):
                        loss, n_items = task.train_step(model, batch, dev)
                    if not torch.isfinite(loss):
                        raise UserError(f"training diverged (loss {loss.item()}) at epoch {epoch + 1}, step {i + 1}; "
                                        "try a lower --lr or --clip-grad")
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if cfg.clip_grad:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                    scaler.step(optimizer)
                    scaler.update()
                    if ema_model is not None:
                        ema_update(ema_model, raw_model, ema_decay(step, cfg.ema), pairs)
                    step += 1
                    loss_value = float(loss.detach())
                    loss_sum += loss_value * n_items
                    item_sum += n_items
                    rate = f"{item_sum / max(1e-9, time.time() - t0):.0f} items/s"
                    bar.update(bar_task, advance=1, info=f"loss {loss_value:.4f}", rate=rate)
                    if is_main and not show_bars() and n_steps and (i + 1) % max(1, n_steps // 10) == 0:
                        log(f"  epoch {epoch + 1} step {i + 1}/{n_steps}  loss {loss_value:.4f}  {rate}")  # log files
            train_seconds = time.time() - t0
            loss_sum, item_sum = _all_sum([loss_sum, float(item_sum)], dev)
            model.eval()
            eval_model.eval()
            with torch.no_grad(), autocast(dev, dtype):
                metrics = task.evaluate(eval_model, dev)
            row = {"epoch": epoch + 1, "train_loss": loss_sum / max(1.0, item_sum), **metrics,
                   "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - t0, 3),
                   "items_per_s": round(item_sum / max(1e-9, train_seconds), 2)}  # training only, all ranks
            history.append(row)
            value = metrics.get(cfg.monitor, row.get(cfg.monitor))
            improved = _improved(value, best, cfg.monitor_mode)
            if improved:
                best, bad_epochs = float(value), 0
            else:
                bad_epochs += 1
            if plateau is not None and value is not None:
                plateau.step(value)
            if cfg.patience and bad_epochs >= cfg.patience:
                done = True
            if is_main:
                log("  ".join([f"epoch {epoch + 1}/{cfg.epochs}"] + [
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "epoch"
                ]) + ("  *" if improved else ""))
                # metrics first, last.ckpt last: a kill in between is repaired by --resume (sync_run_files)
                sync_run_files(out, history)
                if improved:
                    save(out / "best.ckpt", with_state=False, epoch=epoch)
                save(last_path, with_state=True, epoch=epoch)
                if done:
                    log(f"early stop: {cfg.monitor} did not improve for {cfg.patience} epochs (best {best:.4g})")
            finished_epoch = epoch + 1
            if distributed:
                import torch.distributed as dist

                dist.barrier()
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
                break
    except KeyboardInterrupt:
        held = f"last.ckpt holds epoch {finished_epoch}; --resume continues" if finished_epoch else "nothing saved yet"
        raise KeyboardInterrupt(f"training interrupted in epoch {epoch + 1} ({out}): {held}") from None
    return history
