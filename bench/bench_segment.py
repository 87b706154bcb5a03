"""Segmentation throughput at 256x256: every model, training and inference, in one process.

    python bench/bench_segment.py [--models fcn,erfnet] [--size 256] [--batch-size 2] [--repeats 2] [--json]

For each model, images per second of
- inference: the reference is channels-first under ``torch.no_grad``; the variants switch
  to channels-last memory format and/or ``torch.inference_mode``;
- training (forward, cross-entropy, backward, AdamW step): the reference is channels-first,
  the variant channels-last.
Each timing is the best of ``--repeats`` rounds after one warm-up run, the variants taking turns
within each round (so other processes' load falls on all alike); ratios are variant / reference
on the same model in the same run (above 1: faster). Inputs are random images and masks;
throughput does not depend on the values.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch
import torch.nn.functional as F

from songkit.tasks.segment.model import MODELS, build_model, count_parameters


def best_of_interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Best time of each function over ``repeats`` rounds, the variants taking turns in every round,
    so that load from other processes falls on all of them alike (one warm-up run each first)."""
    for fn in fns.values():
        fn()  # warm-up (allocations, oneDNN kernel selection)
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def bench_model(name: str, size: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 21, (batch, size, size))
    row: dict = {"model": name, "parameters": count_parameters(build_model(name))}

    # inference: (memory format, grad mode) -> images/s; two copies of the same weights
    first = build_model(name).eval()
    last = build_model(name).eval().to(memory_format=torch.channels_last)
    last.load_state_dict(first.state_dict())
    x_last = x.contiguous(memory_format=torch.channels_last)
    fns = {}
    for fmt, m, xi in (("first", first, x), ("last", last, x_last)):
        for mode, ctx in (("no_grad", torch.no_grad), ("inference_mode", torch.inference_mode)):
            def run(m=m, xi=xi, ctx=ctx):
                with ctx():
                    m(xi)
            fns[f"infer_{fmt}_{mode}"] = run
    row.update({k: batch / t for k, t in best_of_interleaved(fns, repeats).items()})

    # training: a full optimiser step, channels-first vs channels-last, from the same weights
    fns = {}
    for fmt in ("first", "last"):
        torch.manual_seed(0)
        m = build_model(name).train()
        xt = x
        if fmt == "last":
            m = m.to(memory_format=torch.channels_last)
            xt = x_last
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)

        def step(m=m, xt=xt, opt=opt):
            loss = F.cross_entropy(m(xt), y, ignore_index=255)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        fns[f"train_{fmt}"] = step
    row.update({k: batch / t for k, t in best_of_interleaved(fns, repeats).items()})

    ref = row["infer_first_no_grad"]
    row["ratio_infer_last_no_grad"] = row["infer_last_no_grad"] / ref
    row["ratio_infer_first_inference_mode"] = row["infer_first_inference_mode"] / ref
    row["ratio_infer_last_inference_mode"] = row["infer_last_inference_mode"] / ref
    row["ratio_train_last"] = row["train_last"] / row["train_first"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    for name in a.models.split(","):
        if name not in MODELS:
            raise SystemExit(f"bench_segment: unknown model {name!r} (known: {', '.join(MODELS)})")
        rows.append(bench_model(name, a.size, a.batch_size, a.repeats))
        if a.json:
            print(json.dumps(rows[-1]), flush=True)
    if a.json:
        return
    print(f"segment throughput, {a.size}x{a.size}, batch {a.batch_size}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__} (images/s; ratios against channels-first + no_grad / channels-first training)")
    head = ("model", "params", "infer ref", "CL", "IM", "CL+IM", "train ref", "train CL")
    print("{:<14}{:>11}{:>10}{:>7}{:>7}{:>7}{:>10}{:>9}".format(*head))
    for r in rows:
        print("{:<14}{:>11,}{:>10.2f}{:>7.2f}{:>7.2f}{:>7.2f}{:>10.2f}{:>9.2f}".format(
            r["model"], r["parameters"], r["infer_first_no_grad"], r["ratio_infer_last_no_grad"],
            r["ratio_infer_first_inference_mode"], r["ratio_infer_last_inference_mode"], r["train_first"],
            r["ratio_train_last"]))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
