"""Tokenize on POP909: a whole dataset from the command line against MidiTok, training's first step,
precision of the GRU, round trips and token counts.

    python bench/bench_tokenize.py [--data ../shared/datasets/pop909] [--sections dataset,train,precision,roundtrip]
                                   [--repeats 1] [--json]

Sections (each in one run, the ratios measured side by side):
  dataset    all POP909 songs to a token dataset, process start included: `songkit tokenize FILES --dataset DIR`
             at --jobs 1 and the default, CP and REMI, against MidiTok CPWord and REMI encoding the same files
             and saving their ids as JSON, one file per song (what its tokenize_dataset does). files/s, bytes
             written per song, peak RSS of the largest process.
  train      seconds from process start to the end of the first training step of `songkit train tokenize`,
             from a token dataset folder against from the MIDI folder.
  precision  training steps/s of the default GRU (NB, 2 x 256, batch 32 x 128 groups): fp32 against bf16
             autocast (forced, whatever the CPU), with the CPU's native bf16 support.
  roundtrip  quantise(read(decode(encode(x)))) == quantise(x) for every file and encoding, token counts.

MidiTok is needed only for the comparison (`make bench-deps`); without it those rows say so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MIDITOK_SCRIPT = r"""
import json, sys
from pathlib import Path
import miditok
name, out, files = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
cfg = miditok.TokenizerConfig(use_tempos=True, use_time_signatures=True, use_chords=True)
tok = getattr(miditok, name)(cfg)
out.mkdir(parents=True, exist_ok=True)
for f in files:
    seq = tok.encode(f)
    seqs = seq if isinstance(seq, list) else [seq]
    ids = [s.ids for s in seqs]
    (out / (Path(f).stem + ".json")).write_text(json.dumps({"ids": ids, "path": f}))
"""

# run a command; print the peak RSS (kB) of its largest process (children included) on stderr's last line
RSS_WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds from process start, peak RSS in MB) of one command."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *cmd], check=False, capture_output=True, text=True,
                          env=env)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}...: {proc.stderr.strip()[-300:]}")
    return seconds, int(proc.stderr.strip().splitlines()[-1]) / 1024


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_dataset(files: list[Path], repeats: int, env: dict) -> dict:
    songkit = [sys.executable, "-m", "songkit", "-q", "tokenize", *map(str, files)]
    try:
        import miditok  # noqa: F401

        have_miditok = True
    except ImportError:
        have_miditok = False
    systems = {
        "songkit CP --jobs 1": lambda out: [*songkit, "-e", "cp", "--dataset", str(out), "--jobs", "1"],
        "songkit CP (default jobs)": lambda out: [*songkit, "-e", "cp", "--dataset", str(out)],
        "songkit REMI --jobs 1": lambda out: [*songkit, "-e", "remi", "--dataset", str(out), "--jobs", "1"],
        "songkit REMI (default jobs)": lambda out: [*songkit, "-e", "remi", "--dataset", str(out)],
    }
    if have_miditok:
        for name in ("CPWord", "REMI"):
            systems[f"miditok {name} (JSON ids)"] = (
                lambda out, name=name: [sys.executable, "-c", MIDITOK_SCRIPT, name, str(out), *map(str, files)])
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):  # interleaved: machine load falls on every system alike
            for name, cmd in systems.items():
                out = Path(tmp) / f"{len(rows)}-{rep}-{name.split()[1]}"
                seconds, rss = timed(cmd(out), env)
                best = rows.get(name)
                if best is None or seconds < best["seconds"]:
                    rows[name] = {"seconds": seconds, "files_per_s": len(files) / seconds, "peak_rss_mb": rss,
                                  "bytes_per_song": folder_bytes(out) / len(files)}
    ratios = {}
    if have_miditok:
        cpword, remi = rows["miditok CPWord (JSON ids)"]["seconds"], rows["miditok REMI (JSON ids)"]["seconds"]
        for k in ("songkit CP --jobs 1", "songkit CP (default jobs)"):
            ratios[f"{k} vs miditok CPWord"] = cpword / rows[k]["seconds"]
        for k in ("songkit REMI --jobs 1", "songkit REMI (default jobs)"):
            ratios[f"{k} vs miditok REMI"] = remi / rows[k]["seconds"]
    return {"files": len(files), "systems": rows, "speedup": ratios, "miditok": have_miditok,
            "default_jobs": len(os.sched_getaffinity(0))}


def first_step_seconds(data: Path, out: Path, env: dict) -> float:
    """Seconds from process start to the end of the first training step (the step's log line)."""
    cmd = [sys.executable, "-m", "songkit", "train", "tokenize", "--data", str(data), "--encoding", "cp",
           "--epochs", "1", "--max-steps-per-epoch", "1", "--batch-size", "8", "--seq-len", "64", "--device", "cpu",
           "--workers", "0", "--force", "--out", str(out)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    seconds = None
    for line in proc.stderr:
        if seconds is None and "step 1/" in line:
            seconds = time.perf_counter() - t
            proc.kill()  # the rest (validation) is not the first step
            break
    proc.wait()
    if seconds is None:
        raise RuntimeError("no step line from train tokenize")
    return seconds


def bench_train(files: list[Path], repeats: int, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        midi = Path(tmp) / "midi"
        for f in files:  # POP909's layout, without the versions/ folders
            (midi / f.parent.name).mkdir(parents=True, exist_ok=True)
            (midi / f.parent.name / f.name).symlink_to(f.resolve())
        subprocess.run([sys.executable, "-m", "songkit", "-q", "tokenize", str(midi), "-e", "cp", "--dataset",
                        str(Path(tmp) / "ds")], check=True, env=env)
        from_midi, from_ds = [], []
        for _ in range(repeats):
            from_ds.append(first_step_seconds(Path(tmp) / "ds", Path(tmp) / "run", env))
            from_midi.append(first_step_seconds(midi, Path(tmp) / "run", env))
        # the part that differs, in-process: songs ready for the first batch
        from songkit.tasks.tokenize.constants import TokenizerConfig, Vocabulary
        from songkit.tasks.tokenize.data import load_songs

        vocab = Vocabulary(TokenizerConfig())
        load = {}
        for name, data in (("dataset", Path(tmp) / "ds"), ("midi", midi)):
            t = time.perf_counter()
            load_songs([data], vocab, "cp")
            load[name] = time.perf_counter() - t
    return {"first_step_s_from_dataset": min(from_ds), "first_step_s_from_midi": min(from_midi),
            "ratio": min(from_midi) / min(from_ds), "load_songs_s_dataset": load["dataset"],
            "load_songs_s_midi": load["midi"], "load_ratio": load["midi"] / load["dataset"]}


def bench_precision(steps: int = 6) -> dict:
    import torch

    from songkit.core.device import cpu_supports_bf16
    from songkit.tasks.tokenize.constants import TokenizerConfig, Vocabulary
    from songkit.tasks.tokenize.evaluate import window_losses
    from songkit.tasks.tokenize.model import TokenRNN, TokenRNNConfig

    sizes = Vocabulary(TokenizerConfig()).sizes("nb")
    gen = torch.Generator().manual_seed(0)
    batch = torch.stack([torch.randint(1, n, (32, 129), generator=gen) for n in sizes], dim=-1)  # (B, T + 1, F)
    out = {"cpu_supports_bf16": cpu_supports_bf16(), "threads": torch.get_num_threads()}
    for name, dtype in (("fp32", None), ("bf16 autocast", torch.bfloat16)):
        torch.manual_seed(0)
        model = TokenRNN(TokenRNNConfig(encoding="nb", vocab_sizes=sizes))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        times = []
        for _ in range(steps + 1):  # the first step warms up
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                loss, _, _ = window_losses(model, batch, "cpu")
            loss.backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - t)
        out[f"{name} steps_per_s"] = 1 / (sum(times[1:]) / steps)
    out["bf16 / fp32"] = out["bf16 autocast steps_per_s"] / out["fp32 steps_per_s"]
    return out


def bench_roundtrip(files: list[Path]) -> dict:
    import numpy as np

    from songkit.tasks.tokenize import codec, readers
    from songkit.tasks.tokenize.constants import ENCODINGS, TokenizerConfig, Vocabulary
    from songkit.tasks.tokenize.quantise import differences, quantise, to_music

    vocab = Vocabulary(TokenizerConfig())
    bad, counts = [], {e: [] for e in ENCODINGS}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rt.mid"
        for f in files:
            q = quantise(readers.read_music(f), vocab)
            for enc in ENCODINGS:
                ids = codec.encode(q, vocab, enc)
                counts[enc].append(len(ids))
                readers.write_midi(to_music(codec.decode(ids, vocab, enc, q.tracks, q.tpq), vocab), out)
                if differences(q, quantise(readers.read_music(out), vocab)):
                    bad.append((str(f), enc))
    c = {e: np.array(v) for e, v in counts.items()}
    return {"exact": {e: len(files) - sum(1 for b in bad if b[1] == e) for e in ENCODINGS}, "failures": bad[:10],
            "tokens_per_song_mean": {e: float(v.mean()) for e, v in c.items()},
            "nb_over_cp_of_totals": float(c["nb"].sum() / c["cp"].sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "datasets" / "pop909"))
    ap.add_argument("--sections", default="dataset,train,precision,roundtrip")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each command (the fastest counts)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = Path(args.data)
    files = sorted(p for p in root.rglob("*.mid") if "versions" not in p.parts)
    if not files:
        print(f"bench_tokenize: no MIDI files under {root} (POP909); nothing to measure", file=sys.stderr)
        return
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    report = {}
    sections = args.sections.split(",")
    if "dataset" in sections:
        report["dataset"] = bench_dataset(files, args.repeats, env)
    if "train" in sections:
        report["train"] = bench_train(files, args.repeats, env)
    if "precision" in sections:
        report["precision"] = bench_precision()
    if "roundtrip" in sections:
        report["roundtrip"] = bench_roundtrip(files)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    if "dataset" in report:
        d = report["dataset"]
        print(f"POP909 to a dataset: {d['files']} files, process start included (default jobs = {d['default_jobs']})")
        for k, v in d["systems"].items():
            print(f"  {k:30s} {v['seconds']:6.2f} s  {v['files_per_s']:7.1f} files/s  "
                  f"{v['bytes_per_song'] / 1024:7.1f} kB/song  peak RSS {v['peak_rss_mb']:.0f} MB")
        for k, v in d["speedup"].items():
            print(f"  {k:50s} x{v:.1f}")
        if not d["miditok"]:
            print("  (MidiTok not installed: make bench-deps)")
    if "train" in report:
        t = report["train"]
        print(f"train tokenize, first step: {t['first_step_s_from_dataset']:.2f} s from a dataset folder, "
              f"{t['first_step_s_from_midi']:.2f} s from MIDI (x{t['ratio']:.1f}); songs loaded in-process in "
              f"{t['load_songs_s_dataset']:.3f} s vs {t['load_songs_s_midi']:.2f} s (x{t['load_ratio']:.0f})")
    if "precision" in report:
        p = report["precision"]
        print(f"GRU training (native bf16: {p['cpu_supports_bf16']}, {p['threads']} threads): "
              f"fp32 {p['fp32 steps_per_s']:.2f} steps/s, bf16 autocast {p['bf16 autocast steps_per_s']:.2f} "
              f"steps/s (x{p['bf16 / fp32']:.2f})")
    if "roundtrip" in report:
        r = report["roundtrip"]
        print(f"round trip exact: {r['exact']} of {len(files)}; tokens per song {r['tokens_per_song_mean']}; "
              f"NB/CP {r['nb_over_cp_of_totals']:.3f}")


if __name__ == "__main__":
    main()
