"""Chroma from one minute of audio: songkit (torch) against librosa's ``chroma_stft``, in one process.

    python bench/bench_chords.py [--audio FILE] [--repeats 5] [--json]

The audio is a Bach chorale rendered by songkit's embedded-data synthesiser (looped to 60 s),
or ``--audio FILE``. Both chromas use the same STFT (22050 Hz, n_fft 4096, hop 1024, Hann,
centred) and per-frame max normalisation; librosa with ``tuning=0`` (no tuning estimation),
songkit's bins rolled to start at C like librosa's. Reported: the median time of each
(best of ``--repeats``), the speed ratio, and how close the outputs are (mean per-frame
cosine similarity, share of frames whose strongest pitch class agrees). librosa is needed
only here (``pip install librosa``); it is not a songkit dependency.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from songkit.core import audio
from songkit.tasks.chords import constants as spec
from songkit.tasks.chords.features import bothchroma

SR, N_FFT, HOP = spec.SAMPLE_RATE, 4096, spec.HOP_LENGTH


def one_minute(path=None) -> np.ndarray:
    if path:
        y, _ = audio.read_audio(path, SR)
    else:
        from songkit.tasks.chords import bach

        y = None
        for p in bach.chorale_paths(3):
            r = bach.render(p)
            if r is not None:
                y = r[0]
                break
    reps = int(np.ceil(60 * SR / len(y)))
    return np.tile(y, reps)[: 60 * SR].astype(np.float32)


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audio", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import librosa

    y = one_minute(a.audio)
    yt = torch.from_numpy(y)
    audio.chroma(yt, SR, N_FFT, HOP, start="C")  # warm the filterbank cache, as librosa caches its own
    librosa.feature.chroma_stft(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, tuning=0.0)
    t_lib, c_lib = best_time(lambda: librosa.feature.chroma_stft(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, tuning=0.0),
                             a.repeats)
    t_sk, c_sk = best_time(lambda: audio.chroma(yt, SR, N_FFT, HOP, start="C")[0].numpy(), a.repeats)
    t_both, _ = best_time(lambda: bothchroma(yt, SR), a.repeats)
    T = min(c_lib.shape[1], c_sk.shape[1])
    lib, sk = c_lib[:, :T], c_sk[:, :T]
    active = lib.max(0) > 0
    cos = (lib * sk).sum(0) / np.maximum(np.linalg.norm(lib, axis=0) * np.linalg.norm(sk, axis=0), 1e-12)
    res = {
        "audio_seconds": len(y) / SR, "frames": int(T), "torch_threads": torch.get_num_threads(),
        "librosa_s": t_lib, "songkit_s": t_sk, "speedup_vs_librosa": t_lib / t_sk,
        "songkit_bothchroma_s": t_both,
        "mean_cosine": float(cos[active].mean()),
        "argmax_agreement": float((lib.argmax(0) == sk.argmax(0))[active].mean()),
        "librosa_version": librosa.__version__,
    }
    if a.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:24s} {v:.4f}" if isinstance(v, float) else f"{k:24s} {v}")


if __name__ == "__main__":
    main()
