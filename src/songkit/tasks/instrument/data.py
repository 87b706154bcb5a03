"""The instrument task's data: ``--data`` paths resolved to NSynth splits, and the embedded default set.

The readers of NSynth's layout and the streaming Dataset are in nsynth.py; the SoundFont renderer that
makes such sets is render.py.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from songkit.core.errors import UserError
from songkit.tasks.instrument.constants import NOTE_SAMPLES
from songkit.tasks.instrument.nsynth import split_dirs

EMBEDDED_ARCHIVE = Path(__file__).resolve().parent / "assets" / "nsynth-mini.tar"
EMBEDDED_NAME = "instrument-nsynth-mini"


def embedded_root() -> Path:
    """The embedded dataset, unpacked once into ``$SONGKIT_HOME`` (core.data.build_once: atomic) as
    16-bit WAVs in the exact NSynth layout. Returns the folder holding ``nsynth-*``."""
    from songkit.core.data import build_once

    if not EMBEDDED_ARCHIVE.is_file():
        raise UserError(f"{EMBEDDED_ARCHIVE}: the embedded dataset is missing from this install; pass --data")
    return build_once(EMBEDDED_NAME, lambda tmp: unpack_archive(EMBEDDED_ARCHIVE, tmp), version="1")


def pack_archive(root: str | os.PathLike, archive: str | os.PathLike, quality: float = 0.0) -> Path:
    """Pack an NSynth-layout folder as a tar of examples.json files and Ogg Vorbis notes
    (lossy, about 10x smaller than WAV) for shipping inside the package."""
    import io

    import soundfile as sf

    root, archive = Path(root), Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w") as tar:
        for split, d in sorted(split_dirs(root).items()):
            tar.add(d / "examples.json", arcname=f"nsynth-{split}/examples.json")
            for wav in sorted((d / "audio").glob("*.wav")):
                data, sr = sf.read(wav, dtype="float32")
                buf = io.BytesIO()
                sf.write(buf, data, sr, format="OGG", subtype="VORBIS", compression_level=1 - quality)
                info = tarfile.TarInfo(f"nsynth-{split}/audio/{wav.stem}.ogg")
                info.size = buf.tell()
                buf.seek(0)
                tar.addfile(info, buf)
    return archive


def unpack_archive(archive: Path, out: Path) -> None:
    """Unpack :func:`pack_archive`'s tar into NSynth's layout (Ogg -> 16-bit WAV, 4 s)."""
    import io

    import numpy as np
    import soundfile as sf

    with tarfile.open(archive, "r") as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if not member.isfile() or ".." in name.parts or name.is_absolute():
                continue
            data = tar.extractfile(member).read()
            if name.suffix == ".ogg":
                samples, sr = sf.read(io.BytesIO(data), dtype="float32")
                samples = np.clip(np.pad(samples, (0, max(0, NOTE_SAMPLES - len(samples))))[:NOTE_SAMPLES], -1, 1)
                target = out / name.with_suffix(".wav")
                target.parent.mkdir(parents=True, exist_ok=True)
                sf.write(target, samples, sr, subtype="PCM_16")
            else:
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)


def resolve_data(paths: list[Path] | None) -> dict[str, list[Path]]:
    """``--data`` paths (or the embedded default) -> split name -> split folders."""
    roots = list(paths) if paths else [embedded_root()]
    out: dict[str, list[Path]] = {}
    for p in roots:
        for split, d in split_dirs(p).items():
            out.setdefault(split, []).append(d)
    return out


def split_examples(data: list[Path] | None, split: str, skip_bad: bool = False, limit: int = 0,
                   seed: int = 0) -> tuple[list, int]:
    """The checked examples of ``split`` over every ``--data`` root (default: the embedded set), and the
    number of entries left out by ``skip_bad``. ``limit``: a seeded random N of them (0: all)."""
    from songkit.tasks.instrument.nsynth import read_examples, subsample

    found = resolve_data(data)
    if split not in found:
        where = ", ".join(str(p) for p in data) if data else "the embedded set"
        raise UserError(f"{where}: no {split} split (found: {', '.join(sorted(found))})")
    examples, bad = [], 0
    for d in found[split]:
        ex, n_bad = read_examples(d, skip_bad)
        examples += ex
        bad += n_bad
    if not examples:
        raise UserError(f"{found[split][0]}: the {split} split has no usable notes")
    return subsample(examples, limit, seed, f"{split} notes"), bad
