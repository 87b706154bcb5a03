"""Inputs and outputs: `-` for stdin/stdout, atomic writes, expanding folders of inputs."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator

from songkit.core.errors import UserError


@contextlib.contextmanager
def open_output(path: str | os.PathLike | None, mode: str = "w") -> Iterator[IO]:
    """Open ``path`` for writing, or stdout for ``-``/None.

    A file is written atomically: readers never see half a file, and an error
    leaves any previous file with that name untouched.
    """
    if path is None or str(path) == "-":
        yield sys.stdout.buffer if "b" in mode else sys.stdout
        (sys.stdout.buffer if "b" in mode else sys.stdout).flush()
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename)."""
    with open_output(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with open_output(path, "w") as f:
        f.write(text)


def read_input_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """Read a text file (or stdin for ``-``); a missing, unreadable or binary file is a UserError."""
    if str(path) == "-":
        return sys.stdin.read()
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file")
    if p.is_dir():
        raise UserError(f"{p}: is a folder, expected a file")
    data = p.read_bytes()
    if b"\x00" in data[:8192]:
        raise UserError(f"{p}: binary data, expected a text file")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return data.decode("latin-1")


def expand_inputs(paths: Iterable[str | os.PathLike], suffixes: tuple[str, ...]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into the files with one of ``suffixes``.

    A path that does not exist, or a folder with no matching file, is a UserError.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in suffixes)
            if not found:
                raise UserError(f"{p}: no {'/'.join(suffixes)} files in this folder")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    return out


def cache_dir(*parts: str) -> Path:
    """The local cache for built datasets and models: ``$SONGKIT_HOME`` or ``~/.cache/songkit``."""
    root = Path(os.environ.get("SONGKIT_HOME") or Path.home() / ".cache" / "songkit")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
