"""Segmentation training throughput: the default path against --no-amp, every model, in one run.

    python bench/bench_segment.py [--models fcn,erfnet] [--size 224] [--batch-size 8] [--repeats 2]
                                  [--command-steps 3] [--forced-bf16] [--json]

1. Training images/s of every model at ``batch x 3 x size x size`` (default 8 x 3 x 224 x 224): one AdamW
   step (forward, cross-entropy, backward, step) exactly as ``core.train.fit`` runs it: the model placed
   with ``core.device.place_model`` and the step under ``autocast(amp_dtype(...))``. "default" is that path
   with amp on (bf16 autocast + channels-last on CPUs with AMX/AVX512-BF16 and on CUDA; plain fp32 on a
   CPU without native bf16), "no_amp" is plain fp32 channels-first. Each time is the best of ``--repeats``
   rounds after a warm-up, the variants taking turns in every round (so other processes' load falls on
   both alike); the ratio is default / no_amp on the same model in the same run.
2. The whole command ``songkit train segment --model erfnet --size 224 --batch-size 8 --epochs 1
   --max-steps-per-epoch N`` (data loading, training, evaluation of the embedded valid split, checkpoints),
   default vs ``--no-amp``: wall-clock seconds and their ratio.

``--layouts`` instead compares the memory layouts in plain fp32 (channels-first vs channels-last, the same
weights, CPU time per call so other processes' load counts less): inference at 4 x 3 x size x size under
``inference_mode`` and a training step at ``batch x 3 x size x size``.

``--forced-bf16`` adds the bf16 path forced on a CPU without native bf16 (``SONGKIT_CPU_BF16=1``), to
show what the run-time detection avoids. The first line says whether this CPU has native bf16.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from songkit.core.device import amp_dtype, autocast, cpu_supports_bf16, place_model
from songkit.tasks.segment.model import MODELS, count_parameters


def best_of_interleaved(fns: dict, repeats: int, clock=time.perf_counter) -> dict[str, float]:
    """Best time of each function over ``repeats`` rounds, the variants taking turns in every round
    (one warm-up run each first: allocations, oneDNN kernel selection)."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = clock()
            fn()
            best[name] = min(best[name], clock() - t)
    return best


def train_step_fn(name: str, amp: bool, x: torch.Tensor, y: torch.Tensor):
    """One training step of model ``name`` on the path fit takes with ``--amp``/``--no-amp``."""
    dev = torch.device("cpu")
    cfg_cls, module = MODELS[name]
    torch.manual_seed(0)
    model = place_model(module(cfg_cls()), dev, amp).train()
    dtype = amp_dtype(dev, amp, model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with autocast(dev, dtype):
            loss = F.cross_entropy(model(x).float(), y, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, dtype


def bench_model(name: str, size: int, batch: int, repeats: int, forced_bf16: bool) -> dict:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)  # (B, 3, S, S): throughput does not depend on the values
    y = torch.randint(0, 21, (batch, size, size))  # (B, S, S)
    fns, dtypes = {}, {}
    for variant, amp in (("default", True), ("no_amp", False)):
        fns[variant], dtypes[variant] = train_step_fn(name, amp, x, y)
    if forced_bf16 and not cpu_supports_bf16():
        with _env(SONGKIT_CPU_BF16="1"):
            fns["forced_bf16"], dtypes["forced_bf16"] = train_step_fn(name, True, x, y)
    times = best_of_interleaved(fns, repeats)
    row = {"model": name, "parameters": count_parameters(MODELS[name][1](MODELS[name][0]())),
           **{f"{k}_images_per_s": batch / t for k, t in times.items()},
           **{f"{k}_dtype": str(d).replace("torch.", "") if d else "float32" for k, d in dtypes.items()}}
    row["ratio"] = row["default_images_per_s"] / row["no_amp_images_per_s"]
    return row


@contextlib.contextmanager
def _env(**values):
    """Set environment variables for a block (amp_dtype reads SONGKIT_CPU_BF16 at call time)."""
    from songkit.core.device import cpu_supports_bf16 as detect

    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    with contextlib.suppress(AttributeError):
        detect.cache_clear()
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        with contextlib.suppress(AttributeError):
            detect.cache_clear()


def bench_layouts(name: str, size: int, batch: int, repeats: int) -> dict:
    """fp32 images/s of inference (batch 4) and of a training step, channels-first vs channels-last."""
    cfg_cls, module = MODELS[name]
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)  # (B, 3, S, S)
    y = torch.randint(0, 21, (batch, size, size))  # (B, S, S)
    row: dict = {"model": name}
    for mode in ("infer", "train"):
        fns = {}
        for layout in ("first", "last"):
            torch.manual_seed(0)
            model = module(cfg_cls()).train(mode == "train")
            if layout == "last":
                model = model.to(memory_format=torch.channels_last)
            if mode == "infer":
                def fn(model=model):
                    with torch.inference_mode():
                        model(x[:4])
            else:
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

                def fn(model=model, opt=opt):
                    loss = F.cross_entropy(model(x), y, ignore_index=255)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            fns[layout] = fn
        times = best_of_interleaved(fns, repeats, clock=time.process_time)
        images = 4 if mode == "infer" else batch
        row[f"{mode}_first"], row[f"{mode}_last"] = images / times["first"], images / times["last"]
        row[f"{mode}_ratio"] = times["first"] / times["last"]
    return row


def bench_command(steps: int, extra_env: dict | None = None) -> dict:
    """Wall-clock seconds of the whole `songkit train segment` command, default vs --no-amp."""
    env = {**os.environ, **(extra_env or {})}
    base = [sys.executable, "-m", "songkit", "-q", "train", "segment", "--model", "erfnet", "--size", "224",
            "--batch-size", "8", "--epochs", "1", "--max-steps-per-epoch", str(steps), "--seed", "0",
            "--device", "cpu", "--force"]
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        # the embedded dataset is built once before (not part of either time)
        subprocess.run([sys.executable, "-c", "from songkit.tasks.segment.synthetic import embedded_dataset as e; e()"],
                       env=env, capture_output=True, check=True)
        for variant, flags in (("default", []), ("no_amp", ["--no-amp"])):
            t = time.perf_counter()
            proc = subprocess.run([*base, "--out", str(Path(tmp) / variant), *flags], env=env, capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"bench_segment: {variant} run failed: {proc.stderr.strip().splitlines()[-1:]}")
            seconds[variant] = time.perf_counter() - t
    return {"command": "songkit train segment --model erfnet --size 224 --batch-size 8 --epochs 1 "
                       f"--max-steps-per-epoch {steps}", "default_seconds": seconds["default"],
            "no_amp_seconds": seconds["no_amp"], "speed_ratio": seconds["no_amp"] / seconds["default"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--command-steps", type=int, default=3, help="steps of the whole-command run (0: skip it)")
    ap.add_argument("--forced-bf16", action="store_true", help="also force bf16 on a CPU without it")
    ap.add_argument("--layouts", action="store_true", help="fp32 channels-first vs channels-last instead")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    native = cpu_supports_bf16()
    what = "fp32 layouts" if a.layouts else "training throughput"
    print(f"segment {what}, {a.batch_size} x 3 x {a.size} x {a.size}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; native bf16 on this CPU: {native} "
          f"(default path = {'bf16 autocast + channels-last' if native else 'plain fp32, the same as --no-amp'})",
          flush=True)
    for name in a.models.split(","):
        if name not in MODELS:
            raise SystemExit(f"bench_segment: unknown model {name!r} (known: {', '.join(MODELS)})")
        if a.layouts:
            row = bench_layouts(name, a.size, a.batch_size, a.repeats)
            print(json.dumps(row) if a.json else (
                f"{name:<14} fp32 inference: channels-first {row['infer_first']:.2f}, channels-last "
                f"{row['infer_last']:.2f} images/s ({row['infer_ratio']:.2f}x); training: {row['train_first']:.2f}, "
                f"{row['train_last']:.2f} ({row['train_ratio']:.2f}x)"), flush=True)
            continue
        row = bench_model(name, a.size, a.batch_size, a.repeats, a.forced_bf16)
        if a.json:
            print(json.dumps(row), flush=True)
            continue
        line = (f"{name:<14}{row['parameters']:>11,}  default {row['default_images_per_s']:6.2f} img/s "
                f"({row['default_dtype']})  --no-amp {row['no_amp_images_per_s']:6.2f} img/s  "
                f"ratio {row['ratio']:.2f}x")
        if "forced_bf16_images_per_s" in row:
            line += f"  forced bf16 {row['forced_bf16_images_per_s']:6.2f} img/s"
        print(line, flush=True)
    if a.command_steps and not a.layouts:
        row = bench_command(a.command_steps)
        print(json.dumps(row) if a.json else (
            f"{row['command']}: default {row['default_seconds']:.1f} s, --no-amp {row['no_amp_seconds']:.1f} s, "
            f"speed ratio {row['speed_ratio']:.2f}x"), flush=True)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
