"""Chord models under bf16 autocast against fp32, one process: training frames/s and agreement of outputs.

    OMP_NUM_THREADS=1 python bench/bench_chords_amp.py [--steps 4] [--data ../shared/datasets/billboard]

For ``cnn_blstm`` and ``blstm``: the time of ``--steps`` training steps (32 windows x 128 frames, forward,
backward, AdamW) in fp32 and under ``torch.autocast(bfloat16)`` (forced, whatever the CPU has), and, with
``--data``, the majmin WCSR of the shipped default decoded from fp32 and from bf16 outputs on 10 songs.
Prints ``cpu_supports_bf16()``: without AMX/AVX512-BF16 the CPU emulates bf16 and it cannot pay.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from songkit.core.device import cpu_supports_bf16
from songkit.tasks.chords.model import MODELS, make_config


def train_seconds(name: str, steps: int, bf16: bool) -> float | str:
    """Mean seconds of a training step, or the first line of the error when the CPU cannot run it."""
    try:
        return _train_seconds(name, steps, bf16)
    except RuntimeError as e:  # e.g. oneDNN has no bf16 LSTM primitive on a CPU without native bf16
        return str(e).splitlines()[0][:100]


def _train_seconds(name: str, steps: int, bf16: bool) -> float:
    torch.manual_seed(0)
    model = MODELS[name][1](make_config(name)).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x, y = torch.rand(32, 128, 24), torch.randint(0, 25, (32, 128))
    times = []
    for _ in range(steps + 1):  # the first step warms up
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 25), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / steps


def agreement(data: Path) -> dict:
    from songkit.tasks.chords.data import load
    from songkit.tasks.chords.evaluate import score_songs
    from songkit.tasks.chords.hmm import viterbi_many
    from songkit.tasks.chords.infer import load as load_model
    from songkit.tasks.chords.infer import song_log_probs

    model, _ = load_model(None)
    songs = load(data, model.cfg, ("test",), progress=False)[:10]
    out = {}
    for label, bf16 in (("fp32", False), ("bf16", True)):
        def classes(ss, bf16=bf16):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return viterbi_many(song_log_probs(model, [s.chroma for s in ss], amp=False), 0.9)
        try:
            out[f"majmin_{label}"] = score_songs(songs, classes)["majmin_wcsr"]
        except RuntimeError as e:
            out[f"majmin_{label}"] = str(e).splitlines()[0][:100]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--data", type=Path)
    a = ap.parse_args()
    res = {"cpu_supports_bf16": cpu_supports_bf16(), "threads": torch.get_num_threads()}
    for name in ("cnn_blstm", "blstm"):
        fp32, bf16 = train_seconds(name, a.steps, False), train_seconds(name, a.steps, True)
        rate = {k: 32 * 128 / v if isinstance(v, float) else v for k, v in (("fp32", fp32), ("bf16", bf16))}
        res[name] = {"fp32_frames_per_s": rate["fp32"], "bf16_frames_per_s": rate["bf16"],
                     "bf16_speedup": fp32 / bf16 if isinstance(bf16, float) else None}
    if a.data:
        res["default_checkpoint"] = agreement(a.data)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
