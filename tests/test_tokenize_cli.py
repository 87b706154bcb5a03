"""Tokenize from the command line: JSON lines, ids with a saved vocabulary, decode, training, bad inputs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from songkit.cli import app
from test_tokenize import make_midi

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture
def songs(tmp_path):
    """Three one-track songs in a folder (names chosen so that one falls in the validation split)."""
    folder = tmp_path / "data"
    folder.mkdir()
    for k in range(3):
        make_midi(folder / f"song{k}.mid", tracks=1, seed=k, n=40)
    return folder


TINY = ("--d-model", "16", "--embed-dim", "8", "--seq-len", "16", "--num-layers", "1")


def test_tokenize_decode_roundtrip_cli(tmp_path):
    a = make_midi(tmp_path / "a.mid", tracks=2, seed=1)
    b = make_midi(tmp_path / "b.mid", tracks=1, seed=2, ts=((0, 3, 4),))
    for enc in ("cp", "nb", "remi"):
        out = tmp_path / f"{enc}.jsonl"
        r = run("tokenize", a, b, "--encoding", enc, "--ids", "--vocab", tmp_path / "v.json", "--out", out)
        assert r.exit_code == 0, r.output
        recs = [json.loads(x) for x in out.read_text().splitlines()]
        assert [x["source"] for x in recs] == [str(a), str(b)] and recs[0]["encoding"] == enc
        assert isinstance(recs[0]["tokens"][0], int if enc == "remi" else list)
        r = run("tokenize", "--decode", out, "--out", tmp_path / enc, "--vocab", tmp_path / "v.json")
        assert r.exit_code == 0, r.output
        again = tmp_path / f"{enc}2.jsonl"
        r = run("tokenize", tmp_path / enc / "a.mid", tmp_path / enc / "b.mid", "-e", enc, "--ids",
                "--vocab", tmp_path / "v.json", "--out", again)
        assert r.exit_code == 0, r.output
        recs2 = [json.loads(x) for x in again.read_text().splitlines()]
        assert [x["tokens"] for x in recs2] == [x["tokens"] for x in recs]  # exact round trip through MIDI


def test_strings_to_stdout_and_decode(tmp_path):
    a = make_midi(tmp_path / "a.mid")
    r = run("tokenize", a, "-e", "nb", "--track", "1")
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout.splitlines()[0])
    assert rec["families"][0] == "bar" and rec["tokens"][0][0].startswith("Bar+")
    assert [t["index"] for t in rec["tracks"]] == [1]
    (tmp_path / "t.jsonl").write_text(r.stdout)
    r = run("tokenize", "--decode", tmp_path / "t.jsonl", "--out", tmp_path / "dec")
    assert r.exit_code == 0 and (tmp_path / "dec" / "a.mid").is_file()


def test_bad_inputs_exit_2_naming_the_file(tmp_path):
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    r = run("tokenize", tmp_path / "bad.mid")
    assert r.exit_code == 2 and "bad.mid" in r.output
    r = run("tokenize", tmp_path / "a.mid", "--encoding", "xyz")
    assert r.exit_code == 2
    a = make_midi(tmp_path / "a.mid")
    r = run("tokenize", a, "-e", "cp", "--out", tmp_path / "t.jsonl")
    rec = json.loads((tmp_path / "t.jsonl").read_text())
    rec["tokens"][1][1] = "Pos_30"  # past the end of a 4/4 bar
    (tmp_path / "t.jsonl").write_text(json.dumps(rec) + "\n")
    r = run("tokenize", "--decode", tmp_path / "t.jsonl", "--out", tmp_path / "dec")
    assert r.exit_code == 2 and "t.jsonl:1: group 1: position 30" in r.output
    r = run("tokenize", "--decode", a, "--out", tmp_path / "dec")
    assert r.exit_code == 2 and "a.mid" in r.output


def test_midi_on_stdin(tmp_path):
    a = make_midi(tmp_path / "a.mid")
    r = run("tokenize", "-", "-e", "cp", "--ids", input=a.read_bytes())
    assert r.exit_code == 0, r.output
    r2 = run("tokenize", a, "-e", "cp", "--ids")
    assert json.loads(r.stdout)["tokens"] == json.loads(r2.stdout)["tokens"]
    r = run("tokenize", "-", input=b"not midi")
    assert r.exit_code == 2 and "-: neither MIDI, ABC nor MusicXML" in r.output


def _weights(path):
    from songkit.core.checkpoint import load_checkpoint

    return load_checkpoint(path).state_dict


def test_same_seed_same_weights_in_process(songs, tmp_path):
    """`train tokenize ... --seed 3` twice: identical last.ckpt weights; another seed differs."""
    import torch

    base = ("train", "tokenize", "--data", songs, "--epochs", "1", "--max-steps-per-epoch", "2", "--batch-size",
            "4", "--device", "cpu", "--workers", "0", *TINY)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        r = run(*base, "--seed", seed, "--out", tmp_path / name)
        assert r.exit_code == 0, r.output
    a, b, c = (_weights(tmp_path / k / "last.ckpt") for k in "abc")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_train_then_eval_cli(songs, tmp_path):
    r = run("train", "tokenize", "--data", songs, "--encoding", "cp", "--model", "linear", "--epochs", "1",
            "--max-steps-per-epoch", "2", "--batch-size", "2", "--loss", "focal", "--device", "cpu", "--workers", "0",
            "--out", tmp_path / "run", *TINY)
    assert r.exit_code == 0, r.output
    r = run("eval", "tokenize", "-c", tmp_path / "run", "--data", songs, "--split", "all", "--json",
            "--device", "cpu")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["encoding"] == "cp" and res["songs"] == 3 and 0 <= res["val_acc"] <= 1 and "acc_pitch" in res
    r = run("eval", "tokenize", "-c", tmp_path / "run", "--data", songs, "--split", "val")
    assert r.exit_code == 2 and "spelled valid" in r.output
    r = run("train", "tokenize", "--data", songs, "--encoding", "remi", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "cp or nb" in r.output


def test_smoke_subprocess_same_seed(cli, songs, tmp_path):
    """The issue's command as a user runs it (default workers) and in-process (--workers 0): the same
    seed gives identical last.ckpt weights."""
    import torch

    args = ("train", "tokenize", "--data", songs, "--epochs", "1", "--max-steps-per-epoch", "2", "--batch-size",
            "4", "--seed", "3", "--device", "cpu", *TINY)
    r = cli(*args, "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    r = run(*args, "--workers", "0", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    a, b = _weights(tmp_path / "a" / "last.ckpt"), _weights(tmp_path / "b" / "last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a)
