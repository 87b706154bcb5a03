"""Token datasets on disk: ids in memory-mappable ``.npy`` shards, an index, the versioned vocabulary.

Layout of a dataset folder::

    vocab.json          the vocabulary (format, version, config, every token, hash)
    shard-00000.npy     uint16 ids of many sequences, concatenated: (N, 9) groups for cp/nb, (N,) for remi
    shard-00000.json    that shard's index: one entry per sequence (source, offset, length, tracks, ...)
    dataset.json        format, version, encoding, vocabulary hash, shard names, counts (written last)

Files are assigned to shards by their position in the sorted input list (``FILES_PER_SHARD`` each), so
the bytes written do not depend on ``--jobs``. Every file is written atomically (temp file, rename), an
index after its shard, and ``dataset.json`` after every shard: a killed run leaves no shard that reads
as complete and no folder that reads as a dataset.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from songkit.core.errors import UserError
from songkit.tasks.tokenize.constants import ENCODINGS, Vocabulary, parse_json

FORMAT = "songkit-token-dataset"
VERSION = 1
FILES_PER_SHARD = 64
ID_DTYPE = np.uint16  # every family and the REMI vocabulary stay under 65,536 (CONFIG_BOUNDS)


def is_dataset(path: str | Path) -> bool:
    """True for a folder written by :func:`write_dataset` (it has ``dataset.json``)."""
    return (Path(path) / "dataset.json").is_file()


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _atomic(path: Path, data: bytes) -> None:
    from songkit.core.io import atomic_write_bytes

    atomic_write_bytes(path, data)


def _npy_bytes(ids: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(ids, dtype=ID_DTYPE), allow_pickle=False)
    return buf.getvalue()


def encode_shard(args) -> tuple[int, bytes, list[dict], list[str]]:
    """Encode the files of one shard: (shard number, .npy bytes, index entries, error lines).

    Runs in a worker process; a file that fails is an error line (the caller decides what it means).
    """
    number, files, vocab_config, encoding, tracks, names = args
    from songkit.tasks.tokenize.codec import encode
    from songkit.tasks.tokenize.constants import TokenizerConfig
    from songkit.tasks.tokenize.quantise import quantise
    from songkit.tasks.tokenize.readers import read_pieces

    vocab = Vocabulary(TokenizerConfig(**vocab_config))
    width = 0 if encoding == "remi" else 9
    parts, entries, errors, offset = [], [], [], 0
    for path, name in zip(files, names):
        try:
            pieces = [(m, quantise(m, vocab)) for m in read_pieces(path, tracks)]
        except UserError as e:
            errors.append(e.format_message())
            continue
        for music, q in pieces:
            ids = encode(q, vocab, encoding)
            parts.append(ids)
            entries.append({"source": name + music.source[len(str(path)):], "offset": offset, "length": len(ids),
                            "tracks": q.tracks, "ticks_per_quarter": q.tpq})
            offset += len(ids)
    empty = np.zeros((0, width) if width else (0,), np.int64)
    return number, _npy_bytes(np.concatenate(parts) if parts else empty), entries, errors


def write_dataset(files: list[Path], out: Path, vocab: Vocabulary, encoding: str, *, jobs: int = 1,
                  tracks: list[int] | None = None, skip_bad: bool = False, force: bool = False,
                  names: list[str] | None = None, on_shard=None) -> dict:
    """Tokenize ``files`` into the dataset folder ``out`` with ``jobs`` processes; returns the header
    (with ``skipped``: the error lines of files left out under ``skip_bad``).

    Without ``skip_bad`` the first file that fails is a UserError naming it, and no ``dataset.json``
    is written. ``names`` are the sources written in the index (default: the paths as given).
    """
    if encoding not in ENCODINGS:
        raise UserError(f"--encoding {encoding}: expected one of {', '.join(ENCODINGS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder (--dataset writes a folder)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"{out}: not empty; --force replaces the dataset in it")
    out.mkdir(parents=True, exist_ok=True)
    for stale in list(out.glob("shard-*")) + [out / "dataset.json"]:
        if stale.is_file():
            stale.unlink()
    names = names or [str(f) for f in files]
    chunks = [(k // FILES_PER_SHARD, files[k:k + FILES_PER_SHARD], vars(vocab.config), encoding, tracks,
               names[k:k + FILES_PER_SHARD]) for k in range(0, len(files), FILES_PER_SHARD)]
    vocab.save(out / "vocab.json")
    shards, skipped, n_seq, n_tokens = [], [], 0, 0
    for number, npy, entries, errors in _map(encode_shard, chunks, jobs):
        if errors and not skip_bad:
            raise UserError(errors[0])
        skipped += errors
        name = f"shard-{number:05d}"
        _atomic(out / f"{name}.npy", npy)
        _atomic(out / f"{name}.json", _json_bytes(entries))
        shards.append(name)
        n_seq += len(entries)
        n_tokens += sum(e["length"] for e in entries)
        if on_shard is not None:
            on_shard(len(chunks[number][1]))
    header = {"format": FORMAT, "version": VERSION, "encoding": encoding, "vocab_hash": vocab.hash,
              "shards": shards, "sequences": n_seq, "tokens": n_tokens, "files": len(files) - len(skipped)}
    _atomic(out / "dataset.json", _json_bytes(header))
    return {**header, "skipped": skipped}


def _map(fn, chunks: list, jobs: int):
    """``map(fn, chunks)`` in order, in ``jobs`` forked processes (in this process for 1)."""
    if jobs <= 1 or len(chunks) <= 1:
        yield from map(fn, chunks)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(chunks)), mp_context=ctx) as pool:
        yield from pool.map(fn, chunks)


def default_jobs() -> int:
    """Processes for ``--jobs`` by default: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class TokenDataset:
    """A dataset folder opened for reading: sequences are memory-mapped views of the shards."""

    root: Path
    encoding: str
    vocab: Vocabulary
    entries: list[dict]  # index entries, each with "shard" (its position in arrays) added
    arrays: list[np.ndarray]  # one memory-mapped array per shard

    def __len__(self) -> int:
        return len(self.entries)

    def sequence(self, i: int) -> np.ndarray:
        """The ids of sequence ``i`` (a uint16 view into the memory-mapped shard)."""
        e = self.entries[i]
        return self.arrays[e["shard"]][e["offset"]:e["offset"] + e["length"]]


def open_dataset(root: str | Path) -> TokenDataset:
    """Open a dataset folder (nothing is read but the headers; shards are memory-mapped)."""
    root = Path(root)
    head_path = root / "dataset.json"
    if not head_path.is_file():
        raise UserError(f"{root}: not a token dataset (no dataset.json; an interrupted `songkit tokenize "
                        "--dataset` leaves none)")
    head = parse_json(head_path.read_bytes(), str(head_path))
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise UserError(f"{head_path}: not a songkit token dataset header")
    if head.get("version") != VERSION:
        raise UserError(f"{head_path}: dataset version {str(head.get('version'))[:20]} (this songkit reads {VERSION})")
    vocab = Vocabulary.load(root / "vocab.json")
    if head.get("vocab_hash") != vocab.hash or head.get("encoding") not in ENCODINGS:
        raise UserError(f"{head_path}: its vocabulary hash or encoding does not match vocab.json")
    shards = head.get("shards")
    if not isinstance(shards, list) or not all(isinstance(s, str) and s.startswith("shard-") for s in shards):
        raise UserError(f"{head_path}: malformed shard list")
    width = 0 if head["encoding"] == "remi" else 9
    entries, arrays = [], []
    for k, name in enumerate(shards):
        try:
            arr = np.load(root / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UserError(f"{root / name}.npy: unreadable shard ({str(e)[:80]})") from None
        if arr.dtype != ID_DTYPE or arr.ndim != (2 if width else 1) or (width and arr.shape[1] != width):
            raise UserError(f"{root / name}.npy: not a {head['encoding']} shard of {np.dtype(ID_DTYPE).name} ids")
        sizes = np.array(vocab.sizes(head["encoding"]))
        if len(arr) and (arr.max(axis=0) >= (sizes if width else sizes[0])).any():  # one pass over the shard
            raise UserError(f"{root / name}.npy: ids outside the vocabulary")
        index = parse_json((root / f"{name}.json").read_bytes(), f"{root / name}.json")
        for e in index if isinstance(index, list) else [None]:
            if not (isinstance(e, dict) and type(e.get("offset")) is int and type(e.get("length")) is int
                    and 0 <= e["offset"] <= e["offset"] + e["length"] <= len(arr)):
                raise UserError(f"{root / name}.json: malformed index entry")
            entries.append({**e, "shard": k})
        arrays.append(arr)
    return TokenDataset(root, head["encoding"], vocab, entries, arrays)
