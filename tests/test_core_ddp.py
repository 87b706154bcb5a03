"""DistributedDataParallel: two CPU processes (gloo) launched by torchrun end with identical weights."""

import socket
import subprocess
import sys
from pathlib import Path

import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_end_identical(tmp_path):
    worker = Path(__file__).parent / "ddp_worker.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(worker), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={
        **__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    # the weights moved: DDP trained, not just broadcast the initial ones
    torch.manual_seed(0)  # fit's seed: the initial weights
    assert not torch.equal(r0["0.weight"], __import__("toy").make_model().state_dict()["0.weight"])
    assert (tmp_path / "best.ckpt").is_file() and (tmp_path / "metrics.jsonl").read_text().count("\n") == 3
