"""Token datasets (issue 13): `songkit tokenize ... --dataset DIR`, read back memory-mapped, exact round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_tokenize import POP909, make_midi
from typer.testing import CliRunner

from songkit.cli import app
from songkit.tasks.tokenize import codec, readers, shards
from songkit.tasks.tokenize.quantise import differences, quantise, to_music

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def roundtrip_dataset(ds: shards.TokenDataset, sources: dict[str, Path], tmp: Path) -> int:
    """Decode every sequence of a dataset to MIDI, read it again: equal to the quantised source."""
    checked = 0
    for i, entry in enumerate(ds.entries):
        original = quantise(readers.read_music(sources[entry["source"]]), ds.vocab)
        q = codec.decode(np.asarray(ds.sequence(i)), ds.vocab, ds.encoding, entry["tracks"],
                         entry["ticks_per_quarter"])
        readers.write_midi(to_music(q, ds.vocab), tmp / "rt.mid")
        again = quantise(readers.read_music(tmp / "rt.mid"), ds.vocab)
        assert differences(original, again) == [], (entry["source"], ds.encoding)
        assert np.array_equal(codec.encode(again, ds.vocab, ds.encoding), ds.sequence(i))
        checked += 1
    return checked


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "songs"
    d.mkdir()
    for k in range(4):
        make_midi(d / f"s{k}.mid", tracks=1 + k % 3, seed=k, n=30, ts=((0, 4, 4), (12 * 480, 3, 4)))
    return d


@pytest.mark.parametrize("encoding", ["cp", "nb", "remi"])
def test_dataset_roundtrip_exact(folder, tmp_path, encoding):
    r = run("tokenize", folder, "-e", encoding, "--dataset", tmp_path / "ds", "--jobs", "1")
    assert r.exit_code == 0, r.output
    ds = shards.open_dataset(tmp_path / "ds")
    assert ds.encoding == encoding and len(ds) == 4
    assert ds.arrays[0].dtype == np.uint16 and isinstance(ds.arrays[0], np.memmap)
    files = sorted(folder.glob("*.mid"))
    assert roundtrip_dataset(ds, {str(f): f for f in files}, tmp_path) == 4
    # the same ids as the JSON-lines path
    r = run("tokenize", folder, "-e", encoding, "--ids")
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    assert all(rec["tokens"] == ds.sequence(i).tolist() for i, rec in enumerate(recs))
    head = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert head["vocab_hash"] == ds.vocab.hash == json.loads((tmp_path / "ds" / "vocab.json").read_text())["hash"]


def test_same_bytes_whatever_jobs(tmp_path, monkeypatch):
    """Files go to shards by position, so --jobs 1 and --jobs 2 write the same bytes (3 shards here)."""
    monkeypatch.setattr(shards, "FILES_PER_SHARD", 3)
    d = tmp_path / "songs"
    d.mkdir()
    for k in range(8):
        make_midi(d / f"s{k}.mid", tracks=2, seed=k, n=10)
    for jobs in ("1", "2"):
        r = run("tokenize", d, "-e", "nb", "--dataset", tmp_path / f"j{jobs}", "--jobs", jobs)
        assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "j1").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "j2").iterdir())
    assert [n for n in names if n.endswith(".npy")] == ["shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]
    for n in names:
        assert (tmp_path / "j1" / n).read_bytes() == (tmp_path / "j2" / n).read_bytes(), n
    assert len(shards.open_dataset(tmp_path / "j2")) == 8


def test_bad_file_stops_unless_skip_bad(folder, tmp_path):
    (folder / "zz.mid").write_bytes(b"MThd\x00\x00")
    r = run("tokenize", folder, "--dataset", tmp_path / "ds")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "zz.mid: not a readable MIDI file" in r.stderr
    assert not (tmp_path / "ds" / "dataset.json").exists()  # no folder that reads as a dataset
    with pytest.raises(Exception, match="not a token dataset"):
        shards.open_dataset(tmp_path / "ds")
    r = run("-q", "tokenize", folder, "--dataset", tmp_path / "ds")
    assert r.exit_code == 2 and "not empty; --force" in r.stderr
    r = run("-q", "tokenize", folder, "--dataset", tmp_path / "ds", "--skip-bad", "--force")
    assert r.exit_code == 0 and "skipped 1 file(s)" in r.stderr
    assert len(shards.open_dataset(tmp_path / "ds")) == 4


def test_damaged_dataset_is_one_line(folder, tmp_path):
    run("tokenize", folder, "-e", "cp", "--dataset", tmp_path / "ds")
    npy = tmp_path / "ds" / "shard-00000.npy"
    arr = np.load(npy)
    arr[3, 6] = 60000  # a pitch id outside the vocabulary
    np.save(npy, arr)
    r = run("train", "tokenize", "--data", tmp_path / "ds", "--out", tmp_path / "run")
    assert r.exit_code == 2 and "shard-00000.npy: ids outside the vocabulary" in r.stderr


def test_train_and_eval_from_a_dataset_folder(folder, tmp_path):
    r = run("tokenize", folder, "-e", "cp", "--dataset", tmp_path / "ds")
    assert r.exit_code == 0, r.output
    tiny = ("--d-model", "16", "--embed-dim", "8", "--seq-len", "16", "--num-layers", "1", "--device", "cpu",
            "--workers", "0")
    # the dataset's encoding (cp) wins over the default (nb); a typed one that differs is refused
    r = run("train", "tokenize", "--data", tmp_path / "ds", "--epochs", "1", "--max-steps-per-epoch", "2",
            "--out", tmp_path / "run", *tiny)
    assert r.exit_code == 0, r.output
    r = run("eval", "tokenize", "-c", tmp_path / "run", "--data", tmp_path / "ds", "--split", "all", "--json",
            "--device", "cpu")
    assert r.exit_code == 0, r.output
    from_ds = json.loads(r.stdout)
    r = run("eval", "tokenize", "-c", tmp_path / "run", "--data", folder, "--split", "all", "--json",
            "--device", "cpu")
    assert json.loads(r.stdout)["val_loss"] == pytest.approx(from_ds["val_loss"])  # same songs, same ids
    assert from_ds["encoding"] == "cp" and from_ds["songs"] == 4


def test_typed_encoding_other_than_the_datasets_is_refused(folder, tmp_path):
    run("tokenize", folder, "-e", "cp", "--dataset", tmp_path / "ds")
    r = run("train", "tokenize", "--data", tmp_path / "ds", "--encoding", "nb", "--epochs", "1",
            "--max-steps-per-epoch", "1", "--d-model", "16", "--device", "cpu", "--out", tmp_path / "run")
    assert r.exit_code == 2 and "holds cp tokens" in r.stderr


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.skipif(not POP909.is_dir(), reason="needs ../shared/datasets/pop909")
@pytest.mark.parametrize("encoding", ["cp", "nb", "remi"])
def test_pop909_roundtrip_through_a_dataset(tmp_path, encoding):
    """Every shared POP909 song, encoded to a dataset and decoded from it, round-trips exactly."""
    files = sorted(p / f"{p.name}.mid" for p in POP909.iterdir() if (p / f"{p.name}.mid").is_file())
    r = run("-q", "tokenize", *files, "-e", encoding, "--dataset", tmp_path / "ds")
    assert r.exit_code == 0, r.output
    ds = shards.open_dataset(tmp_path / "ds")
    assert len(files) == 303 and len(ds) == 303
    assert roundtrip_dataset(ds, {str(f): f for f in files}, tmp_path) == 303
