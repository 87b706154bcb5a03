"""SongRNN's command line: sampling, training and evaluation in-process (CliRunner), refused options and
damaged checkpoints as one line, and the subprocess smoke tests (same seed, same weights; pipes)."""

import json
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch
from cli_helpers import invoke, one_line_error
from typer.main import get_command
from typer.testing import CliRunner

from songkit.cli import app
from songkit.core.checkpoint import load_checkpoint, save_checkpoint
from songkit.tasks.generate.data import build_vocab
from songkit.tasks.generate.evaluate import parses_with_notes
from songkit.tasks.generate.model import CharLSTM, CharLSTMConfig

TUNES = "".join(f"X:{i}\nT:Tune {i}\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|dcBA GFED|]\n\n" for i in range(12))


def save_tiny(path, *, config=None, state=None, vocab=None):
    """A tiny random SongRNN checkpoint (what the normal loader reads), optionally damaged."""
    vocab = vocab if vocab is not None else build_vocab([], "ascii")
    cfg = CharLSTMConfig(vocab_size=len(build_vocab([], "ascii")), embed_dim=8, hidden_size=16, num_layers=1)
    torch.manual_seed(0)
    model = CharLSTM(cfg)
    save_checkpoint(path, task="generate", model="lstm", config=config if config is not None else asdict(cfg),
                    vocab=vocab, state_dict=state if state is not None else model.state_dict())
    return path


@pytest.fixture
def tiny(tmp_path):
    return save_tiny(tmp_path / "tiny.ckpt")


def test_generate_numbers_tunes_and_repeats_with_a_seed(tiny, tmp_path):
    args = ("generate", "-c", tiny, "-n", "3", "--max-chars", "80", "--seed", "5", "-t", "0.8")
    first, again = invoke(*args), invoke(*args)
    assert first.exit_code == 0, first.output
    assert [line for line in first.stdout.splitlines() if line.startswith("X:")] == ["X:1", "X:2", "X:3"]
    assert again.stdout == first.stdout
    out = tmp_path / "song.abc"
    r = invoke("generate", "-c", tiny, "--prime", "X:9\\nT:Primed\\nM:6/8\\nK:D\\n", "--max-chars", "40",
               "--seed", "1", "--out", out)
    assert r.exit_code == 0 and r.stdout == "", r.output
    assert out.read_text().startswith("X:1\nT:Primed\nM:6/8\nK:D\n")
    before = out.read_bytes()
    one_line_error(invoke("generate", "-c", tiny, "--seed", "2", "--out", out), "song.abc", "--force")
    assert out.read_bytes() == before
    assert invoke("generate", "-c", tiny, "--seed", "2", "--max-chars", "30", "--out", out, "--force").exit_code == 0
    assert out.read_bytes() != before


def test_refused_sampling_options(tiny, tmp_path):
    one_line_error(invoke("generate", "-c", tiny, "--top-p", "0"), "--top-p 0.0", "(0, 1]")
    mid = tmp_path / "song.mid"
    one_line_error(invoke("generate", "-c", tiny, "-o", mid), "song.mid", "ABC", ".abc")
    assert not mid.exists()
    one_line_error(invoke("generate", "-c", tiny, "-o", tiny, "--force"), "tiny.ckpt")
    assert load_checkpoint(tiny).task == "generate"  # the checkpoint (an input) was not written over
    token = tmp_path / "token.ckpt"
    save_checkpoint(token, task="tokenize", model="gru", config={}, vocab=[], state_dict={})
    one_line_error(invoke("generate", "-c", token, "-o", tmp_path / "song.abc"), "song.abc", "MIDI", ".mid")
    for option, value in (("--num", "3"), ("--top-k", "5"), ("--top-p", "0.9"), ("--prime", "T:x"),
                          ("--max-chars", "100")):
        one_line_error(invoke("generate", "-c", token, option, value, "-o", mid), option, "tokenize checkpoint")
    assert not mid.exists()


def test_tokenize_checkpoint_samples_midi(tmp_path):
    from songkit.core.checkpoint import default_checkpoint

    mid = tmp_path / "song.mid"
    r = invoke("generate", "-c", default_checkpoint("tokenize"), "--seed", "0", "-t", "0.9", "-o", mid)
    assert r.exit_code == 0, r.output
    assert mid.read_bytes()[:4] == b"MThd"


@pytest.mark.parametrize("damage, field", [
    ({"config": {"vocab_size": 99, "embed_dim": 8, "hidden_size": 16, "num_layers": 1, "dropout": 2.0}}, "dropout"),
    ({"config": {"vocab_size": 99, "embed_dim": 8, "hidden_size": 16, "num_layers": "x", "dropout": 0.0}},
     "num_layers"),
    ({"config": {"vocab_size": 99, "embed_dim": 8, "hidden_size": 16, "num_layers": 1, "dropout": 0.0, "init": 1}},
     "init"),
    ({"state": {"embed.weight": torch.full((99, 8), float("nan"))}}, "embed.weight"),
    ({"vocab": ["a"] * 99}, "vocab"),
])
def test_damaged_checkpoints_are_one_line(tmp_path, damage, field):
    bad = tmp_path / "bad.ckpt"
    if "state" in damage:  # NaN weights must never reach torch.multinomial
        torch.manual_seed(0)
        good = load_checkpoint(save_tiny(tmp_path / "good.ckpt")).state_dict
        damage = {"state": {**good, **damage["state"]}}
    save_tiny(bad, **damage)
    one_line_error(invoke("generate", "-c", bad, "--seed", "0", "--max-chars", "20"), "bad.ckpt", field)
    one_line_error(invoke("eval", "generate", "-c", bad, "--samples", "0"), "bad.ckpt")


def test_other_task_and_junk_checkpoints(tmp_path):
    other = tmp_path / "other.ckpt"
    save_checkpoint(other, task="segment", model="fcn", config={}, vocab=[], state_dict={})
    one_line_error(invoke("generate", "-c", other), "other.ckpt", "'segment' checkpoint")
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    one_line_error(invoke("generate", "-c", junk), "junk.ckpt", "not a songkit checkpoint")


def test_every_option_has_a_help_line():
    root = get_command(app)
    for path in (["generate"], ["train", "generate"], ["eval", "generate"]):
        command = root
        for name in path:
            command = command.commands[name]
        for param in command.params:
            if getattr(param, "hidden", False) or param.name == "help":
                continue
            assert getattr(param, "help", None), f"{' '.join(path)}: {param.opts} has no help line"
    spellings = [o for p in root.commands["train"].commands["generate"].params for o in p.opts]
    assert "--hidden-size" in spellings and "--limit" in spellings and "--hidden" not in spellings


def test_old_spelling_gets_a_hint(tmp_path):
    one_line_error(invoke("train", "generate", "--max-tunes", "5", "--out", tmp_path / "r"), "--limit")


def test_eval_reports_each_file_and_overall(tiny, tmp_path):
    data = tmp_path / "abc"
    data.mkdir()
    (data / "a.abc").write_text(TUNES)
    (data / "b.abc").write_text(TUNES.replace("Tune", "Tüne"))
    r = invoke("eval", "generate", "-c", tiny, "--data", data, "--samples", "2", "--max-chars", "50", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    a, b = result["files"]
    assert a["file"].endswith("a.abc") and a["tunes"] == 12 and a["oov_share"] == 0.0
    assert b["oov_chars"] == "ü" and b["oov_share"] == pytest.approx(12 / b["characters"])
    assert result["characters"] == a["characters"] + b["characters"] and result["samples"] == 2
    assert 0 <= result["parse_rate"] <= 1 and 0 <= result["abc2midi_rate"] <= 1
    table = invoke("eval", "generate", "-c", tiny, "--data", data, "--samples", "0")
    assert table.exit_code == 0, table.output
    assert [line.split()[0] for line in table.stdout.splitlines() if "abc" in line or "overall" in line][-3:] == [
        str(data / "a.abc"), str(data / "b.abc"), "overall"]
    one_line_error(invoke("eval", "generate", "-c", tiny, "--data", tmp_path / "missing.abc"), "missing.abc")


def test_train_eval_resume_in_process(tmp_path):
    data = tmp_path / "abc"
    data.mkdir()
    (data / "set.abc").write_text(TUNES * 3)
    run = tmp_path / "run"
    args = ("-q", "train", "generate", "--data", data, "--out", run, "--hidden-size", "16", "--num-layers", "1",
            "--embed-dim", "8", "--batch-size", "2", "--seq-len", "16", "--device", "cpu", "--workers", "0")
    r = invoke(*args, "--epochs", "2")
    assert r.exit_code == 0, r.output
    assert {p.name for p in run.iterdir()} >= {"best.ckpt", "last.ckpt", "metrics.jsonl", "curves.png"}
    one_line_error(invoke(*args, "--epochs", "2"), "--resume", "--force")
    r = invoke(*args, "--epochs", "3", "--resume")
    assert r.exit_code == 0, r.output
    assert (run / "metrics.jsonl").read_text().count("\n") == 3
    tuned = tmp_path / "tuned"
    r = invoke("-q", "train", "generate", "--data", data, "--out", tuned, "--init", run, "--epochs", "1",
               "--batch-size", "2", "--seq-len", "16", "--device", "cpu", "--workers", "0")
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tuned / "last.ckpt").config == load_checkpoint(run / "best.ckpt").config
    empty = tmp_path / "empty.abc"
    empty.write_text("")
    one_line_error(invoke("train", "generate", "--data", empty, "--out", tmp_path / "r"), "empty.abc", "no ABC tune")
    noise = tmp_path / "noise.abc"
    noise.write_bytes(bytes(range(256)) * 10)
    one_line_error(invoke("train", "generate", "--data", noise, "--out", tmp_path / "r"), "noise.abc", "binary")


def test_default_checkpoint_generates_a_tune():
    # `songkit generate` works right after install: the shipped checkpoint, no arguments needed
    r = invoke("generate", "--temperature", "0.8", "--seed", "3", "--max-chars", "600")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("X:1\n")
    assert parses_with_notes(r.stdout.split("\n", 1)[1])


def test_same_seed_same_weights_from_the_command_line(cli, tmp_path):
    weights = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        proc = cli("-q", "train", "generate", "--epochs", "1", "--max-steps-per-epoch", "2", "--batch-size", "4",
                   "--seed", "3", "--device", "cpu", "--out", out, "--limit", "300")
        assert proc.returncode == 0, proc.stderr
        weights.append(load_checkpoint(out / "last.ckpt").state_dict)
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_broken_pipe_is_quiet(tmp_path):
    tiny = save_tiny(tmp_path / "tiny.ckpt")
    proc = subprocess.run(f"{sys.executable} -m songkit generate -c {tiny} -n 64 --max-chars 300 "
                          "--seed 0 | head -c 10", shell=True, check=False, capture_output=True, text=True, timeout=120)
    assert len(proc.stdout) == 10 and proc.stderr == ""


def test_data_generate_writes_the_split_training_reads_and_never_replaces_silently(tmp_path):
    from songkit.tasks.generate.data import read_tunes

    runner = CliRunner()
    r = runner.invoke(app, ["data", "generate", "--out", str(tmp_path), "--limit", "40"])
    assert r.exit_code == 0, r.output
    train, valid = read_tunes([tmp_path / "train.abc"]), read_tunes([tmp_path / "valid.abc"])
    assert (len(train), len(valid)) == (38, 2)  # the 5% validation split of train generate
    before = (tmp_path / "train.abc").read_bytes()
    r = runner.invoke(app, ["data", "generate", "--out", str(tmp_path), "--limit", "10"])
    assert r.exit_code == 2 and "exists (--force replaces it)" in r.output
    assert (tmp_path / "train.abc").read_bytes() == before
