"""Data loading shared by every task: seeded DataLoaders and build-once dataset caches.

The order of a training epoch is a function of (seed, epoch) only: the same whatever ``--workers``,
the same after ``--resume``, and sharded by rank under torchrun (a DistributedSampler does both).
Random augmentation draws from ``item_rng(seed, epoch, index)``, so an item's augmentation does not
depend on which worker process decoded it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from songkit.core.io import home_dir  # noqa: F401 - build_once's root; tasks import it from here too


def default_workers() -> int:
    """DataLoader worker processes by default: the machine's cores, at most 4."""
    return max(0, min(4, os.cpu_count() or 1))


def item_rng(seed: int, epoch: int, index: int):
    """A numpy Generator for one item of one epoch: augmentation independent of the worker layout."""
    import numpy as np

    return np.random.Generator(np.random.PCG64([seed % 2**32, epoch, index]))


def _seed_worker(worker_id: int) -> None:
    # numpy/random in a worker: derived from the per-worker torch seed DataLoader sets (itself from the
    # loader's seeded generator), so code that still uses the global RNGs repeats too
    import random

    import numpy as np
    import torch

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset, *, batch_size: int, shuffle: bool, seed: int, epoch: int = 0, rank: int = 0,
                world: int = 1, workers: int = 0, collate_fn: Callable | None = None, drop_last: bool = False,
                device=None):
    """A DataLoader whose order is a function of (seed, epoch), sharded by rank.

    ``workers`` 0 loads in this process. ``dataset.set_epoch(epoch)`` is called when the dataset has it
    (before workers start, so they see it). Pinned memory on CUDA.
    """
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed,
                                 drop_last=drop_last or world > 1)
    sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)  # workers' base seed
    on_cuda = device is not None and torch.device(device).type == "cuda"
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate_fn, drop_last=drop_last, pin_memory=on_cuda, generator=generator,
                      worker_init_fn=_seed_worker if workers else None,
                      persistent_workers=False, multiprocessing_context="spawn" if workers and on_cuda else None)


def build_once(name: str, build: Callable[[Path], None], version: str = "1") -> Path:
    """The folder ``$SONGKIT_HOME/<name>-v<version>``, built by ``build(tmp)`` the first time.

    ``build`` fills a temporary folder beside the final one, which is then renamed into place: a killed
    build never leaves a folder that reads as complete, and two processes building at once both end
    with one complete folder. Leftovers of killed builds are removed on the next build.
    """
    root = home_dir()
    final = root / f"{name}-v{version}"
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f".{final.name}.*.building"):
        with contextlib.suppress(OSError):
            if not _pid_alive(stale):
                shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".building", dir=root))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a lost race: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _pid_alive(building: Path) -> bool:
    """True when the process that named this temporary build folder still runs."""
    try:
        pid = int(building.name.split(".")[-3])
    except (ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()
