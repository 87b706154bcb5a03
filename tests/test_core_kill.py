"""SIGKILL at random moments during training, each followed by --resume, ends with the weights of an
uninterrupted run, and never leaves a checkpoint that fails to load or a temporary file behind."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from songkit.core.checkpoint import load_checkpoint

WORKER = Path(__file__).parent / "kill_worker.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _start(args, kill_after=None):
    """Run ``args``; with ``kill_after``, SIGKILL it after that many seconds instead of waiting for it."""
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is None:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        return
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _run(out, resume=False, kill_after=None):
    _start([sys.executable, str(WORKER), str(out)] + (["resume"] if resume else []), kill_after)


def test_random_kills_then_resume_equal_uninterrupted(tmp_path):
    _run(tmp_path / "full")
    rng = random.Random(7)
    part = tmp_path / "part"
    for k in range(4):
        _run(part, resume=k > 0, kill_after=rng.uniform(1.5, 4.0))  # imports take ~1.5 s
        for name in ("last.ckpt", "best.ckpt"):
            if (part / name).exists():
                load_checkpoint(part / name)  # never half a file
    _run(part, resume=True)
    full, resumed = (load_checkpoint(p / "last.ckpt") for p in (tmp_path / "full", part))
    assert all(torch.equal(full.state_dict[k], resumed.state_dict[k]) for k in full.state_dict)
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]
    assert (part / "metrics.jsonl").read_text().count("\n") == 6
    assert not [p.name for p in part.iterdir() if p.name.endswith(".tmp")]


GENERATE = ["-m", "songkit", "-q", "train", "generate", "--limit", "200", "--epochs", "4", "--max-steps-per-epoch",
            "15", "--batch-size", "8", "--seq-len", "32", "--hidden-size", "32", "--embed-dim", "8", "--num-layers",
            "1", "--workers", "0", "--seed", "0", "--device", "cpu"]


def _songkit(out, resume=False, kill_after=None):
    _start([sys.executable, *GENERATE, "--out", str(out)] + (["--resume"] if resume else []), kill_after)


@pytest.mark.slow
def test_random_kills_of_songkit_train_generate_then_resume(tmp_path):
    """The same through the real command line of one task (about a minute)."""
    _songkit(tmp_path / "full")
    rng = random.Random(3)
    part = tmp_path / "part"
    for k in range(3):
        _songkit(part, resume=k > 0, kill_after=rng.uniform(4.0, 8.0))
        for name in ("last.ckpt", "best.ckpt"):
            if (part / name).exists():
                load_checkpoint(part / name)
    _songkit(part, resume=True)
    full, resumed = (load_checkpoint(p / "last.ckpt") for p in (tmp_path / "full", part))
    assert all(torch.equal(full.state_dict[k], resumed.state_dict[k]) for k in full.state_dict)
    assert (part / "metrics.jsonl").read_text().count("\n") == 4
    assert not [p.name for p in part.iterdir() if p.name.endswith(".tmp")]
