"""Shared test helpers: run the CLI in-process or as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tests train tiny models: one thread each is faster, and two threads spin-waiting on a busy
# 2-core machine made one test 6x slower. Set before torch is imported by any test module.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def run_cli(*args: str, input: str | None = None, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m songkit ARGS` as a user would; returns the completed process (text mode)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "songkit", *map(str, args)], input=input, capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True)
def _songkit_home(tmp_path_factory, monkeypatch):
    # built datasets and caches go to a per-session temp folder, never the user's home
    home = os.environ.get("SONGKIT_TEST_HOME") or str(tmp_path_factory.getbasetemp() / "songkit-home")
    os.environ["SONGKIT_TEST_HOME"] = home
    monkeypatch.setenv("SONGKIT_HOME", home)


@pytest.fixture
def forced_bf16(monkeypatch):
    """The CPU bf16 detection forced on (``SONGKIT_CPU_BF16=1``): the path a CPU with AMX or AVX512-BF16
    takes, on any machine; the cached detection is cleared before and after."""
    from songkit.core import device

    monkeypatch.setenv("SONGKIT_CPU_BF16", "1")
    device.cpu_supports_bf16.cache_clear()
    yield device
    device.cpu_supports_bf16.cache_clear()
