"""One entry to the three encodings (cp.py, nb.py, remi.py): encode/decode, token strings, and the
validation of token records (JSON lines), which are user input.

A record is checked as a whole before anything is built from it: its encoding, its tokenizer config
(every field an integer within ``CONFIG_BOUNDS``), the vocabulary hash, its tracks, its resolution
and every id against the vocabulary. Each problem is one :class:`RecordError` line naming the field.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from songkit.core.errors import UserError
from songkit.tasks.tokenize import cp, nb, remi
from songkit.tasks.tokenize.constants import ENCODINGS, GROUP_FAMILIES, Vocabulary
from songkit.tasks.tokenize.quantise import DecodeError, QScore, collapse

ENCODERS = {"cp": cp, "nb": nb, "remi": remi}
MAX_TPQ = 32767  # MIDI's time division is 15 bits
MAX_TRACK_NAME = 256


def encode(q: QScore, vocab: Vocabulary, encoding: str) -> np.ndarray:
    """Token ids: (G, 9) int64 groups for cp/nb, (T,) int64 for remi."""
    if encoding not in ENCODERS:
        raise ValueError(encoding)
    return ENCODERS[encoding].encode(q, vocab)


def check_ids(tokens: np.ndarray, vocab: Vocabulary, encoding: str) -> None:
    """Raise DecodeError unless ``tokens`` has the encoding's shape and every id is in its family."""
    if encoding == "remi":
        if tokens.ndim != 1:
            raise DecodeError("remi tokens must be a flat list")
        if len(tokens) and (tokens.min() < 0 or tokens.max() >= len(vocab.remi)):
            raise DecodeError(f"id out of range 0..{len(vocab.remi) - 1}")
        return
    fams = GROUP_FAMILIES[encoding]
    if tokens.ndim != 2 or tokens.shape[1] != len(fams):
        raise DecodeError(f"{encoding} tokens must be groups of {len(fams)}")
    for f, n in enumerate(vocab.sizes(encoding)):
        if len(tokens) and (tokens[:, f].min() < 0 or tokens[:, f].max() >= n):
            raise DecodeError(f"family {fams[f]}: id out of range 0..{n - 1}")


def decode(tokens: np.ndarray, vocab: Vocabulary, encoding: str, tracks: list[dict] | None = None,
           tpq: int = 480) -> QScore:
    """Token ids back to a QScore; an impossible token sequence raises DecodeError."""
    if encoding not in ENCODERS:
        raise ValueError(encoding)
    tokens = np.asarray(tokens, dtype=np.int64)
    check_ids(tokens, vocab, encoding)
    q = ENCODERS[encoding].decode(tokens, vocab)
    if not len(q.notes) and not q.tempos:
        raise DecodeError("no notes")
    n_tracks = int(q.notes[:, 4].max()) + 1 if len(q.notes) else 0
    tracks = list(tracks or [])
    tracks += [{"name": f"track {k}", "program": 0, "is_drum": False} for k in range(len(tracks), n_tracks)]
    q.tracks, q.tpq = tracks, tpq
    q.notes = q.notes[np.lexsort((q.notes[:, 3], q.notes[:, 1], q.notes[:, 2], q.notes[:, 4], q.notes[:, 0]))]
    q.tempos, q.chords = collapse(sorted(q.tempos)), collapse(sorted(q.chords))
    return q


def ids_to_strings(ids: np.ndarray, vocab: Vocabulary, encoding: str) -> list:
    """Ids to token strings: a list of groups (lists) for cp/nb, a flat list for remi."""
    if encoding == "remi":
        return [vocab.remi[i] for i in ids.tolist()]
    fams = [vocab.families[f] for f in GROUP_FAMILIES[encoding]]
    return [[fams[f][i] for f, i in enumerate(g)] for g in ids.tolist()]


def strings_to_ids(tokens: list, vocab: Vocabulary, encoding: str) -> np.ndarray:
    """Token strings to ids; an unknown string raises DecodeError naming it."""
    try:
        if encoding == "remi":
            return np.array([vocab.remi_index[t] for t in tokens], dtype=np.int64)
        maps = [vocab.index[f] for f in GROUP_FAMILIES[encoding]]
        width = len(maps)
        if any(not isinstance(g, list) or len(g) != width for g in tokens):
            raise DecodeError(f"{encoding} tokens must be groups of {width}")
        return np.array([[maps[f][t] for f, t in enumerate(g)] for g in tokens], dtype=np.int64).reshape(-1, width)
    except KeyError as e:
        raise DecodeError(f"unknown token {str(e.args[0])[:40]!r} for {encoding}") from None
    except TypeError:
        raise DecodeError(f"malformed {encoding} tokens") from None


# ---------------------------------------------------------------------------- token records


def make_record(source: str, q: QScore, ids: np.ndarray, vocab: Vocabulary, encoding: str,
                as_ids: bool = False) -> dict:
    """One JSON-ready record: source, encoding, vocabulary hash and config, tracks, tokens."""
    rec = {"source": source, "encoding": encoding, "vocab_hash": vocab.hash,
           "config": dataclasses.asdict(vocab.config), "ticks_per_quarter": q.tpq, "tracks": q.tracks}
    if encoding != "remi":
        rec["families"] = list(GROUP_FAMILIES[encoding])
    rec["tokens"] = ids.tolist() if as_ids else ids_to_strings(ids, vocab, encoding)
    return rec


@dataclasses.dataclass
class Record:
    """A validated token record, ready to decode."""

    source: str
    encoding: str
    vocab: Vocabulary
    ids: np.ndarray
    tracks: list[dict]
    tpq: int


def _is_int(x) -> bool:
    return type(x) is int


def check_tracks(tracks, max_tracks: int, where: str) -> list[dict]:
    """A record's track list: at most ``max_tracks`` objects with a string name (<= 256 characters),
    an integer program 0..127 and a boolean is_drum (missing fields take their defaults)."""
    if tracks is None:
        return []
    if not isinstance(tracks, list):
        raise UserError(f"{where}: tracks must be a list")
    if len(tracks) > max_tracks:
        raise UserError(f"{where}: {len(tracks)} tracks; the vocabulary allows {max_tracks}")
    out = []
    for k, t in enumerate(tracks):
        if not isinstance(t, dict):
            raise UserError(f"{where}: tracks[{k}] must be an object")
        name, program, drum = t.get("name", f"track {k}"), t.get("program", 0), t.get("is_drum", False)
        if not isinstance(name, str) or len(name) > MAX_TRACK_NAME:
            raise UserError(f"{where}: tracks[{k}].name must be a string of at most {MAX_TRACK_NAME} characters")
        if not _is_int(program) or not 0 <= program <= 127:
            raise UserError(f"{where}: tracks[{k}].program must be an integer 0..127")
        if not isinstance(drum, bool):
            raise UserError(f"{where}: tracks[{k}].is_drum must be true or false")
        out.append({"name": name, "program": program, "is_drum": drum})
    return out


def _token_ids(tokens, vocab: Vocabulary, encoding: str, where: str) -> np.ndarray:
    if not isinstance(tokens, list):
        raise UserError(f"{where}: tokens must be a list")
    flat = tokens if encoding == "remi" else [t for g in tokens if isinstance(g, list) for t in g]
    try:
        if flat and all(isinstance(t, str) for t in flat):
            return strings_to_ids(tokens, vocab, encoding)
        if not all(_is_int(t) for t in flat) or (encoding != "remi" and len(flat) != 9 * len(tokens)):
            raise DecodeError(f"tokens must be all strings or all integers"
                              f"{'' if encoding == 'remi' else ', in groups of 9'}")
        width = len(GROUP_FAMILIES[encoding]) if encoding != "remi" else 0
        if any(not -(2**62) < t < 2**62 for t in flat):
            raise DecodeError("an id out of range")
        ids = np.array(flat, dtype=np.int64)
        ids = ids.reshape(-1, width) if width else ids
        check_ids(ids, vocab, encoding)
        return ids
    except DecodeError as e:
        raise UserError(f"{where}: {e}") from None


def parse_record(rec, where: str, vocab: Vocabulary | None = None) -> Record:
    """Validate one record (a parsed JSON value) before anything is built from it. ``vocab``: the
    user's --vocab, which the record's hash must match; else the record's own config, within bounds."""
    if not isinstance(rec, dict):
        raise UserError(f"{where}: not a songkit tokens record (expected a JSON object)")
    enc = rec.get("encoding")
    if enc not in ENCODINGS:
        raise UserError(f"{where}: encoding {str(enc)[:20]!r}: expected one of {', '.join(ENCODINGS)}")
    if "tokens" not in rec:
        raise UserError(f"{where}: no tokens")
    v = vocab or Vocabulary.from_config(rec.get("config", {}), where)
    got = rec.get("vocab_hash")
    if got is not None and got != v.hash:
        raise UserError(f"{where}: tokens made with vocabulary {str(got)[:20]}, not {v.hash}"
                        + (" (pass that --vocab)" if vocab is not None else " (its config does not give that hash)"))
    tpq = rec.get("ticks_per_quarter", 480)
    if not _is_int(tpq) or not 1 <= tpq <= MAX_TPQ:
        raise UserError(f"{where}: ticks_per_quarter must be an integer 1..{MAX_TPQ}")
    tracks = check_tracks(rec.get("tracks"), v.config.max_tracks, where)
    source = rec.get("source")
    source = source if isinstance(source, str) else ""
    return Record(source, enc, v, _token_ids(rec["tokens"], v, enc, where), tracks, tpq)
