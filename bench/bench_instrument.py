"""Throughput of the instrument models: training and inference examples per second on this machine.

Every model runs on the same random batch (B x samples of 16 kHz audio) in this process; the
reference is the seed's LSTM, and each model is reported as examples/s and as a ratio to it,
so numbers from a busy or a different machine still compare.

    python bench/bench_instrument.py [--threads 1] [--batch 32] [--seconds 3] [--device cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def throughput(model, batch: int, seconds: float, train: bool, device) -> float:
    """Examples per second: full steps (forward, loss, backward, Adam) or no-grad forwards."""
    import torch

    from songkit.tasks.instrument.model import input_samples

    x = 0.1 * torch.randn(batch, input_samples(model), device=device)
    y = torch.randint(0, 11, (batch,), device=device)
    opt = torch.optim.Adam(model.parameters(), lr=8e-4)
    model.train(train)

    def step():
        if train:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (filterbanks, allocator)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2:
        step()
        n += 1
    return n * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady on a shared machine)")
    ap.add_argument("--batch", type=int, default=32, help="batch size (the seed's 32)")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="lstm,blstm,cnn1d,cnn2d,samplecnn,linear")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from songkit.core.device import resolve_device
    from songkit.tasks.instrument.model import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = resolve_device(args.device)
    rows = []
    for name in args.models.split(","):
        model = build_model(name).to(dev)
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": name, "params": params,
                     "train_per_s": throughput(model, args.batch, args.seconds, True, dev),
                     "infer_per_s": throughput(model, args.batch, args.seconds, False, dev)})
    ref = next((r for r in rows if r["model"] == "lstm"), rows[0])
    for r in rows:
        r["train_vs_lstm"] = r["train_per_s"] / ref["train_per_s"]
        r["infer_vs_lstm"] = r["infer_per_s"] / ref["infer_per_s"]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"# instrument models, batch {args.batch}, {args.threads} thread(s), {dev}; reference: lstm")
    print(f"{'model':<10} {'params':>9} {'train ex/s':>11} {'x lstm':>7} {'infer ex/s':>11} {'x lstm':>7}")
    for r in rows:
        print(f"{r['model']:<10} {r['params']:>9,} {r['train_per_s']:>11.1f} {r['train_vs_lstm']:>7.2f} "
              f"{r['infer_per_s']:>11.1f} {r['infer_vs_lstm']:>7.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
