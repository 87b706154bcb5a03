"""Hostile token files and MIDI inputs (issue 14): one line and exit 2, never a traceback, a hang or gigabytes.

Fuzz tests (hypothesis) start from small real files the tests make and mutate them; the default run
tries a bounded number of cases, the slow run many more. Each case of the issue is a regression test.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tokenize import make_midi
from typer.testing import CliRunner

from songkit.cli import app

runner = CliRunner()
FAST = settings(max_examples=15, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SLOW = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SECONDS = 5.0  # per case
PEAK_BYTES = 300 * 2**20  # traced allocations per case


@pytest.fixture(autouse=True)
def _command_built_once(monkeypatch):
    """Typer rebuilds the whole command tree on every invoke (0.5 s here): build it once for the fuzzing."""
    import typer.main
    import typer.testing

    global _COMMAND
    if _COMMAND is None:
        _COMMAND = typer.main.get_command(app)
    monkeypatch.setattr(typer.testing, "_get_command", lambda _app: _COMMAND)


_COMMAND = None


def invoke(*args, input=None):
    """Run the CLI in-process; assert the contract: exit 0, or exit 2 with one line; in time, in memory,
    and without numpy warnings."""
    tracemalloc.start()
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning is a failure
        r = runner.invoke(app, [str(a) for a in args], input=input)
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code in (0, 2), (r.exit_code, r.output[-300:])
    if r.exit_code == 2:
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("songkit: error: "), r.stderr[-500:]
    assert seconds < SECONDS and peak < PEAK_BYTES, (seconds, peak)
    return r


@pytest.fixture(scope="module")
def token_lines(tmp_path_factory):
    """Token JSONL lines (strings and ids, every encoding) of a small two-track file."""
    tmp = tmp_path_factory.mktemp("tok")
    a = make_midi(tmp / "a.mid", tracks=2, n=12, ts=((0, 4, 4), (8 * 480, 3, 4)), tempos=((0, 90.0), (960, 140.0)))
    lines = []
    for enc in ("cp", "nb", "remi"):
        for ids in ((), ("--ids",)):
            r = runner.invoke(app, ["tokenize", str(a), "-e", enc, *ids])
            assert r.exit_code == 0, r.output
            lines.append(r.stdout.strip())
    return lines


def decode_line(tmp_path, line: str | bytes):
    path = tmp_path / "t.jsonl"
    path.write_bytes(line if isinstance(line, bytes) else line.encode())
    return invoke("tokenize", "--decode", path, "--out", tmp_path / "dec", "--force")


# ---------------------------------------------------------------- the issue's cases, one by one


def _record(token_lines, k=1):
    return json.loads(token_lines[k])  # cp ids


CASES = {
    "id too large for C (OverflowError)": lambda r: r["tokens"][0].__setitem__(0, 10**30),
    "negative id": lambda r: r["tokens"][0].__setitem__(1, -1),
    "ticks per quarter too large (OverflowError)": lambda r: r.__setitem__("ticks_per_quarter", 10**12),
    "ticks per quarter 0": lambda r: r.__setitem__("ticks_per_quarter", 0),
    "tempo_bins 0 (ZeroDivisionError)": lambda r: r["config"].__setitem__("tempo_bins", 0),
    "tempo_max huge (OverflowError)": lambda r: r["config"].__setitem__("tempo_max", 10**40),
    "max_bar_quarters huge (MemoryError)": lambda r: r["config"].__setitem__("max_bar_quarters", 10**9),
    "max_tracks huge (MemoryError)": lambda r: r["config"].__setitem__("max_tracks", 10**9),
    "velocity_bins huge (hang)": lambda r: r["config"].__setitem__("velocity_bins", 10**8),
    "config field a string": lambda r: r["config"].__setitem__("grid", "x"),
    "config field a float": lambda r: r["config"].__setitem__("grid", 4.5),
    "config field unknown": lambda r: r["config"].__setitem__("bogus", 1),
    "config not an object": lambda r: r.__setitem__("config", [1, 2]),
    "tracks not a list (TypeError)": lambda r: r.__setitem__("tracks", 7),
    "track not an object (AttributeError)": lambda r: r.__setitem__("tracks", [1, 2]),
    "track program a string": lambda r: r["tracks"][0].__setitem__("program", "piano"),
    "track program 1000": lambda r: r["tracks"][0].__setitem__("program", 1000),
    "track name an object": lambda r: r["tracks"][0].__setitem__("name", {"a": 1}),
    "more tracks than the vocabulary": lambda r: r.__setitem__("tracks", [{}] * 40),
    "vocabulary hash of another config": lambda r: r.__setitem__("vocab_hash", "0123456789abcdef"),
    "encoding unknown": lambda r: r.__setitem__("encoding", "midi"),
    "tokens not a list": lambda r: r.__setitem__("tokens", "abc"),
    "group of 8": lambda r: r["tokens"].__setitem__(0, r["tokens"][0][:8]),
    "id a float": lambda r: r["tokens"][0].__setitem__(0, 1.5),
    "id a boolean": lambda r: r["tokens"][0].__setitem__(0, True),
    "id NaN": lambda r: r["tokens"][0].__setitem__(0, float("nan")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_issue_cases_are_one_line(tmp_path, token_lines, case):
    rec = _record(token_lines)
    CASES[case](rec)
    r = decode_line(tmp_path, json.dumps(rec))
    assert r.exit_code == 2 and "t.jsonl:1: " in r.stderr, (case, r.stderr)


def test_deeply_nested_json_is_one_line(tmp_path):
    r = decode_line(tmp_path, "[" * 100_000 + "]" * 100_000)
    assert r.exit_code == 2 and "nested too deeply" in r.stderr


def test_not_utf8_token_file(tmp_path):
    r = decode_line(tmp_path, b'{"encoding": "cp", "tokens": "\xff\xfe"}')
    assert r.exit_code == 2 and "UTF-8" in r.stderr


def test_piece_too_long_for_midi(tmp_path, token_lines):
    """NB bar jumps at the largest bar and resolution run past int32 ticks: refused, not wrapped."""
    rec = json.loads(token_lines[3])  # nb ids
    rec["config"]["max_bar_quarters"] = 32
    rec["config"]["max_bar_skip"] = 64
    from songkit.tasks.tokenize.constants import TokenizerConfig, Vocabulary

    v = Vocabulary(TokenizerConfig(**rec["config"]))
    rec["vocab_hash"], rec["ticks_per_quarter"] = v.hash, 32760  # a multiple of the grid: kept
    jump = [v.index["bar"]["Bar+64"], 2, 1, v.index["timesig"]["TS_32/4"], 1, 0, 0, 0, 0]
    note = [v.index["bar"]["Same"], 2, 1, 1, 1, 1, 61, 4, 30]
    rec["tokens"] = [jump] * 40 + [note]
    r = decode_line(tmp_path, json.dumps(rec))
    assert r.exit_code == 2 and "too long for a MIDI file" in r.stderr


def test_non_utf8_chord_annotation_beside_midi(tmp_path):
    a = make_midi(tmp_path / "001.mid", n=10)
    (tmp_path / "chord_midi.txt").write_bytes(b"0.0 1.0 C:maj\n1.0 2.0 \xe9\xff:min\n")
    r = invoke("tokenize", a)
    assert r.exit_code == 2 and "chord_midi.txt: not UTF-8 text" in r.stderr
    (tmp_path / "chord_midi.txt").write_bytes(b"0.0 1.0 C:maj\nnan 2.0 A:min\n")
    r = invoke("tokenize", a)
    assert r.exit_code == 2 and "chord_midi.txt:2: bad start time" in r.stderr


def _midi_with_time_signature_byte(tmp_path, den_byte: int, num: int = 3):
    import symusic

    s = symusic.Score(480)
    tr = symusic.Track(name="a", program=0, is_drum=False)
    tr.notes.append(symusic.Note(0, 480, 60, 80))
    tr.notes.append(symusic.Note(2400, 480, 62, 80))
    s.tracks.append(tr)
    s.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    s.time_signatures.append(symusic.TimeSignature(1920, 3, 4))
    b = bytearray(s.dumps_midi())
    i = b.find(b"\xff\x58\x04", b.find(b"\xff\x58") + 1)
    b[i + 3], b[i + 4] = num, den_byte
    (tmp_path / "ts.mid").write_bytes(bytes(b))
    return tmp_path / "ts.mid"


@pytest.mark.parametrize("den_byte,num", [(8, 3), (200, 3), (2, 0)])
def test_time_signature_denominator_zero_is_an_error(tmp_path, den_byte, num):
    """A denominator byte over 7 wraps to 0 in the reader (and a numerator may be 0): one line, no warnings."""
    r = invoke("tokenize", _midi_with_time_signature_byte(tmp_path, den_byte, num))
    assert r.exit_code == 2 and "is not a time signature" in r.stderr


# ---------------------------------------------------------------- fuzzing


def _mutate(data: bytes, kind: int, pos: int, value: int) -> bytes:
    if not data:
        return data
    pos %= len(data)
    if kind == 0:  # flip a byte
        return data[:pos] + bytes([data[pos] ^ (value % 255 + 1)]) + data[pos + 1:]
    if kind == 1:  # truncate
        return data[:pos]
    if kind == 2:  # insert a byte
        return data[:pos] + bytes([value % 256]) + data[pos:]
    return data[:pos] + data[pos + 1:]  # delete a byte


# JSON values that broke parsers: huge numbers, non-finite, deep nesting, unicode, wrong types
HOSTILE = ["1e400", "-1", "0", "99999999999999999999999", "NaN", "Infinity", "null", "true", '"x"', "[]", "{}",
           "[[[[[[[[]]]]]]]]", '"\\ud800"', "3.5", "2147483648", "65536"]


def _replace_number(text: str, which: int, value: str) -> str:
    """Replace the ``which``-th number in a JSON text with ``value``."""
    import re

    spots = [m.span() for m in re.finditer(r"-?\d+", text)]
    if not spots:
        return text
    a, b = spots[which % len(spots)]
    return text[:a] + value + text[b:]


def _fuzz_tokens(tmp_path, token_lines, k, kind, pos, value, hostile):
    line = token_lines[k % len(token_lines)]
    if kind < 4:
        data = _mutate(line.encode(), kind, pos, value)
    else:
        data = _replace_number(line, pos, HOSTILE[hostile % len(HOSTILE)]).encode()
    decode_line(tmp_path, data)


@FAST
@given(k=st.integers(0, 5), kind=st.integers(0, 6), pos=st.integers(0, 10**6), value=st.integers(0, 255),
       hostile=st.integers(0, 100))
def test_fuzz_token_jsonl(tmp_path, token_lines, k, kind, pos, value, hostile):
    _fuzz_tokens(tmp_path, token_lines, k, kind, pos, value, hostile)


@pytest.mark.slow
@SLOW
@given(k=st.integers(0, 5), kind=st.integers(0, 6), pos=st.integers(0, 10**6), value=st.integers(0, 255),
       hostile=st.integers(0, 100))
def test_fuzz_token_jsonl_long(tmp_path, token_lines, k, kind, pos, value, hostile):
    _fuzz_tokens(tmp_path, token_lines, k, kind, pos, value, hostile)


@pytest.fixture(scope="module")
def midi_seed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("midi")
    path = make_midi(tmp / "a.mid", tracks=2, n=8, ts=((0, 4, 4), (1920, 6, 8)), tempos=((0, 90.0), (960, 150.0)))
    return path.read_bytes()


def _fuzz_midi(tmp_path, midi_seed, kind, pos, value, chords):
    (tmp_path / "x.mid").write_bytes(_mutate(midi_seed, kind % 4, pos, value))
    if chords:  # an annotation beside the file, itself mutated
        (tmp_path / "chord_midi.txt").write_bytes(_mutate(b"0.0 1.5 C:maj\n1.5 3.0 A:min7/b3\n", kind % 4, pos, value))
    invoke("tokenize", tmp_path / "x.mid", "-e", ("cp", "nb", "remi")[value % 3])


@FAST
@given(kind=st.integers(0, 3), pos=st.integers(0, 10**6), value=st.integers(0, 255), chords=st.booleans())
def test_fuzz_midi(tmp_path, midi_seed, kind, pos, value, chords):
    _fuzz_midi(tmp_path, midi_seed, kind, pos, value, chords)


@pytest.mark.slow
@SLOW
@given(kind=st.integers(0, 3), pos=st.integers(0, 10**6), value=st.integers(0, 255), chords=st.booleans())
def test_fuzz_midi_long(tmp_path, midi_seed, kind, pos, value, chords):
    _fuzz_midi(tmp_path, midi_seed, kind, pos, value, chords)


# ---------------------------------------------------------------- the shared fuzz helper (time and memory limits)


def _decode_bytes(data: bytes):
    from songkit.tasks.tokenize.infer import decode_lines
    from songkit.tasks.tokenize.readers import midi_bytes

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # the CLI refuses it in one line (test_not_utf8_token_file)
    for _, music in decode_lines(text.splitlines(), "t.jsonl"):
        midi_bytes(music)


def _tokenize_bytes(data: bytes):
    from songkit.tasks.tokenize.codec import encode
    from songkit.tasks.tokenize.constants import TokenizerConfig, Vocabulary
    from songkit.tasks.tokenize.quantise import quantise
    from songkit.tasks.tokenize.readers import read_bytes

    vocab = Vocabulary(TokenizerConfig())
    for music in read_bytes(data, "x.mid", "midi"):
        encode(quantise(music, vocab), vocab, "nb")


def test_fuzz_token_records_with_limits(token_lines):
    from fuzz import fuzz

    fuzz(_decode_bytes, seed=(token_lines[1] + "\n" + token_lines[2]).encode())


def test_fuzz_midi_with_limits(midi_seed):
    from fuzz import fuzz

    fuzz(_tokenize_bytes, seed=midi_seed)


@pytest.mark.slow
def test_fuzz_with_limits_long(token_lines, midi_seed):
    from fuzz import SLOW_EXAMPLES, fuzz

    for k in range(len(token_lines)):
        fuzz(_decode_bytes, seed=token_lines[k].encode(), examples=SLOW_EXAMPLES // 6)
    fuzz(_tokenize_bytes, seed=midi_seed, examples=SLOW_EXAMPLES)


# ---------------------------------------------------------------- damaged token checkpoints (one loader)


def _damaged_checkpoint(tmp_path, change) -> str:
    """The shipped checkpoint, changed by ``change(parts)`` and saved again (a valid archive and checksum)."""
    from songkit.core.checkpoint import default_checkpoint, load_checkpoint, save_checkpoint

    ck = load_checkpoint(default_checkpoint("tokenize"), task="tokenize")
    parts = {"task": "tokenize", "model": ck.model, "config": dict(ck.config), "vocab": ck.vocab,
             "state_dict": dict(ck.state_dict), "extra": ck.extra}
    change(parts)
    save_checkpoint(tmp_path / "bad.ckpt", **parts)
    return tmp_path / "bad.ckpt"


CHECKPOINT_CASES = {
    "weights of another shape": lambda p: p["state_dict"].__setitem__("inp.weight",
                                                                      p["state_dict"]["inp.weight"][:, :3]),
    "vocabulary not an object": lambda p: p.__setitem__("vocab", "nb"),
    "vocabulary config out of bounds": lambda p: p.__setitem__("vocab", {**p["vocab"], "config": {
        **p["vocab"]["config"], "velocity_bins": 10**8}}),
    "vocabulary hash edited": lambda p: p.__setitem__("vocab", {**p["vocab"], "hash": "0" * 16}),
    "dropout 2": lambda p: p["config"].__setitem__("dropout", 2.0),
    "num_layers a string": lambda p: p["config"].__setitem__("num_layers", "x"),
    "unknown config key": lambda p: p["config"].__setitem__("bogus", 1),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_damaged_token_checkpoint_is_one_line(tmp_path, case):
    bad = _damaged_checkpoint(tmp_path, CHECKPOINT_CASES[case])
    (tmp_path / "d").mkdir()
    make_midi(tmp_path / "d" / "a.mid", n=10)
    r = runner.invoke(app, ["eval", "tokenize", "-c", str(bad), "--data", str(tmp_path / "d"), "--split", "all",
                            "--device", "cpu"])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "bad.ckpt: " in lines[0], (case, r.stderr)
