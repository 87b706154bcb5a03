"""SongRNN: data splitting, a tiny model that learns a tune, sampling, and the CLI end to end."""

import json
import subprocess
import sys

import pytest
import torch

from songkit.core.train import TrainConfig, fit
from songkit.tasks.generate.data import build_vocab, normalize_tune, read_tunes, split_train_val, split_tunes
from songkit.tasks.generate.model import CharLSTM, CharLSTMConfig
from songkit.tasks.generate.task import (GenerateTrainTask, _filter_logits, format_tunes, parses_with_notes,
                                         sample_tunes, stream_batches)

TUNE = "T:Tiny\nM:4/4\nL:1/8\nK:C\nCDEF GABc|cBAG FEDC|]"
ABC_FILE = """% a comment before the first tune
X:7
T:First
N:a note that is dropped
M:6/8
K:D
def edc|]

X:8
T:Second
M:3/4
K:G
% a comment line inside
GAB c2d|]
"""


def test_split_and_normalise():
    tunes = split_tunes(ABC_FILE)
    assert len(tunes) == 2 and tunes[0].startswith("X:7")
    assert normalize_tune(tunes[0]) == "T:First\nM:6/8\nK:D\ndef edc|]"
    assert normalize_tune(tunes[1]) == "T:Second\nM:3/4\nK:G\nGAB c2d|]"
    assert normalize_tune("X:1\nT:no music\nK:C\n") == ""


def test_split_is_deterministic_and_by_tune():
    tunes = [f"T:{i}\nK:C\nCDE|]" for i in range(100)]
    train, val = split_train_val(tunes)
    assert (train, val) == split_train_val(list(tunes))
    assert len(val) == 5 and not set(train) & set(val) and len(train) + len(val) == 100


def test_stream_batches_continue_across_chunks():
    ids = torch.arange(101)
    x, y = stream_batches(ids, n_streams=2, seq_len=10)
    assert x.shape == (2, 50) and torch.equal(y, x + 1)
    assert x[0, 10].item() == x[0, 9].item() + 1  # chunk 2 of a row continues chunk 1


def test_filter_logits():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    assert torch.isinf(_filter_logits(logits, 2, 1.0)).tolist() == [[True, True, False, False]]
    probs = logits.softmax(-1)[0]  # 0.032 0.087 0.237 0.644
    kept = ~torch.isinf(_filter_logits(logits, 0, 0.7))
    assert kept.tolist() == [[False, False, True, True]] and probs[3] < 0.7


def test_tiny_lstm_learns_a_repeating_tune(tmp_path):
    tunes = [TUNE] * 60
    vocab = build_vocab(tunes)
    torch.manual_seed(0)
    model = CharLSTM(CharLSTMConfig(vocab_size=len(vocab), embed_dim=16, hidden_size=64, num_layers=1, dropout=0.0))
    task = GenerateTrainTask(tunes[:50], tunes[50:], vocab, batch_size=4, seq_len=32, seed=0)
    history = fit(model, task, TrainConfig(epochs=12, lr=1e-2, warmup_steps=5), tmp_path,
                  {"task": "generate", "model": "lstm", "config": model.cfg, "vocab": vocab}, device="cpu")
    assert history[0]["val_bpc"] > 1.0 > 0.2 > history[-1]["val_bpc"]
    out = sample_tunes(model.eval(), vocab, num=3, temperature=0.05, max_chars=200, seed=0)
    assert out == [TUNE] * 3
    assert parses_with_notes(out[0])


def test_format_tunes_numbers_every_tune():
    text = format_tunes(["T:a\nK:C\nC|]", "T:b\nK:C\nD|]"])
    assert text == "X:1\nT:a\nK:C\nC|]\n\nX:2\nT:b\nK:C\nD|]\n\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from conftest import run_cli

    root = tmp_path_factory.mktemp("gen")
    data = root / "abc"
    data.mkdir()
    for k in range(3):
        (data / f"set{k}.abc").write_text("".join(
            f"X:{i}\nT:Tune {k}.{i}\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|dcBA GFED|]\n\n" for i in range(10)))
    run = root / "run"
    proc = run_cli("-q", "train", "generate", "--data", data, "--out", run, "--epochs", "2", "--hidden-size", "32",
                   "--num-layers", "1", "--embed-dim", "8", "--batch-size", "4", "--seq-len", "32", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    return data, run


def test_cli_train_generate_eval(tiny_run, cli):
    data, run = tiny_run
    assert {p.name for p in run.iterdir()} >= {"best.ckpt", "last.ckpt", "metrics.jsonl", "curves.png"}
    gen = cli("generate", "-c", run / "best.ckpt", "-n", "3", "--max-chars", "80", "--seed", "5", "-t", "0.8")
    assert gen.returncode == 0, gen.stderr
    assert [line for line in gen.stdout.splitlines() if line.startswith("X:")] == ["X:1", "X:2", "X:3"]
    again = cli("generate", "-c", run / "best.ckpt", "-n", "3", "--max-chars", "80", "--seed", "5", "-t", "0.8")
    assert again.stdout == gen.stdout  # --seed makes sampling repeatable
    ev = cli("eval", "generate", "-c", run / "best.ckpt", "--data", data, "--samples", "4", "--max-chars", "100", "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["tunes"] == 30 and 0 < result["bits_per_char"] < 8 and 0 <= result["parse_rate"] <= 1
    resumed = cli("-q", "train", "generate", "--data", data, "--out", run, "--epochs", "3", "--hidden-size", "32",
                  "--num-layers", "1", "--embed-dim", "8", "--batch-size", "4", "--seq-len", "32", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "metrics.jsonl").read_text().count("\n") == 3


def test_prime_and_out_file(tiny_run, cli, tmp_path):
    _, run = tiny_run
    out = tmp_path / "song.abc"
    proc = cli("generate", "-c", run / "best.ckpt", "--prime", "X:9\\nT:Primed\\nM:6/8\\nK:D\\n", "--max-chars", "40",
               "--seed", "1", "--out", out)
    assert proc.returncode == 0 and proc.stdout == ""
    assert out.read_text().startswith("X:1\nT:Primed\nM:6/8\nK:D\n")


def _one_line_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("songkit: error:"), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_inputs(tiny_run, cli, tmp_path):
    _, run = tiny_run
    empty = tmp_path / "empty.abc"
    empty.write_text("")
    _one_line_error(cli("train", "generate", "--data", empty, "--out", tmp_path / "r"), "empty.abc", "no ABC tune")
    binary = tmp_path / "noise.abc"
    binary.write_bytes(bytes(range(256)) * 10)
    _one_line_error(cli("train", "generate", "--data", binary, "--out", tmp_path / "r"), "noise.abc", "binary")
    _one_line_error(cli("eval", "generate", "-c", run / "best.ckpt", "--data", tmp_path / "missing.abc"), "missing.abc")
    other = tmp_path / "other.ckpt"
    from songkit.core.checkpoint import save_checkpoint

    save_checkpoint(other, task="segment", model="fcn", config={}, vocab=[], state_dict={})
    _one_line_error(cli("generate", "-c", other), "other.ckpt", "'segment' checkpoint")
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    _one_line_error(cli("generate", "-c", junk), "junk.ckpt", "not a songkit checkpoint")


def test_broken_pipe_is_quiet(tiny_run):
    _, run = tiny_run
    proc = subprocess.run(f"{sys.executable} -m songkit generate -c {run / 'best.ckpt'} -n 64 --max-chars 300 "
                          "--seed 0 | head -c 10", shell=True, capture_output=True, text=True, timeout=120)
    assert len(proc.stdout) == 10 and proc.stderr == ""


def test_version(cli):
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("songkit ")


def test_help_does_not_import_torch():
    code = "import sys, songkit.cli; assert 'torch' not in sys.modules and 'music21' not in sys.modules, sorted(m for m in sys.modules if m.split('.')[0] in ('torch','music21','numpy'))"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_checkpoint_generates_a_tune(cli):
    # `songkit generate` works right after install: the shipped checkpoint, no arguments needed
    proc = cli("generate", "--temperature", "0.8", "--seed", "3", "--max-chars", "600")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("X:1\n")
    assert parses_with_notes(proc.stdout.split("\n", 1)[1])


def test_stepper_matches_nn_lstm():
    from songkit.tasks.generate.task import _LSTMStepper

    torch.manual_seed(0)
    model = CharLSTM(CharLSTMConfig(vocab_size=20, embed_dim=8, hidden_size=16, num_layers=3)).eval()
    ids = torch.randint(0, 20, (4, 12))
    with torch.no_grad():
        want, _ = model(ids)
        step = _LSTMStepper(model)
        h = [torch.zeros(4, 16) for _ in range(3)]
        c = [torch.zeros(4, 16) for _ in range(3)]
        for t in range(12):
            got, h, c = step(ids[:, t], h, c)
            torch.testing.assert_close(got, want[:, t], atol=1e-5, rtol=1e-5)
