"""Instrument training on this machine: throughput per precision path, and memory at NSynth's size (issue 10).

Throughput (default): training examples/s of each model on one random batch (B x samples of 16 kHz audio),
in this process, on three paths: the default (`--amp`: bf16 autocast + channels-last for conv nets where
the CPU has AMX/AVX512-BF16, plain fp32 elsewhere), `--no-amp` (plain fp32, the reference), and bf16 forced
(what the default would do without the run-time detection). Ratios are to `--no-amp`, in the same run.

    python bench/bench_instrument.py [--models cnn2d,samplecnn,lstm] [--threads 1] [--batch 32] [--seconds 3]

Memory (--memory): a 50,000-note split in NSynth's layout made by symlinking the notes of a rendered set
(`bench_instrument_loso.py render`, or `songkit data instrument`) under new names; then
`songkit train instrument` on it as a subprocess, at --workers 0 and 2, with the resident memory of the
whole process tree (trainer + workers) sampled every 0.1 s. Steps per epoch are capped (--steps); the
time of a full epoch is extrapolated from the measured examples/s.

    python bench/bench_instrument.py --memory [--source DIR] [--notes 50000] [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def throughput(model, batch: int, seconds: float, dtype, device) -> float:
    """Training examples per second: forward under autocast ``dtype`` (None: fp32), loss, backward, Adam."""
    import torch

    from songkit.core.device import autocast
    from songkit.tasks.instrument.model import input_samples

    x = 0.1 * torch.randn(batch, input_samples(model), device=device)
    y = torch.randint(0, 11, (batch,), device=device)
    opt = torch.optim.Adam(model.parameters(), lr=8e-4)
    model.train()

    def step():
        with autocast(device, dtype):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up (filterbanks, allocator)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2:
        step()
        n += 1
    return n * batch / (time.perf_counter() - t0)


def bench_throughput(args) -> None:
    import torch

    from songkit.core.device import amp_dtype, cpu_supports_bf16, resolve_device
    from songkit.tasks.instrument.model import build_model

    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    print(f"native bf16 on this CPU: {cpu_supports_bf16()} (torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()}, {args.threads} thread(s), batch {args.batch})")
    for name in args.models.split(","):
        row = {"model": name}
        for path in ("default", "no_amp", "forced_bf16"):
            torch.manual_seed(0)
            model = build_model(name)
            if path == "forced_bf16":
                dtype = torch.bfloat16
            else:
                dtype = amp_dtype(dev, path == "default", model)
            model = model.to(dev)
            if dtype is not None and getattr(type(model), "channels_last", False):
                model = model.to(memory_format=torch.channels_last)
            try:
                row[path] = throughput(model, args.batch, args.seconds, dtype, dev)
            except RuntimeError as e:  # oneDNN has no bf16 LSTM primitive on some CPUs
                row[path] = float("nan")
                row[f"{path}_error"] = str(e).splitlines()[0][:90]
        row["default_vs_no_amp"] = row["default"] / row["no_amp"]
        row["forced_bf16_vs_no_amp"] = row["forced_bf16"] / row["no_amp"]
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{name:<10} default {row['default']:8.1f}/s  --no-amp {row['no_amp']:8.1f}/s  "
                  f"ratio {row['default_vs_no_amp']:.2f}x   forced bf16 {row['forced_bf16']:8.1f}/s "
                  f"({row['forced_bf16_vs_no_amp']:.2f}x) {row.get('forced_bf16_error', '')}", flush=True)


# ----------------------------------------------------------------------------- memory at NSynth's size
def make_big_split(source: Path, out: Path, notes: int, valid_notes: int = 500) -> Path:
    """``out/nsynth-{train,valid}`` with ``notes`` (and ``valid_notes``) entries whose audio are symlinks to
    the notes of ``source`` (any NSynth-layout folder), renamed so every entry is its own note."""
    from songkit.tasks.instrument.nsynth import read_examples, split_dirs

    if (out / "nsynth-train" / "examples.json").is_file():
        return out
    pool = [e for d in split_dirs(source).values() for e in read_examples(d)[0]]
    for split, n in (("train", notes), ("valid", valid_notes)):
        audio = out / f"nsynth-{split}" / "audio"
        audio.mkdir(parents=True, exist_ok=True)
        meta = {}
        for i in range(n):
            ex = pool[(i * 7919 + (split == "valid")) % len(pool)]
            name = f"{ex.instrument_str}-{i:06d}"
            os.symlink(ex.audio.resolve(), audio / f"{name}.wav")
            meta[name] = {"note_str": name, "instrument_str": ex.instrument_str, "instrument_family": ex.family,
                          "pitch": ex.pitch}
        (out / f"nsynth-{split}" / "examples.json").write_text(json.dumps(meta))
    return out


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total


def bench_memory(args) -> None:
    import tempfile

    data = make_big_split(args.source, args.big, args.notes)
    print(f"{data}: {args.notes} train notes (symlinks to {args.source}), 500 valid notes")
    for workers in (0, 2):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "songkit", "-q", "train", "instrument", "--data", str(data), "--model",
                   args.model, "--epochs", "1", "--max-steps-per-epoch", str(args.steps), "--device", "cpu",
                   "--workers", str(workers), "--out", f"{tmp}/run", "--force"]
            t0 = time.time()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            peak = 0
            while proc.poll() is None:
                peak = max(peak, tree_rss(proc.pid))
                time.sleep(0.1)
            wall = time.time() - t0
            if proc.returncode != 0:
                print(f"workers {workers}: failed: {proc.stderr.read().strip().splitlines()[-1:]}")
                continue
            row = json.loads(Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()[-1])
        rate = row["items_per_s"]
        print(f"workers {workers}: peak RSS {peak / 2**30:.2f} GB; {args.steps} steps of 32 in "
              f"{row['seconds']:.0f} s with validation ({wall:.0f} s wall, with start-up): {rate:.1f} notes/s, "
              f"a full epoch of {args.notes} notes ~{args.notes / rate / 60:.0f} min", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="cnn2d,samplecnn,cnn1d,lstm,blstm")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady on a shared machine)")
    ap.add_argument("--batch", type=int, default=32, help="batch size (the seed's 32)")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--memory", action="store_true", help="peak RSS and epoch time on a 50,000-note split")
    ap.add_argument("--source", type=Path, default=Path("/tmp/songkit-loso/TimGM6mb"))
    ap.add_argument("--big", type=Path, default=Path("/tmp/songkit-nsynth-50k"))
    ap.add_argument("--notes", type=int, default=50000)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--model", default="cnn2d")
    args = ap.parse_args()
    if args.memory:
        bench_memory(args)
    else:
        bench_throughput(args)


if __name__ == "__main__":
    main()
