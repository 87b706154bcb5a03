"""Tokenize from the command line: JSON lines, ids with a saved vocabulary, decode, training, bad inputs."""

from __future__ import annotations

import json

import pytest
from test_tokenize import make_midi
from typer.testing import CliRunner

from songkit.cli import app

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


def test_same_seed_same_weights_subprocess_and_in_process(cli, songs, tmp_path):
    """The issue's command as a user runs it (subprocess, default --workers) and in-process with --workers 0:
    the same seed gives identical last.ckpt weights; another seed does not."""
    import torch

    args = ("train", "tokenize", "--data", songs, "--epochs", "1", "--max-steps-per-epoch", "2", "--batch-size",
            "4", "--device", "cpu", *TINY)
    r = cli(*args, "--seed", "3", "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    for name, seed in (("b", "3"), ("c", "4")):
        r = run(*args, "--seed", seed, "--workers", "0", "--out", tmp_path / name)
        assert r.exit_code == 0, r.output
    a, b, c = (_weights(tmp_path / k / "last.ckpt") for k in "abc")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# ---------------------------------------------------------------- issue 15: inputs, pipes, spellings


def test_decode_never_writes_over_an_input(tmp_path):
    a = make_midi(tmp_path / "a.mid")
    original = a.read_bytes()
    r = run("tokenize", a, "--out", tmp_path / "t.jsonl")
    assert r.exit_code == 0, r.output
    r = run("tokenize", "--decode", tmp_path / "t.jsonl", "--out", tmp_path)  # the folder of the source
    assert r.exit_code == 2 and "a.mid: exists" in r.stderr and "--force" in r.stderr
    assert a.read_bytes() == original
    r = run("tokenize", "--decode", tmp_path / "t.jsonl", "--out", tmp_path, "--force")
    assert r.exit_code == 0 and a.read_bytes()[:4] == b"MThd"
    rec = json.loads((tmp_path / "t.jsonl").read_text())
    rec["source"] = "t.mid"
    (tmp_path / "in").mkdir()
    tokens = tmp_path / "in" / "t.mid"  # a tokens file named like the MIDI it decodes to: even --force spares it
    tokens.write_text(json.dumps(rec) + "\n")
    r = run("tokenize", "--decode", tokens, "--out", tmp_path / "in", "--force")
    assert r.exit_code == 2 and "is one of the inputs" in r.stderr
    assert tokens.read_text().startswith("{")


def test_skip_bad_counts_even_under_quiet(tmp_path):
    a = make_midi(tmp_path / "a.mid")
    (tmp_path / "b.mid").write_bytes(b"MThd broken")
    r = run("tokenize", a, tmp_path / "b.mid")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "b.mid: not a readable MIDI file" in r.stderr
    r = run("-q", "tokenize", a, tmp_path / "b.mid", "--skip-bad")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 1
    assert r.stderr.strip() == "songkit: skipped 1 file(s) that failed (--skip-bad)"


def test_pipe_closed_early_exits_0(tmp_path):
    """`songkit tokenize a.mid b.mid | head -c 20`: exit 0, nothing on stderr."""
    import os
    import subprocess
    import sys

    files = [make_midi(tmp_path / f"{k}.mid", tracks=3, n=400, seed=k) for k in range(3)]  # > a pipe buffer
    proc = subprocess.Popen([sys.executable, "-m", "songkit", "tokenize", *map(str, files)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    head = proc.stdout.read(20)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and head.startswith(b'{"source"') and err == b"", err


def test_multi_tune_abc_and_abc_on_stdin(tmp_path):
    abc = "X:1\nT:one\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|]\n\nX:2\nT:two\nM:3/4\nL:1/4\nK:G\nGAB|dBG|]\n"
    (tmp_path / "tunes.abc").write_text(abc)
    r = run("tokenize", tmp_path / "tunes.abc", "-e", "remi")
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["source"][-2:] for x in recs] == ["#1", "#2"]
    assert "TimeSig_3/4" in recs[1]["tokens"] and "TimeSig_4/4" in recs[0]["tokens"]
    r2 = run("tokenize", "-", "--from", "abc", "-e", "remi", input=abc)
    assert r2.exit_code == 0, r2.output
    assert [json.loads(x)["tokens"] for x in r2.stdout.splitlines()] == [x["tokens"] for x in recs]
    r3 = run("tokenize", "-", "-e", "remi", input=abc)  # guessed
    assert r3.exit_code == 0 and len(r3.stdout.splitlines()) == 2
    r = run("tokenize", "-", "--from", "midi", input=abc)
    assert r.exit_code == 2 and "-: expected MIDI (--from midi), but the input looks like abc" in r.stderr
    r = run("tokenize", "-", "--from", "abc", input=make_midi(tmp_path / "x.mid").read_bytes())
    assert r.exit_code == 2 and "expected ABC (--from abc), but the input looks like midi" in r.stderr
