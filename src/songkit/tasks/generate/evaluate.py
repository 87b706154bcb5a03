"""Measuring SongRNN: bits per character on held-out ABC (per file and overall), out-of-vocabulary share,
and the shares of sampled tunes music21 parses into notes and abc2midi compiles with no error."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from songkit.tasks.generate.constants import (
    ABC_SUFFIXES,
    BOS,
    BURN_IN,
    EOS,
    EVAL_SEQ_LEN,
    SAMPLE_BATCH,
)


@torch.no_grad()
def stream_nats_per_char(model, ids: torch.Tensor, device, seq_len: int = EVAL_SEQ_LEN, n_streams: int = 16,
                         burn_in: Sequence[int] = ()) -> float:
    """Mean cross-entropy (nats per character) of ``model`` over a stream of ids, state carried.

    The stream is cut into up to ``n_streams`` rows scored side by side; each row starts from the state
    after ``burn_in`` ids (not scored), as sampling does, instead of a zero state training never sees.
    """
    total, count = stream_nats(model, ids, device, seq_len, n_streams, burn_in)
    return total / max(1, count)


@torch.no_grad()
def stream_nats(model, ids: torch.Tensor, device, seq_len: int = EVAL_SEQ_LEN, n_streams: int = 16,
                burn_in: Sequence[int] = ()) -> tuple[float, int]:
    """Total nats and the number of predicted characters (``stream_nats_per_char`` without the division)."""
    was_training = model.training
    model.eval()
    n_streams = max(1, min(n_streams, (len(ids) - 1) // (seq_len * 2) or 1))
    per_row = (len(ids) - 1) // n_streams
    state = None
    if len(burn_in):
        warm = torch.tensor(list(burn_in), dtype=torch.long, device=device)
        _, state = model(warm.unsqueeze(0).expand(n_streams, -1).contiguous(), None)
    total, count = 0.0, 0
    for start in range(0, per_row, seq_len):
        end = min(per_row, start + seq_len)
        x = torch.stack([ids[r * per_row + start: r * per_row + end] for r in range(n_streams)]).to(device)
        y = torch.stack([ids[r * per_row + start + 1: r * per_row + end + 1] for r in range(n_streams)]).to(device)
        logits, state = model(x, state)  # (B, L, V)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    model.train(was_training)
    return total, count


def burn_in_ids(vocab: Sequence[str]) -> list[int]:
    """BOS BURN_IN EOS as ids: the context a scored or sampled tune starts after."""
    from songkit.tasks.generate.data import encode

    return encode(BOS, vocab) + encode(BURN_IN, vocab) + encode(EOS, vocab)


def parses_with_notes(tune_text: str) -> bool:
    """True when music21 parses the tune into a score with at least one note."""
    import music21

    try:
        score = music21.converter.parse(f"X:1\n{tune_text.strip()}\n", format="abc")
        return len(score.flatten().notes) > 0
    except Exception:  # noqa: BLE001 - any parse failure counts as a failed tune
        return False


def abc2midi_path() -> Path | None:
    """The abc2midi program that ships inside the symusic wheel (None when absent)."""
    import importlib.util

    spec = importlib.util.find_spec("symusic")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / "abc2midi"
    return path if path.is_file() else None


def compiles_with_abc2midi(tune_text: str, program: Path) -> bool:
    """True when abc2midi turns the tune into MIDI with no 'Error' line (warnings allowed)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        abc = Path(tmp) / "tune.abc"
        abc.write_text(f"X:1\n{tune_text.strip()}\n")
        try:
            proc = subprocess.run([str(program), str(abc), "-o", str(Path(tmp) / "tune.mid")], capture_output=True,
                                  text=True, errors="replace", timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
    lines = (proc.stdout + proc.stderr).splitlines()
    return proc.returncode == 0 and not any(line.startswith("Error") for line in lines)


def score_files(model, vocab: Sequence[str], named_tunes: Sequence[tuple[str, list[str]]], device) -> dict:
    """Bits per character of each (name, tunes) and overall, and the out-of-vocabulary share."""
    from songkit.tasks.generate.data import corpus_ids, out_of_vocab

    warm = burn_in_ids(vocab)
    files, nats_sum, chars_sum, oov_sum = [], 0.0, 0, 0
    for name, tunes in named_tunes:
        ids = torch.tensor(corpus_ids(tunes, vocab), dtype=torch.long)
        nats, count = stream_nats(model, ids, device, burn_in=warm)
        oov = out_of_vocab(tunes, vocab)
        n_oov = sum(oov.values())
        files.append({"file": name, "tunes": len(tunes), "characters": count,
                      "bits_per_char": nats / count / math.log(2), "oov_share": n_oov / count,
                      "oov_chars": "".join(sorted(oov))})
        nats_sum, chars_sum, oov_sum = nats_sum + nats, chars_sum + count, oov_sum + n_oov
    return {"files": files, "tunes": sum(f["tunes"] for f in files), "characters": chars_sum,
            "bits_per_char": nats_sum / chars_sum / math.log(2), "oov_share": oov_sum / chars_sum}


def evaluate(checkpoint: Path | None, data: list[Path] | None = None, *, samples: int = 100,
             temperature: float = 0.8, max_chars: int = 2000, seed: int = 0, device="cpu",
             on_sample=None) -> dict:
    """Metrics of a generate checkpoint: bits/char on ``data`` (per `.abc` file and overall; default: the
    embedded validation split), the share of characters outside its vocabulary, and the share of
    ``samples`` tunes sampled at ``temperature`` that music21 parses into a score with notes."""
    from songkit.core.io import expand_inputs
    from songkit.tasks.generate.data import (
        embedded_corpus_files,
        read_file_tunes,
        read_tunes,
        split_train_val,
    )
    from songkit.tasks.generate.infer import load, sample_tunes

    if data:
        named = [(str(p), read_file_tunes(p)) for p in expand_inputs(data, ABC_SUFFIXES)]  # checked before loading
    model, ck = load(checkpoint, device)
    if not data:
        named = [("music21 corpus, validation split", split_train_val(read_tunes(embedded_corpus_files()))[1])]
    result = {"checkpoint": str(ck.path), **score_files(model, ck.vocab, named, device)}
    if samples:
        tunes = []
        for start in range(0, samples, SAMPLE_BATCH):
            tunes += sample_tunes(model, ck.vocab, num=min(SAMPLE_BATCH, samples - start), temperature=temperature,
                                  max_chars=max_chars, seed=seed + start, device=device)
        program = abc2midi_path()
        parsed = compiled = 0
        for k, tune in enumerate(tunes):
            parsed += parses_with_notes(tune)
            compiled += program is not None and compiles_with_abc2midi(tune, program)
            if on_sample is not None:
                on_sample(k + 1, len(tunes))
        result.update({"samples": samples, "temperature": temperature, "parse_rate": parsed / samples,
                       "abc2midi_rate": compiled / samples if program is not None else None})
    return result
