"""What the token models read: the embedded chorales, file lists and their song-level split, songs as
token ids (from MIDI/MusicXML/ABC files or from a token dataset folder, memory-mapped), and the torch
Dataset of teacher-forcing windows.

The file readers are in ``readers.py``, the dataset folder format in ``shards.py``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from songkit.core.errors import UserError
from songkit.tasks.tokenize import shards
from songkit.tasks.tokenize.codec import encode
from songkit.tasks.tokenize.constants import (
    GROUP_ENCODINGS,
    GROUP_FAMILIES,
    SPLITS,
    TokenizerConfig,
    Vocabulary,
)
from songkit.tasks.tokenize.quantise import quantise, to_music
from songkit.tasks.tokenize.readers import SUFFIXES, read_music, read_pieces, write_midi

CHORALES_VERSION = "1"


# ---------------------------------------------------------------------------- the embedded default


def chorale_paths(limit: int | None = None) -> list[str]:
    """Paths of the Bach chorales bundled with music21 (MusicXML), sorted."""
    from music21 import corpus

    paths = sorted(str(p) for p in corpus.getComposer("bach") if str(p).endswith((".mxl", ".xml", ".musicxml")))
    return paths[:limit] if limit else paths


def write_chorales(out: Path, limit: int | None = None) -> list[Path]:
    """Write the music21 Bach chorales as MIDI files (notes, tempos, time signatures, chord markers)."""
    from songkit.core.progress import track

    vocab = Vocabulary(TokenizerConfig())
    written = []
    paths = chorale_paths(limit)
    out.mkdir(parents=True, exist_ok=True)
    for p in track(paths, total=len(paths), description="chorales -> MIDI"):
        target = out / (Path(p).stem + ".mid")
        if not target.exists():
            write_midi(to_music(quantise(read_music(p), vocab), vocab, str(target)), target)
        written.append(target)
    return written


def embedded_dir() -> Path:
    """The embedded default: music21's Bach chorales as MIDI, built once into $SONGKIT_HOME (atomically)."""
    from songkit.core.data import build_once

    return build_once("tokenize-bach-chorales", write_chorales, version=CHORALES_VERSION)


# ---------------------------------------------------------------------------- files and splits


def dataset_files(data_paths: list[Path] | None) -> list[Path]:
    """Files for training/eval: the given files/folders, or the embedded chorales."""
    from songkit.core.io import expand_inputs

    if not data_paths:
        return sorted(embedded_dir().glob("*.mid"))
    # POP909 keeps alternative arrangements in NNN/versions/: the dataset is the NNN/NNN.mid files
    return [f for f in expand_inputs(data_paths, SUFFIXES) if f.parent.name != "versions"]


def is_validation(name: str) -> bool:
    """Song-level split: a song is in the validation set when crc32 of its name (file stem) is 0 mod 10."""
    return zlib.crc32(name.encode()) % 10 == 0


def split_names(names: list[str]) -> tuple[list[int], list[int]]:
    """Indices of the (train, valid) songs; at least one song on each side when possible."""
    valid = [i for i, n in enumerate(names) if is_validation(n)]
    train = [i for i, n in enumerate(names) if not is_validation(n)]
    if not valid and len(train) > 1:
        valid, train = train[-1:], train[:-1]
    if not train:
        train = valid
    return train, valid


def song_name(source: str) -> str:
    """The name the split reads: the file stem, with a tune number for a multi-tune ABC file."""
    path, _, tune = source.partition("#")
    return Path(path).stem + (f"#{tune}" if tune else "")


# ---------------------------------------------------------------------------- songs as ids


@dataclass
class Songs:
    """Token id sequences of one encoding and vocabulary, with their names (sources)."""

    encoding: str
    vocab: Vocabulary
    names: list[str]
    sequences: list[np.ndarray]  # (G, 9) ids per song (uint16 memory-mapped views for a dataset folder)

    def subset(self, idx: list[int]) -> Songs:
        return Songs(self.encoding, self.vocab, [self.names[i] for i in idx], [self.sequences[i] for i in idx])

    def split(self, split: str) -> Songs:
        """train | valid | all (the song-level split of :func:`split_names`)."""
        if split not in SPLITS or split == "test":
            raise UserError(f"--split {split}: expected train, valid or all (the token datasets have no test split)")
        if split == "all":
            return self
        train, valid = split_names(self.names)
        return self.subset(train if split == "train" else valid)


def encode_files(files: list[Path], vocab: Vocabulary, encoding: str) -> Songs:
    """Read, quantise and encode files (one song per piece of each file)."""
    from songkit.core.progress import track

    names, seqs = [], []
    for f in track(files, total=len(files), description=f"tokenizing ({encoding})"):
        for music in read_pieces(f):
            names.append(song_name(music.source))
            seqs.append(encode(quantise(music, vocab), vocab, encoding))
    return Songs(encoding, vocab, names, seqs)


def load_songs(data_paths: list[Path] | None, vocab: Vocabulary, encoding: str) -> Songs:
    """Songs from one token dataset folder (memory-mapped: no MIDI parsing; its vocabulary and encoding
    must be ``vocab`` and ``encoding``) or from MIDI/MusicXML/ABC files and folders (the embedded
    chorales when none)."""
    if data_paths and len(data_paths) == 1 and shards.is_dataset(data_paths[0]):
        ds = shards.open_dataset(data_paths[0])
        if ds.encoding != encoding:
            raise UserError(f"{data_paths[0]}: holds {ds.encoding} tokens, not {encoding} (--encoding {ds.encoding})")
        if ds.vocab.hash != vocab.hash:
            raise UserError(f"{data_paths[0]}: its vocabulary ({ds.vocab.hash}) is not this run's ({vocab.hash})")
        return Songs(encoding, vocab, [song_name(e["source"]) for e in ds.entries],
                     [ds.sequence(i) for i in range(len(ds))])
    if data_paths and any(shards.is_dataset(p) for p in data_paths):
        raise UserError("--data: give one token dataset folder, or MIDI files and folders, not both")
    return encode_files(dataset_files(data_paths), vocab, encoding)


def data_vocab(data_paths: list[Path] | None) -> tuple[Vocabulary, str] | None:
    """(vocabulary, encoding) of a token dataset folder given as --data, else None."""
    if data_paths and len(data_paths) == 1 and shards.is_dataset(data_paths[0]):
        ds = shards.open_dataset(data_paths[0])
        return ds.vocab, ds.encoding
    return None


# ---------------------------------------------------------------------------- windows for the models


def frame_ids(vocab: Vocabulary, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """The BOS and EOS groups that frame every song: (9,) int64 each."""
    if encoding not in GROUP_ENCODINGS:
        raise UserError(f"--encoding {encoding}: the models read token groups (cp or nb)")
    head = GROUP_FAMILIES[encoding][0]
    bos, eos = np.zeros(9, np.int64), np.zeros(9, np.int64)
    bos[0], eos[0] = vocab.index[head]["BOS"], vocab.index[head]["EOS"]
    return bos, eos


def window(song: np.ndarray, start: int, length: int, bos: np.ndarray, eos: np.ndarray) -> np.ndarray:
    """Groups ``start .. start + length`` of the framed song ``BOS, song..., EOS``, zero-padded: (length, 9)."""
    n = len(song) + 2  # framed length
    out = np.zeros((length, song.shape[1] if song.ndim == 2 else 9), np.int64)
    lo, hi = start, min(start + length, n)
    a, b = max(lo, 1), min(hi, n - 1)  # the span of real groups (framed positions)
    if b > a:
        out[a - lo:b - lo] = song[a - 1:b - 1]
    if lo == 0:
        out[0] = bos
    if lo <= n - 1 < hi:
        out[n - 1 - lo] = eos
    return out


class SongWindows:
    """A torch-style Dataset of teacher-forcing windows of ``seq_len + 1`` groups tiling every framed song.

    With ``shift`` (training), each epoch moves every song's tiling by an offset in [0, seq_len) drawn
    from ``item_rng(seed, epoch, song)``: other windows each epoch, whatever the worker layout.
    """

    def __init__(self, songs: Songs, seq_len: int, shift: bool = False, seed: int = 0):
        self.songs, self.seq_len, self.shift, self.seed, self.epoch = songs, seq_len, shift, seed, 0
        self.bos, self.eos = frame_ids(songs.vocab, songs.encoding)
        # (song, tile) per item: the tiles cover every target of the framed song (n - 1 of them),
        # under any shift
        extra = seq_len - 1 if shift else 0
        counts = [max(1, -(-(len(s) + 1 + extra) // seq_len)) for s in songs.sequences]
        self.items = [(k, t) for k, c in enumerate(counts) for t in range(c)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        import torch

        from songkit.core.data import item_rng

        k, tile = self.items[i]
        song = self.songs.sequences[k]
        offset = int(item_rng(self.seed, self.epoch, k).integers(self.seq_len)) if self.shift else 0
        start = min(max(0, tile * self.seq_len - offset), len(song))  # every window has a target
        return torch.from_numpy(window(song, start, self.seq_len + 1, self.bos, self.eos))  # (seq_len + 1, 9)
