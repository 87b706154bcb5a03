"""Benchmark SongRNN sampling and training speed against the loop a tutorial writes.

Reference: one nn.LSTM step per character in a Python loop with `.item()` per step
(sampling one tune at a time; training with a per-character forward). songkit: batched
sampling under inference_mode with one host sync per 16 steps; training feeds whole
`seq_len` chunks to nn.LSTM. Same model, same weights, same process; ratios are
songkit / reference in characters per second.

    python bench/bench_generate.py [--chars 400] [--json]
    python bench/bench_generate.py --precision [--steps 40]   # fp32 vs bf16 autocast training (issue 10)
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from songkit.tasks.generate.constants import EOS, SPECIALS
from songkit.tasks.generate.infer import sample_tunes
from songkit.tasks.generate.model import CharLSTM, CharLSTMConfig


def make_model(vocab_size: int) -> CharLSTM:
    torch.manual_seed(0)
    model = CharLSTM(CharLSTMConfig(vocab_size=vocab_size)).eval()  # the default config: 2 x 256
    with torch.no_grad():
        model.head.bias[SPECIALS.index(EOS)] = -1e4  # never stop early: both sides make exactly N characters
    return model


def reference_sample(model: CharLSTM, n_chars: int, temperature: float = 0.8) -> int:
    """The tutorial loop: one tune, one character at a time, `.item()` every step."""
    with torch.no_grad():
        state = None
        idx = 1
        for _ in range(n_chars):
            x = torch.tensor([[idx]])
            emb = model.embed(x)
            out, state = model.lstm(emb, state)
            probs = F.softmax(model.head(out[:, -1]) / temperature, dim=-1)
            idx = torch.multinomial(probs, 1).item()
    return n_chars


def reference_train(model: CharLSTM, opt, ids: torch.Tensor, seq_len: int) -> int:
    """The tutorial training step: a Python loop over characters, loss summed with `.item()` logging."""
    model.train()
    x, y = ids[:, :seq_len], ids[:, 1:seq_len + 1]
    state, loss, logged = None, 0.0, 0.0
    for t in range(seq_len):
        out, state = model.lstm(model.embed(x[:, t:t + 1]), state)
        step_loss = F.cross_entropy(model.head(out[:, -1]), y[:, t])
        loss = loss + step_loss
        logged += step_loss.item()
    opt.zero_grad()
    (loss / seq_len).backward()
    opt.step()
    return x.numel()


def songkit_train(model: CharLSTM, opt, ids: torch.Tensor, seq_len: int) -> int:
    model.train()
    x, y = ids[:, :seq_len], ids[:, 1:seq_len + 1]
    logits, _ = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return x.numel()


def timed_pair(songkit_fn, reference_fn, repeats: int = 3) -> tuple[float, float]:
    """Best items per second of each, runs interleaved so that a change in machine load hits both alike."""
    best = [0.0, 0.0]
    for _ in range(repeats):
        for k, fn in enumerate((songkit_fn, reference_fn)):
            t0 = time.perf_counter()
            n = fn()
            best[k] = max(best[k], n / (time.perf_counter() - t0))
    return best[0], best[1]


def precision(steps: int, batch_size: int = 16, seq_len: int = 128) -> list[dict]:
    """Train the default-size model ``steps`` steps on the embedded corpus in fp32 and under bf16 autocast
    (same seed, same batches); characters/s and validation bits/char of each.

    oneDNN's LSTM refuses bf16 on a CPU without native bf16 ("could not create a primitive descriptor"),
    so the bf16 run disables oneDNN (PyTorch's own LSTM kernels); fp32 keeps the default path.
    """
    import math

    from songkit.core.device import cpu_supports_bf16
    from songkit.tasks.generate.data import (
        TuneStream,
        build_vocab,
        corpus_ids,
        embedded_corpus_files,
        read_tunes,
        split_train_val,
    )
    from songkit.tasks.generate.evaluate import burn_in_ids, stream_nats_per_char

    train_tunes, val_tunes = split_train_val(read_tunes(embedded_corpus_files()))
    vocab = build_vocab(train_tunes, "ascii")
    stream = TuneStream(train_tunes, vocab, batch_size, seq_len, seed=0)
    val_ids = torch.tensor(corpus_ids(val_tunes[:100], vocab), dtype=torch.long)
    rows = []
    for name, dtype in (("fp32", None), ("bf16 autocast", torch.bfloat16)):
        torch.backends.mkldnn.enabled = dtype is None
        torch.manual_seed(0)
        model = CharLSTM(CharLSTMConfig(vocab_size=len(vocab)))
        opt = torch.optim.AdamW(model.parameters(), 3e-3)
        state, t0 = None, time.perf_counter()
        for k in range(steps):
            x, y = stream[k]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                logits, state = model(x, state)
            state = tuple(s.detach() for s in state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            nats = stream_nats_per_char(model, val_ids, "cpu", burn_in=burn_in_ids(vocab))
        rows.append({"what": name, "chars_per_s": round(steps * batch_size * seq_len / seconds, 1),
                     "val_bits_per_char": round(nats / math.log(2), 4), "steps": steps,
                     "cpu_supports_bf16": cpu_supports_bf16()})
    torch.backends.mkldnn.enabled = True
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=400, help="characters per sampled tune")
    ap.add_argument("--precision", action="store_true", help="fp32 vs bf16 autocast training instead")
    ap.add_argument("--steps", type=int, default=40, help="training steps of each precision run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.precision:
        rows = precision(args.steps)
        print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows}))
        return
    vocab = list(SPECIALS) + [chr(c) for c in range(32, 32 + 111)]  # 114 characters, like the corpus
    model = make_model(len(vocab))
    rows = []

    sk1, ref1 = timed_pair(
        lambda: len(sample_tunes(model, vocab, num=1, temperature=0.8, max_chars=args.chars, seed=0)[0]),
        lambda: reference_sample(model, args.chars))
    rows.append(("sample, batch 1 (chars/s)", sk1, ref1))

    # batch 64: the tutorial makes 64 tunes one after another
    # the tutorial makes 64 tunes one after another: its rate is its batch-1 rate (timed again here)
    sk64, ref64 = timed_pair(
        lambda: sum(len(t) for t in sample_tunes(model, vocab, num=64, temperature=0.8, max_chars=args.chars, seed=0)),
        lambda: reference_sample(model, args.chars), repeats=2)
    rows.append(("sample, batch 64 (chars/s)", sk64, ref64))

    ids = torch.randint(3, len(vocab), (64, 129), generator=torch.Generator().manual_seed(0))
    m_ref, m_sk = make_model(len(vocab)), make_model(len(vocab))
    o_ref = torch.optim.AdamW(m_ref.parameters(), 1e-3)
    o_sk = torch.optim.AdamW(m_sk.parameters(), 1e-3)
    sk_tr, ref_tr = timed_pair(lambda: songkit_train(m_sk, o_sk, ids, 128),
                               lambda: reference_train(m_ref, o_ref, ids, 128), repeats=2)
    rows.append(("train, batch 64 x 128 (chars/s)", sk_tr, ref_tr))

    result = [{"what": w, "songkit": round(s, 1), "reference": round(r, 1), "ratio": round(s / r, 2)}
              for w, s, r in rows]
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": result}))
        return
    print(f"SongRNN (2 x 256 LSTM, 114 characters), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'':34s} {'songkit':>12s} {'reference':>12s} {'ratio':>8s}")
    for r in result:
        print(f"{r['what']:34s} {r['songkit']:12.1f} {r['reference']:12.1f} {r['ratio']:8.2f}x")


if __name__ == "__main__":
    main()
