"""A shared fuzz helper (issue 14): mutate a small real file and check that a parser either returns or
raises one ``UserError`` line, within a time limit and a memory limit.

Usage in a test module::

    from fuzz import fuzz, check_case, SLOW_EXAMPLES

    def test_fuzz_my_parser(tmp_path):
        fuzz(lambda data: parse_bytes(data), seed=make_small_file(tmp_path))   # 30 cases by default

    @pytest.mark.slow
    def test_fuzz_my_parser_many(tmp_path):
        fuzz(lambda data: parse_bytes(data), seed=make_small_file(tmp_path), examples=SLOW_EXAMPLES)

A parser that reads files gets the bytes through :func:`as_file`. Regression cases call
:func:`check_case` with the exact bytes. ``SONGKIT_FUZZ_EXAMPLES`` overrides the default count (e.g. 2000
for a long local run); cases are derandomized, so a failure repeats.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from songkit.core.errors import UserError

DEFAULT_EXAMPLES = int(os.environ.get("SONGKIT_FUZZ_EXAMPLES", "30"))
SLOW_EXAMPLES = int(os.environ.get("SONGKIT_FUZZ_SLOW_EXAMPLES", "1000"))
SECONDS = 5.0  # per case
MEMORY_MB = 1024  # extra address space a case may take (a damaged header must not allocate gigabytes)

# what a mutation inserts: huge and non-finite numbers, deep nesting, unicode, control bytes, long lines
INSERTS: list[bytes] = [
    b"99999999999999999999999999999999", b"-1", b"0", b"1e400", b"-1e400", b"nan", b"NaN", b"inf", b"-inf",
    b"Infinity", b"4294967295", b"18446744073709551616", b"[" * 5000, b"{\"a\":" * 3000, b"(" * 5000,
    "é€😀\u202e\u0301".encode(), b"\xff\xfe\x00\x00", b"\x00" * 16, b"\n", b"\r\n", b"x" * 100_000, b",,,,",
    b"\"", b"\\", b"%s%n", b"\xc3\x28",
]
OPS = ("flip", "truncate", "insert", "insert_line", "delete", "duplicate", "number", "overwrite")
_NUMBER = re.compile(rb"-?\d+(\.\d+)?")


class CaseTimeout(BaseException):
    """A case ran over its time limit (a BaseException, so a parser's ``except Exception`` cannot hide it)."""


def mutate(seed: bytes, ops: list[tuple[str, int, int, bytes]]) -> bytes:
    """Apply mutation operations ``(kind, position, byte, inserted)`` to ``seed`` in order."""
    data = bytearray(seed)
    for kind, pos, byte, ins in ops:
        at = pos % (len(data) + 1)
        if kind == "flip" and data:
            data[at % len(data)] ^= 1 << (byte % 8)
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = ins
        elif kind == "insert_line":
            line_start = data.rfind(b"\n", 0, at) + 1
            data[line_start:line_start] = ins + b"\n"
        elif kind == "delete":
            del data[at:at + 1 + byte]
        elif kind == "duplicate":
            data[at:at] = data[at:at + 1 + byte * 16]
        elif kind == "number":
            numbers = list(_NUMBER.finditer(bytes(data)))
            if numbers:
                m = numbers[pos % len(numbers)]
                data[m.start():m.end()] = ins if ins[:1].isdigit() or ins[:1] in b"-ni[{" else b"1e400"
        elif kind == "overwrite":
            data[at:at + len(ins)] = ins
    return bytes(data)


def mutations(seed: bytes, max_ops: int = 4) -> st.SearchStrategy[bytes]:
    """Hypothesis strategy: ``seed`` with 1..max_ops mutations (byte flips, truncation, inserted bytes and
    lines, deleted and duplicated spans, numbers replaced by huge or non-finite ones, overwrites)."""
    op = st.tuples(st.sampled_from(OPS), st.integers(0, 2**31), st.integers(0, 255),
                   st.one_of(st.sampled_from(INSERTS), st.binary(min_size=1, max_size=64)))
    return st.lists(op, min_size=1, max_size=max_ops).map(lambda ops: mutate(seed, ops))


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread after ``seconds`` (SIGALRM timer). The alarm repeats
    every 0.25 s until the block ends, and the block fails afterwards anyway: a raise that lands where Python
    ignores exceptions (a gc callback, a ``__del__``) cannot hide a slow case."""
    fired = []

    def on_alarm(signum, frame):
        fired.append(True)
        raise CaseTimeout(f"over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.25)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if fired:
        raise CaseTimeout(f"over {seconds:g} s (the alarm was swallowed)")


def _data_bytes() -> int:
    """This process's data segment now (VmData: what RLIMIT_DATA counts), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def memory_limit(extra_mb: float) -> Iterator[None]:
    """Let the process take at most ``extra_mb`` more private memory (RLIMIT_DATA): an allocation past it
    fails (MemoryError / torch RuntimeError) instead of taking the machine. No-op where unsupported."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        limit = _data_bytes() + int(extra_mb * 2**20)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def peak_rss_mb() -> float:
    """The process's peak resident set so far (MB, from getrusage)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_case(parse: Callable[[bytes], Any], data: bytes, seconds: float = SECONDS,
               memory_mb: float = MEMORY_MB) -> Any:
    """Run ``parse(data)``: it must return, or raise a UserError whose message is one line, within
    ``seconds`` and ``memory_mb`` of extra memory. Anything else fails the test with the case's bytes.
    Returns what ``parse`` returned (None after a UserError)."""
    try:
        with memory_limit(memory_mb), time_limit(seconds):
            return parse(data)
    except UserError as e:
        message = e.format_message()
        assert "\n" not in message.strip() and message.strip(), f"not one line: {message!r} (case {data[:200]!r})"
        assert "Traceback" not in message, message
        return None
    except CaseTimeout as e:
        raise AssertionError(f"{e} on case {data[:200]!r} ({len(data)} bytes)") from None
    except BaseException as e:  # noqa: B036 - every other outcome is the bug the fuzzing looks for
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-6:])
        raise AssertionError(f"{type(e).__name__}: {e} on case {data[:200]!r} ({len(data)} bytes)\n{tb}") from None


def fuzz(parse: Callable[[bytes], Any], seed: bytes, examples: int | None = None, seconds: float = SECONDS,
         memory_mb: float = MEMORY_MB, max_ops: int = 4) -> None:
    """Check ``parse`` on ``examples`` mutations of ``seed`` (default 30, derandomized) with :func:`check_case`."""
    @settings(max_examples=examples or DEFAULT_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutations(seed, max_ops))
    def run(data: bytes) -> None:
        check_case(parse, data, seconds, memory_mb)

    run()


def as_file(parse_path: Callable[[Path], Any], suffix: str = "") -> Callable[[bytes], Any]:
    """Adapt a parser of files to bytes: each case is written to a temporary file named ``case<suffix>``."""
    def parse(data: bytes) -> Any:
        with tempfile.TemporaryDirectory(prefix="songkit-fuzz-") as tmp:
            path = Path(tmp) / f"case{suffix}"
            path.write_bytes(data)
            return parse_path(path)

    return parse
