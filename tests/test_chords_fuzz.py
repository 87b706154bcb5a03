"""Hostile chord files (issue 14): mutated Billboard chroma CSVs and .lab files are read, or refused with one
UserError line, within the fuzz helper's time and memory limits; the issue's cases as regression tests."""

import numpy as np
import pytest
from fuzz import SLOW_EXAMPLES, as_file, check_case, fuzz

from songkit.core.errors import UserError
from songkit.tasks.chords.data import read_bothchroma
from songkit.tasks.chords.labels import read_lab


def _csv() -> bytes:
    rng = np.random.default_rng(0)
    rows = [",".join(["song.wav", f"{t * 0.0464:.6f}", *(f"{v:.6f}" for v in rng.random(24))]) for t in range(40)]
    return ("\n".join(rows) + "\n").encode()


LAB = b"0.000000 1.500000 N\n1.500000 3.000000 C:maj\n3.000000 4.500000 A:min7\n4.500000 6.000000 G:7(b9)/3\n"


def test_seed_files_read():
    times, chroma = read_bothchroma_bytes(_csv())
    assert chroma.shape == (40, 24) and np.isclose(times[1], 0.0464)
    assert len(read_lab_bytes(LAB).labels) == 4


def read_bothchroma_bytes(data):
    return as_file(read_bothchroma, ".csv")(data)


def read_lab_bytes(data):
    return as_file(read_lab, ".lab")(data)


def test_fuzz_billboard_csv():
    fuzz(read_bothchroma_bytes, seed=_csv())


def test_fuzz_lab():
    fuzz(read_lab_bytes, seed=LAB)


@pytest.mark.slow
def test_fuzz_billboard_csv_many():
    fuzz(read_bothchroma_bytes, seed=_csv(), examples=SLOW_EXAMPLES)


@pytest.mark.slow
def test_fuzz_lab_many():
    fuzz(read_lab_bytes, seed=LAB, examples=SLOW_EXAMPLES)


@pytest.mark.parametrize("value", ["inf", "1e400", "nan"])
def test_non_finite_chroma_is_refused_with_its_line(value):
    lines = _csv().decode().splitlines()
    cells = lines[2].split(",")
    cells[5] = value
    lines[2] = ",".join(cells)
    data = ("\n".join(lines) + "\n").encode()
    with pytest.raises(UserError, match=r"case\.csv:3: chroma contains NaN, infinite"):
        read_bothchroma_bytes(data)


def test_backtracking_label_finishes_at_once():
    check_case(read_lab_bytes, b"0 1 C:maj(" + b"1," * 20000 + b"1x\n", seconds=1.0)
