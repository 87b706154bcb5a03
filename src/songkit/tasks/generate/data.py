"""ABC corpora: files or folders of `.abc`, split into tunes at `X:` headers, and the training stream.

The embedded default is the ABC corpus inside the music21 package (about 13,000
folk tunes in 1,146 files of several collections). Tunes are normalised (comments and
annotation fields dropped, the X: line removed: `generate` numbers tunes itself) and split
into train/validation by tune with a fixed seed.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from songkit.core.errors import UserError
from songkit.core.io import expand_inputs, read_input_text
from songkit.tasks.generate.constants import (
    ABC_SUFFIXES,
    ASCII_CHARS,
    BOS,
    EOS,
    KEEP_FIELDS,
    SPECIALS,
    SPLIT_SEED,
    TRANSPOSE_RANGE,
    UNK,
    VAL_FRACTION,
    VOCABS,
)


def corpus_root() -> Path:
    """music21's corpus folder (the embedded ABC collections live in its sub-folders)."""
    import importlib.util

    spec = importlib.util.find_spec("music21")
    if spec is None or spec.origin is None:
        raise UserError("music21 is not installed: the embedded ABC corpus comes with it")
    return Path(spec.origin).parent / "corpus"


def embedded_corpus_files(collections: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> list[Path]:
    """The `.abc` files that ship inside music21 (sorted, so the split is the same everywhere).

    ``collections``/``exclude`` keep/drop whole collections: the corpus's top-level folders
    (essenFolksong, oneills1850, airdsAirs, ryansMammoth, miscFolk, josquin, nottingham-dataset).
    """
    root = corpus_root()
    files = sorted(root.rglob("*.abc"), key=lambda p: p.relative_to(root).as_posix())
    if collections is not None:
        files = [p for p in files if collection_of(p, root) in collections]
    files = [p for p in files if collection_of(p, root) not in exclude]
    if not files:
        raise UserError(f"{root}: no .abc files in music21's corpus (collections {collections}, without {exclude})")
    return files


def collection_of(path: Path, root: Path | None = None) -> str:
    """The music21 collection (top-level corpus folder) a file belongs to."""
    return path.relative_to(root or corpus_root()).parts[0]


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


def read_file_tunes(path: str | Path) -> list[str]:
    """The normalised tunes of one `.abc` file; a file with no tune is a UserError naming it."""
    found = [t for t in (normalize_tune(x) for x in split_tunes(read_input_text(path))) if t]
    if not found:
        raise UserError(f"{path}: no ABC tune in this file (expected 'X:' headers followed by a 'K:' line and music)")
    return found


def read_tunes(paths: Iterable[str | Path]) -> list[str]:
    """All normalised tunes in the given `.abc` files/folders, in file order."""
    return [t for path in expand_inputs(paths, ABC_SUFFIXES) for t in read_file_tunes(path)]


def split_train_val(tunes: Sequence[str], val_fraction: float = VAL_FRACTION) -> tuple[list[str], list[str]]:
    """Deterministic split by tune: a fixed-seed shuffle of the tune order."""
    order = list(range(len(tunes)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_val = max(1, round(len(tunes) * val_fraction)) if len(tunes) > 1 else 0
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [tunes[i] for i in train], [tunes[i] for i in val]


def build_vocab(tunes: Iterable[str], kind: str = "corpus") -> list[str]:
    """The specials (UNK, BOS, EOS), then the characters: every printable ASCII one ("ascii") or
    those seen in ``tunes`` ("corpus")."""
    if kind not in VOCABS:
        raise UserError(f"--vocab {kind}: expected one of {', '.join(VOCABS)}")
    chars = set(ASCII_CHARS)
    if kind == "corpus":
        chars = set()
        for t in tunes:
            chars.update(t)
    return list(SPECIALS) + sorted(chars - set(SPECIALS))


def encode(text: str, vocab: Sequence[str]) -> list[int]:
    """Character ids of ``text`` (characters outside the vocabulary become UNK)."""
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


def out_of_vocab(tunes: Sequence[str], vocab: Sequence[str]) -> Counter:
    """Characters of ``tunes`` that the vocabulary lacks (they are scored as UNK), with their counts."""
    known = set(vocab) - {UNK}
    counts: Counter = Counter()
    for t in tunes:
        counts.update(c for c in t if c not in known)
    return counts


def corpus_fingerprint(tunes: Sequence[str]) -> str:
    """A short hash of the tune texts (saved with a run: which data it saw)."""
    h = hashlib.sha256()
    for t in tunes:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\x03")
    return h.hexdigest()[:16]


class TuneStream:
    """The training tunes as one in-memory stream of ids, cut into TBPTT chunks (a map-style Dataset).

    ``set_epoch(e)`` shuffles the tune order (a pure function of seed and epoch: resume-safe), joins the
    tunes as BOS tune EOS ..., and lays the stream out in ``n_streams`` contiguous rows (char-rnn layout).
    Item k is chunk k of every row, ``(x, y)`` each ``(rows, seq_len)``: chunk k continues chunk k-1 of the
    same row, so the LSTM state is carried from one item to the next. Items must be read in order (no
    shuffling sampler); under torchrun a rank takes its share of the rows (``rank``, ``world``), not of
    the chunks, so every rank sees the same number of items.
    """

    def __init__(self, tunes: Sequence[str], vocab: Sequence[str], n_streams: int, seq_len: int, seed: int,
                 rank: int = 0, world: int = 1, transpose: bool = False):
        import torch

        stream = torch.tensor(corpus_ids(tunes, vocab), dtype=torch.long)  # (N,)
        self.ids = stream.split([len(t) + 2 for t in tunes])  # one view per tune: BOS tune EOS
        self.n_chars = len(stream)
        # --transpose: the tunes' text, moved to a new key per epoch (a transposed stream is a little longer or
        # shorter; the epoch's layout keeps the original length, wrapping around when it is shorter)
        self.transpose = transpose
        self.tunes, self.vocab = list(tunes), list(vocab)
        self.n_streams, self.seq_len, self.seed = n_streams * world, seq_len, seed
        self.rank, self.world = rank, world
        self.per_row = (self.n_chars - 1) // self.n_streams
        if self.per_row // seq_len < 1:
            raise UserError(f"corpus too small: {self.n_chars} characters for {self.n_streams} streams of "
                            f"--seq-len {seq_len}; lower --batch-size or --seq-len")
        self.x = self.y = None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Lay out the stream of ``epoch`` (a fresh tune order)."""
        import torch

        g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        order = torch.randperm(len(self.ids), generator=g).tolist()
        ids = self.ids if not self.transpose else self._transposed(epoch)
        stream = torch.cat([ids[i] for i in order])  # (N,)
        usable = len(self) * self.seq_len
        if len(stream) < self.n_chars:
            stream = torch.cat([stream, stream[: self.n_chars - len(stream)]])
        rows = torch.stack([stream[r * self.per_row: r * self.per_row + usable + 1] for r in range(self.n_streams)])
        rows = rows[self.rank::self.world]  # this rank's rows: (B, usable + 1)
        self.x, self.y = rows[:, :-1], rows[:, 1:]

    def _transposed(self, epoch: int) -> list:
        """Every tune moved by its own random interval (a pure function of seed and epoch); a tune that cannot
        be moved exactly (transpose.transpose_tune gives None) stays in its key."""
        import torch

        from songkit.tasks.generate.transpose import transpose_tune

        rng = random.Random(self.seed * 7919 + epoch)
        lo, hi = TRANSPOSE_RANGE
        moved = [transpose_tune(tune, rng.randint(lo, hi)) or tune for tune in self.tunes]
        stream = torch.tensor(corpus_ids(moved, self.vocab), dtype=torch.long)  # one tensor, one view per tune
        return stream.split([len(t) + 2 for t in moved])

    def __len__(self) -> int:
        return self.per_row // self.seq_len

    def __getitem__(self, k: int):
        sl = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return self.x[:, sl], self.y[:, sl]  # (B, L) each


def write_corpus(out: str | Path, limit: int | None = None, force: bool = False) -> dict[str, int]:
    """Write the embedded corpus as ``train.abc`` and ``valid.abc`` in ``out`` (the split training uses;
    each a multi-tune ABC file, tunes numbered from X:1). Returns the number of tunes per file."""
    from songkit.core.io import atomic_write_text, check_outputs

    out = Path(out)
    files = embedded_corpus_files()
    paths = {"train": out / "train.abc", "valid": out / "valid.abc"}
    check_outputs(files, paths.values(), force)  # before any work
    tunes = read_tunes(files)[: limit or None]
    counts = {}
    for name, part in zip(paths, split_train_val(tunes)):
        atomic_write_text(paths[name], "".join(f"X:{i + 1}\n{t.strip()}\n\n" for i, t in enumerate(part)))
        counts[name] = len(part)
    return counts
