"""ABC corpora: files or folders of `.abc`, split into tunes at `X:` headers.

The embedded default is the ABC corpus inside the music21 package (about 13,000
folk tunes in 1,146 files). Tunes are normalised (comments and annotation fields
dropped, the X: line removed: `generate` numbers tunes itself) and split into
train/validation by tune with a fixed seed.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from songkit.core.errors import UserError
from songkit.core.io import expand_inputs, read_input_text
from songkit.tasks.generate.spec import ABC_SUFFIXES, BOS, EOS, KEEP_FIELDS, SPECIALS, SPLIT_SEED, UNK, VAL_FRACTION


def embedded_corpus_files() -> list[Path]:
    """The `.abc` files that ship inside music21 (sorted, so the split is the same everywhere)."""
    import importlib.util

    spec = importlib.util.find_spec("music21")
    if spec is None or spec.origin is None:
        raise UserError("music21 is not installed: the embedded ABC corpus comes with it")
    root = Path(spec.origin).parent / "corpus"
    files = sorted(root.rglob("*.abc"), key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise UserError(f"{root}: no .abc files in music21's corpus")
    return files


def normalize_tune(text: str) -> str:
    """One tune's text without its X: line, comments and annotation fields; '' if it has no music."""
    lines = []
    has_key = False
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("%"):
            continue
        if len(line) >= 2 and line[1] == ":" and line[0].isalpha() and not line.startswith("|:"):
            field = line[0].upper() if line[0] in "KLMQTRVP" else line[0]
            if line[0] == "X":
                continue
            if field not in KEEP_FIELDS:
                continue
            if field == "K":
                has_key = True
            line = f"{line[0]}:{line[2:].strip()}"
        elif "%" in line:
            line = line.split("%", 1)[0].rstrip()
            if not line:
                continue
        lines.append(line)
    if not has_key or not lines or lines[-1].startswith("K:"):
        return ""  # no music body: nothing to learn from
    return "\n".join(lines)


def split_tunes(text: str) -> list[str]:
    """Split ABC text into tunes at `X:` header lines (text before the first X: is a file header)."""
    tunes, current, started = [], [], False
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith("X:"):
            if started and current:
                tunes.append("\n".join(current))
            current, started = [line], True
        elif started:
            current.append(line)
    if started and current:
        tunes.append("\n".join(current))
    return tunes


def read_tunes(paths: Iterable[str | Path]) -> list[str]:
    """All normalised tunes in the given `.abc` files/folders; a file with no tune is a UserError."""
    tunes: list[str] = []
    for path in expand_inputs(paths, ABC_SUFFIXES):
        text = read_input_text(path)
        found = [t for t in (normalize_tune(x) for x in split_tunes(text)) if t]
        if not found:
            raise UserError(f"{path}: no ABC tune in this file (expected 'X:' headers followed by a 'K:' line and music)")
        tunes.extend(found)
    return tunes


def split_train_val(tunes: Sequence[str], val_fraction: float = VAL_FRACTION) -> tuple[list[str], list[str]]:
    """Deterministic split by tune: a fixed-seed shuffle of the tune order."""
    order = list(range(len(tunes)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_val = max(1, int(round(len(tunes) * val_fraction))) if len(tunes) > 1 else 0
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [tunes[i] for i in train], [tunes[i] for i in val]


def build_vocab(tunes: Iterable[str], min_count: int = 1) -> list[str]:
    """Characters seen at least ``min_count`` times, after the specials (UNK, BOS, EOS)."""
    counts = Counter()
    for t in tunes:
        counts.update(t)
    chars = sorted(c for c, n in counts.items() if n >= min_count and c not in SPECIALS)
    return list(SPECIALS) + chars


def encode(text: str, vocab: Sequence[str]) -> list[int]:
    index = {c: i for i, c in enumerate(vocab)}
    unk = index[UNK]
    return [index.get(c, unk) for c in text]


def corpus_ids(tunes: Sequence[str], vocab: Sequence[str]) -> list[int]:
    """One stream: BOS tune EOS BOS tune EOS ..."""
    index = {c: i for i, c in enumerate(vocab)}
    unk, bos, eos = index[UNK], index[BOS], index[EOS]
    ids: list[int] = []
    for t in tunes:
        ids.append(bos)
        ids.extend(index.get(c, unk) for c in t)
        ids.append(eos)
    return ids


def corpus_fingerprint(tunes: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in tunes:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\x03")
    return h.hexdigest()[:16]
