"""Inputs and outputs: `-` for stdin/stdout, atomic writes, expanding folders of inputs.

The overwrite rule, the same for every command (:func:`output_for`, :func:`check_outputs`):

* No command writes over one of its own inputs, not even with ``--force`` (one line, exit 2).
* Any other file that already exists is replaced only with ``--force``, whether the user named it
  (``-o FILE``) or the command derived its name inside an output folder (``-o DIR``); without
  ``--force`` the command stops before doing any work, naming the file, and writes nothing.
* One input and ``-o FILE`` writes that file; several inputs need ``-o`` to be a folder (created
  when missing) and each output is ``<input stem><suffix>`` inside it. ``-`` is stdin / stdout.
* Files are written atomically (a temp file ``.NAME.XXXXXXXX.tmp`` beside the target, then a
  rename): a killed command never leaves half a file, and :func:`clean_stale_temps` removes the
  temp files a kill left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

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


def home_dir() -> Path:
    """songkit's local cache: ``$SONGKIT_HOME`` or ``~/.cache/songkit`` (read at call time)."""
    return Path(os.environ.get("SONGKIT_HOME") or Path.home() / ".cache" / "songkit")


def cache_dir(*parts: str) -> Path:
    """A folder of the local cache (:func:`home_dir`), created when missing."""
    path = home_dir().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------- stdin
STDIN = "-"


def _is_stdin(path: str | os.PathLike) -> bool:
    return str(path) == STDIN


def _stdin_bytes(max_bytes: int | None) -> bytes:
    if sys.stdin is None or sys.stdin.isatty():
        raise UserError("-: stdin is a terminal; pipe a file in (`cat FILE | songkit ... -`) or give a path")
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    data = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
    if isinstance(data, str):  # a text stream without a buffer (e.g. a test runner's)
        data = data.encode("utf-8", "surrogateescape")
    if max_bytes is not None and len(data) > max_bytes:
        raise UserError(f"-: stdin holds more than {max_bytes:,} bytes")
    return data


def read_input_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The bytes of an input file, or of stdin for ``-``. A missing file, a folder, an unreadable file
    or one over ``max_bytes`` is one UserError line naming it."""
    if _is_stdin(path):
        return _stdin_bytes(max_bytes)
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file")
    if p.is_dir():
        raise UserError(f"{p}: is a folder, expected a file")
    try:
        if max_bytes is not None and p.stat().st_size > max_bytes:
            raise UserError(f"{p}: larger than {max_bytes:,} bytes")
        return p.read_bytes()
    except OSError as e:
        raise UserError(f"{p}: cannot read ({e.strerror or e})") from None


@contextlib.contextmanager
def input_file(path: str | os.PathLike, suffix: str = "", max_bytes: int | None = None) -> Iterator[Path]:
    """A real file path for an input: the file itself, or for ``-`` a temporary copy of stdin (named
    ``stdin<suffix>``, removed afterwards) for readers that need a path (soundfile, PIL, symusic)."""
    if not _is_stdin(path):
        p = Path(path)
        if not p.exists():
            raise UserError(f"{p}: no such file")
        if p.is_dir():
            raise UserError(f"{p}: is a folder, expected a file")
        yield p
        return
    data = _stdin_bytes(max_bytes)
    with tempfile.TemporaryDirectory(prefix="songkit-stdin-") as tmp:
        copy = Path(tmp) / f"stdin{suffix}"
        copy.write_bytes(data)
        yield copy


# ----------------------------------------------------------------------------- outputs
def _same_file(a: Path, b: Path) -> bool:
    """The same file on disk (also through symlinks and hard links)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_outputs(inputs: Iterable[str | os.PathLike], outputs: Iterable[str | os.PathLike],
                  force: bool = False) -> None:
    """Refuse (one UserError line naming the file) an output that is one of the inputs (always), that is a
    folder, or that exists already (unless ``force``). ``-`` (stdout) is always fine."""
    ins = [Path(i) for i in inputs if not _is_stdin(i)]
    seen: set[Path] = set()
    for raw in outputs:
        if _is_stdin(raw):
            continue
        out = Path(raw)
        if any(_same_file(out, i) for i in ins):
            raise UserError(f"{out}: is one of the inputs; choose another --out (songkit never writes over an input)")
        if out.resolve() in seen:
            raise UserError(f"{out}: two outputs would have this name")
        seen.add(out.resolve())
        if out.is_dir():
            raise UserError(f"{out}: is a folder, expected a file name")
        if out.exists() and not force:
            raise UserError(f"{out}: exists (--force replaces it)")


def output_for(inputs: list[str | os.PathLike], out: str | os.PathLike | None, suffix: str,
               force: bool = False) -> list[Path | str]:
    """The output of each input under the rule of this module's docstring: ``"-"`` (stdout) for each when
    ``out`` is None or ``-``; with one input, ``out`` a file name (or an existing folder, or a name ending
    in ``/``: ``<stem><suffix>`` inside it); with several, ``out`` a folder of ``<stem><suffix>`` (a second
    ``x`` becomes ``x-2``; stdin is ``stdin``). Checked with :func:`check_outputs` before any work."""
    if out is None or _is_stdin(out):
        return [STDIN] * len(inputs)
    folder = Path(out)
    if len(inputs) == 1 and not folder.is_dir() and not str(out).endswith(("/", os.sep)):
        outputs: list[Path | str] = [folder]
    else:
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{folder}: is a file; with several inputs --out is a folder")
        outputs, taken = [], set()
        for item in inputs:
            stem = "stdin" if _is_stdin(item) else Path(item).stem
            name, n = f"{stem}{suffix}", 1
            while name.lower() in taken:  # a/x.wav and b/x.wav: x.lab and x-2.lab
                n += 1
                name = f"{stem}-{n}{suffix}"
            taken.add(name.lower())
            outputs.append(folder / name)
    check_outputs(inputs, outputs, force)
    return outputs


# ----------------------------------------------------------------------------- killed writes
_TEMP = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")  # open_output's mkstemp naming


def clean_stale_temps(folder: str | os.PathLike, names: Iterable[str] | None = None) -> list[Path]:
    """Remove temp files that killed atomic writes left in ``folder`` (songkit's ``.NAME.XXXXXXXX.tmp``
    naming; only for ``names`` when given). Call it where no other songkit process writes, e.g. when a
    run folder is opened. Returns the removed paths."""
    folder = Path(folder)
    wanted = None if names is None else set(names)
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TEMP.match(p.name)
        if m and (wanted is None or m["name"] in wanted) and p.is_file() and not p.is_symlink():
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed
