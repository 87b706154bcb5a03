"""Training throughput of every task: the default path (`--amp`) against plain fp32 (`--no-amp`), in one run.

Each task trains for a few steps on its embedded data through the real command line
(`songkit train TASK ...`); the number is the training items/s that `fit` records in metrics.jsonl
(evaluation excluded). The default path is bf16 autocast (+ channels-last for conv nets) on CPUs with
AMX or AVX512-BF16 and on CUDA, and plain fp32 elsewhere: on a CPU without native bf16 the two columns
run the same code. `--emulated-bf16` adds a column that forces bf16 on such a CPU, to show what the
run-time detection avoids.

    python bench/bench_train.py [--tasks segment,chords] [--steps 6] [--emulated-bf16] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# per task: the model and sizes of its shipped default (segment at the 8 x 3 x 224 x 224)
TASKS = {
    "segment": ["--model", "erfnet", "--size", "224", "--batch-size", "8"],
    "instrument": ["--batch-size", "32"],
    "chords": ["--batch-size", "16"],
    "generate": ["--batch-size", "64"],
    "tokenize": ["--batch-size", "32"],
}


def run(task: str, extra: list[str], steps: int, out: Path, env: dict) -> float | str:
    """Items/s of one short training run, or the error's last line."""
    cmd = [sys.executable, "-m", "songkit", "-q", "train", task, *TASKS[task], "--epochs", "1",
           "--max-steps-per-epoch", str(steps), "--seed", "0", "--device", "cpu", "--workers", "0",
           "--force", "--out", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["failed"])[-1][:80]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return float(rows[-1]["items_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--emulated-bf16", action="store_true", help="also force bf16 on a CPU without it")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from songkit.core.device import cpu_supports_bf16

    native = cpu_supports_bf16()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1))}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks.split(","):
            out = Path(tmp) / task
            run(task, [], 1, out, env)  # warm-up: builds the embedded dataset once, fills caches
            row = {"task": task, "default": run(task, [], args.steps, out, env),
                   "no_amp": run(task, ["--no-amp"], args.steps, out, env)}
            if args.emulated_bf16 and not native:
                row["forced_bf16"] = run(task, [], args.steps, out, {**env, "SONGKIT_CPU_BF16": "1"})
            results.append(row)
            print(json.dumps(row) if args.json else _line(row), flush=True)
    if not args.json:
        print(f"native bf16 on this CPU: {native} (default path = {'bf16 autocast' if native else 'fp32'})")


def _line(row: dict) -> str:
    def fmt(v):
        return f"{v:9.1f}" if isinstance(v, float) else f"{v!s:>9}"

    ratio = row["default"] / row["no_amp"] if all(isinstance(row[k], float) for k in ("default", "no_amp")) else None
    text = f"{row['task']:<11} default {fmt(row['default'])} items/s   --no-amp {fmt(row['no_amp'])} items/s"
    text += f"   ratio {ratio:.2f}x" if ratio else ""
    if "forced_bf16" in row:
        text += f"   forced bf16 {fmt(row['forced_bf16'])} items/s"
    return text


if __name__ == "__main__":
    main()
