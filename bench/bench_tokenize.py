"""Tokenize on POP909: exact round trip, token counts (REMI/CP/NB), speed against MidiTok.

    python bench/bench_tokenize.py [--data ../shared/datasets/pop909] [--speed-files 100] [--json]

1. Round trip: for every file and encoding, quantise(read(decode(encode(x)))) == quantise(x),
   through a MIDI file written and read again.
2. Token counts per song: REMI tokens, CP groups, NB groups, and NB/CP.
3. Speed (load + encode, files/s) of songkit CP/NB/REMI against MidiTok's CPWord and REMI
   on the same files in the same process, as ratios. MidiTok is needed only here
   (`pip install miditok torch==2.13.0`); without it the speed section says so.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from songkit.tasks.tokenize import data
from songkit.tasks.tokenize import encoding as E
from songkit.tasks.tokenize.spec import ENCODINGS, TokenizerConfig, Vocabulary

ROOT = Path(__file__).resolve().parents[1]


def roundtrip_and_counts(files, vocab):
    bad, counts = [], {e: [] for e in ENCODINGS}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rt.mid"
        for f in files:
            q = E.quantise(data.read_music(f), vocab)
            for enc in ENCODINGS:
                ids = E.encode(q, vocab, enc)
                counts[enc].append(len(ids))
                q2 = E.decode(ids, vocab, enc, q.tracks, q.tpq)
                data.write_midi(E.to_music(q2, vocab), out)
                diff = E.differences(q, E.quantise(data.read_music(out), vocab))
                if diff:
                    bad.append((str(f), enc, diff))
    return bad, {e: np.array(c) for e, c in counts.items()}


def speed(files, vocab):
    """files/s of each system, load + encode, interleaved file by file so that load on a shared
    machine falls on every system alike; MidiTok is left out when it is not installed."""
    systems = {f"songkit {e.upper()}": (lambda f, e=e: E.encode(E.quantise(data.read_music(f), vocab), vocab, e))
               for e in ("cp", "nb", "remi")}
    lengths = {}
    try:
        import miditok
        import symusic

        cfg = dict(use_tempos=True, use_time_signatures=True, use_chords=True)
        for name in ("CPWord", "REMI"):
            tok = getattr(miditok, name)(miditok.TokenizerConfig(**cfg))
            systems[f"miditok {name}"] = (lambda f, tok=tok: tok.encode(symusic.Score(str(f))))
    except ImportError:
        pass
    for fn in systems.values():  # warm up imports and caches
        fn(files[0])
    spent = dict.fromkeys(systems, 0.0)
    gc.disable()  # as timeit does: a collection caused by one system must not be charged to the next
    for f in files:
        for name, fn in systems.items():
            gc.collect()
            t = time.perf_counter()
            out = fn(f)
            spent[name] += time.perf_counter() - t
            if name.startswith("miditok"):
                seqs = out if isinstance(out, list) else [out]
                lengths[name] = lengths.get(name, 0) + sum(len(x) for x in seqs) / len(files)
    gc.enable()
    return {k: len(files) / v for k, v in spent.items()}, lengths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "datasets" / "pop909"))
    ap.add_argument("--speed-files", type=int, default=100, help="files for the speed comparison")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = Path(args.data)
    if not root.is_dir():
        print(f"bench_tokenize: {root} not found (POP909); nothing to measure", file=sys.stderr)
        return
    files = sorted(p for p in root.rglob("*.mid"))
    vocab = Vocabulary(TokenizerConfig())

    bad, counts = roundtrip_and_counts(files, vocab)
    ratio = counts["nb"] / counts["cp"]
    speed_files = files[: args.speed_files]
    rates, mt_len = speed(speed_files, vocab)
    mt = {k.split()[1]: v for k, v in rates.items() if k.startswith("miditok")}
    report = {
        "files": len(files),
        "roundtrip_exact": {e: len(files) - sum(1 for b in bad if b[1] == e) for e in ENCODINGS},
        "roundtrip_failures": bad[:10],
        "tokens_per_song": {e: {"mean": float(c.mean()), "median": float(np.median(c))} for e, c in counts.items()},
        "nb_over_cp": {"mean": float(ratio.mean()), "of_totals": float(counts["nb"].sum() / counts["cp"].sum())},
        "speed_files": len(speed_files),
        "files_per_s": rates,
    }
    if mt:
        report["miditok_tokens_per_song"] = mt_len
        report["speedup"] = {
            "songkit CP / miditok CPWord": rates["songkit CP"] / mt["CPWord"],
            "songkit NB / miditok CPWord": rates["songkit NB"] / mt["CPWord"],
            "songkit REMI / miditok REMI": rates["songkit REMI"] / mt["REMI"],
        }
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"POP909: {len(files)} files")
    for e in ENCODINGS:
        print(f"round trip exact ({e}): {report['roundtrip_exact'][e]}/{len(files)}")
    for e, c in counts.items():
        print(f"{e:5s} tokens per song: mean {c.mean():.0f}, median {np.median(c):.0f}")
    print(f"NB/CP per song: mean {ratio.mean():.3f} (totals {report['nb_over_cp']['of_totals']:.3f})")
    print(f"speed on {len(speed_files)} files (load + encode):")
    for k, v in report["files_per_s"].items():
        print(f"  {k:22s} {v:8.1f} files/s")
    for k, v in report.get("speedup", {}).items():
        print(f"  {k:30s} x{v:.1f}")
    for k, v in (mt_len or {}).items():
        print(f"  {k} tokens per song ({'groups' if 'CPWord' in k else 'flat'}, these files): {v:.0f}")
    if not mt:
        print("  (MidiTok not installed: pip install miditok torch==2.13.0 for the comparison)")


if __name__ == "__main__":
    main()
