"""Hostile NSynth ``examples.json`` files (issue 14): every mutation ends in a result or one line naming the
file and the entry, never a traceback or a hang. Seeded from a small examples.json the test makes; a bounded
number of cases by default, more under ``-m slow``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_instrument_data import make_nsynth
from typer.testing import CliRunner

from songkit.cli import app
from songkit.core.errors import UserError
from songkit.tasks.instrument.nsynth import read_examples

FIELDS = ["instrument_family", "pitch", "velocity", "note_str", "instrument_str", "soundfont", "sample_rate"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def seed_split(tmp_path_factory) -> Path:
    split = make_nsynth(tmp_path_factory.mktemp("fuzz"), {"test": 2}) / "nsynth-test"
    _pristine(split)  # the examples.json as made, before any test writes over it
    return split


def outcome(split: Path, text: bytes) -> str:
    """Write ``text`` as the split's examples.json and read it: "ok" or the one-line error."""
    (split / "examples.json").write_bytes(text)
    t0 = time.perf_counter()
    try:
        read_examples(split, skip_bad=False)
        result = "ok"
    except UserError as e:
        assert "\n" not in e.message and str(split / "examples.json") in e.message, e.message
        result = e.message
    assert time.perf_counter() - t0 < 2.0
    return result


def mutate_field(original: dict, data, value) -> dict:
    mutated = json.loads(json.dumps(original))
    key = data.draw(st.sampled_from(sorted(mutated)))
    mutated[key][data.draw(st.sampled_from(FIELDS))] = value
    return mutated, key


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data(), value=json_values)
def test_a_field_of_any_type_or_range_is_one_line_naming_the_entry(seed_split, data, value):
    mutated, key = mutate_field(_pristine(seed_split), data, value)
    result = outcome(seed_split, json.dumps(mutated).encode())
    if result != "ok":
        assert json.dumps(key) in result or "does not exist" in result


@FUZZ
@given(data=st.data())
def test_byte_mutations_never_raise_anything_else(seed_split, data):
    byte_mutation_case(seed_split, data)


@pytest.mark.slow
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=json_values)
def test_fuzz_long_run(seed_split, data, value):
    byte_mutation_case(seed_split, data)
    mutated, _ = mutate_field(_pristine(seed_split), data, value)
    outcome(seed_split, json.dumps(mutated).encode())


def byte_mutation_case(seed_split: Path, data) -> None:
    """Flip bits, cut, or insert hostile bytes (deep nesting, huge numbers, bad UTF-8) into the file."""
    raw = bytearray(json.dumps(_pristine(seed_split)).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, len(raw) - 1))
        if kind == "flip":
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del raw[at:]
            if not raw:
                break
        else:
            raw[at:at] = data.draw(st.sampled_from([b"[" * 5000, b"1e400", b"-0", b"\xff\xfe", b'"\\u0000"',
                                                    b"99999999999999999999999999", b"{", b"NaN", b"\xc3\xa9"]))
    outcome(seed_split, bytes(raw))


_PRISTINE: dict = {}


def _pristine(split: Path) -> dict:
    if split not in _PRISTINE:
        _PRISTINE[split] = json.loads((split / "examples.json").read_text())
    return _PRISTINE[split]


@pytest.mark.parametrize("value, message", [
    ("5", "has instrument_family \"5\", expected an integer"),
    (True, "has instrument_family True, expected an integer"),
    (11, "has instrument_family 11 outside 0..10"),
    (10**20, "has instrument_family 100000000000000000000 outside 0..10"),
    ([[[[1]]]], "has instrument_family an array, expected an integer"),
])
def test_regressions_family_of_the_wrong_type_or_range(seed_split, value, message):
    original = _pristine(seed_split)
    key = min(original)
    mutated = json.loads(json.dumps(original))
    mutated[key]["instrument_family"] = value
    result = outcome(seed_split, json.dumps(mutated).encode())
    assert f"entry {json.dumps(key)} {message}" in result


def test_regressions_deep_nesting_pitch_and_note_names(seed_split):
    assert "nested too deeply" in outcome(seed_split, b"[" * 100000 + b"]" * 100000)
    original = _pristine(seed_split)
    key = min(original)
    for field, value, message in [("pitch", 128, "pitch 128 outside 0..127"), ("pitch", 1.5, "pitch 1.5, expected"),
                                  ("note_str", "../../etc/passwd", "not a file name"),
                                  ("note_str", "a\nb", "not a file name")]:
        mutated = json.loads(json.dumps(original))
        mutated[key][field] = value
        assert message in outcome(seed_split, json.dumps(mutated).encode())


def test_through_the_cli_one_line_exit_2(seed_split, tmp_path):
    from songkit.core.checkpoint import save_checkpoint
    from songkit.tasks.instrument.constants import FAMILIES
    from songkit.tasks.instrument.model import build_model

    model = build_model("linear")  # a tiny model through the normal loader: no training needed
    ck = tmp_path / "tiny.ckpt"
    save_checkpoint(ck, task="instrument", model="linear", config=model.cfg, vocab=FAMILIES,
                    state_dict=model.state_dict())
    original = _pristine(seed_split)
    mutated = json.loads(json.dumps(original))
    mutated[sorted(original)[1]]["pitch"] = "high"
    (seed_split / "examples.json").write_text(json.dumps(mutated))
    r = CliRunner().invoke(app, ["eval", "instrument", "-c", str(ck), "--data", str(seed_split)])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("songkit: error: ") and '"high", expected an integer' in r.stderr
    r = CliRunner().invoke(app, ["eval", "instrument", "-c", str(ck), "--data", str(seed_split), "--skip-bad",
                                 "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["notes"] == 5 and json.loads(r.stdout)["skipped"] == 1
