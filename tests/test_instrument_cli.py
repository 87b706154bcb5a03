"""`songkit instrument`, `songkit train instrument`, `songkit eval instrument` end to end on a
small NSynth-layout set made here, and the bad inputs through the CLI (in-process; one subprocess test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_instrument_data import make_nsynth, tone, write_bad_wavs
from typer.testing import CliRunner

from songkit.cli import app
from songkit.tasks.instrument.constants import FAMILIES

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The log-mel logistic regression trained through the CLI (fast; it separates the three synthetic families)."""
    root = make_nsynth(tmp_path_factory.mktemp("ns"), {"train": 12, "valid": 5, "test": 5})
    run = root.parent / "run"
    r = invoke("-q", "train", "instrument", "--data", root, "--model", "linear", "--epochs", "8", "--lr", "1e-2",
               "--batch-size", "8", "--out", run, "--device", "cpu", "--no-augment", "--workers", "0")
    assert r.exit_code == 0, r.output
    assert r.stdout == ""  # results and checkpoints go to files; nothing on stdout
    for name in ("best.ckpt", "last.ckpt", "metrics.jsonl", "curves.png"):
        assert (run / name).is_file()
    return root, run / "best.ckpt"


def test_classify_files_json_top_k(trained, tmp_path):
    root, ck = trained
    wavs = sorted((root / "nsynth-test" / "audio").glob("*.wav"))[:3]
    r = invoke("instrument", *wavs, "--checkpoint", ck, "--json", "--top", "3")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["file"] for row in rows] == [str(w) for w in wavs]
    for row in rows:
        probs = [p for _, p in row["top"]]
        assert len(row["top"]) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert row["family"] == row["top"][0][0] and row["probability"] == probs[0]


def test_classifies_held_out_notes_correctly(trained):
    root, ck = trained
    r = invoke("eval", "instrument", "--checkpoint", ck, "--data", root, "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["notes"] == 15 and result["accuracy"] >= 0.8  # 3 families: chance is 1/3
    assert set(result["per_family"]) >= {"bass", "mallet", "organ", "vocal"}
    assert result["per_family"]["vocal"]["support"] == 0  # absent family keeps its row
    assert np.array(result["confusion"]).shape == (11, 11) and np.array(result["confusion"]).sum() == 15


def test_eval_table_and_confusion_png(trained, tmp_path):
    from PIL import Image

    root, ck = trained
    png = tmp_path / "cm.png"
    r = invoke("eval", "instrument", "--checkpoint", ck, "--data", root / "nsynth-test", "--confusion", png)
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.stdout and "precision" in r.stdout
    per_family = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()[2:13]}
    assert list(per_family) == FAMILIES  # one row per family: precision, recall, F1, support
    assert per_family["vocal"] == ["-", "-", "-", "0"] and per_family["bass"][3] == "5"
    img = Image.open(png)
    assert img.format == "PNG" and img.size[0] > 200
    r = invoke("eval", "instrument", "--checkpoint", ck, "--data", root, "--png", png)
    assert r.exit_code == 2 and "--confusion" in r.stderr


def test_any_rate_channels_and_length_and_windows(trained, tmp_path):
    _, ck = trained
    bad = write_bad_wavs(tmp_path / "in")
    long = tmp_path / "long.wav"
    # two organ notes sounding for 3 s of their 4 s, a second of silence between: 9 one-second windows, 6 sounding
    a, b = tone("organ", 60), tone("organ", 64)
    a[48000:] = b[48000:] = 0.0
    sf.write(long, np.concatenate([a, np.zeros(16000, np.float32), b]), 16000)
    r = invoke("instrument", bad["pcm8"], bad["rate96k"], bad["six_ch"], long, "-c", ck, "--json")
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == 4
    r = invoke("instrument", long, "-c", ck, "--json", "--windows")
    row = json.loads(r.stdout)
    assert row["windows"] == 6 and row["family"] == "organ"


@pytest.mark.parametrize("kind, message", [("empty", "empty"), ("truncated", "truncated"),
                                           ("not_audio", "not a readable audio file"), ("silent", "silent")])
def test_bad_audio_is_a_one_line_error_naming_the_file(trained, tmp_path, kind, message):
    _, ck = trained
    bad = write_bad_wavs(tmp_path / "in")
    r = invoke("instrument", bad[kind], "-c", ck)
    assert r.exit_code == 2
    assert r.stderr.startswith("songkit: error: ") and str(bad[kind]) in r.stderr and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def test_skip_bad_classifies_the_rest_and_counts(trained, tmp_path):
    _, ck = trained
    write_bad_wavs(tmp_path / "in")
    r = invoke("-q", "instrument", tmp_path / "in", "-c", ck, "--json", "--skip-bad")
    assert r.exit_code == 0, r.output
    files = {Path(json.loads(line)["file"]).name for line in r.stdout.splitlines()}
    assert files == {"full.wav", "pcm8.wav", "rate96k.wav", "six_ch.wav"}
    assert r.stderr.strip() == "skipped 4 of 8 file(s)"  # a result: shown even under -q


def test_missing_audio_in_examples_json(trained, tmp_path):
    import shutil

    root, ck = trained
    copy = tmp_path / "ns"
    shutil.copytree(root, copy)
    victim = min((copy / "nsynth-test" / "audio").glob("*.wav"))
    victim.unlink()
    r = invoke("eval", "instrument", "-c", ck, "--data", copy, "--json")
    assert r.exit_code == 2 and victim.name in r.stderr and "examples.json" in r.stderr
    r = invoke("eval", "instrument", "-c", ck, "--data", copy, "--json", "--skip-bad")
    assert r.exit_code == 0 and json.loads(r.stdout)["notes"] == 14 and json.loads(r.stdout)["skipped"] == 1
    assert "skipped 1 bad entry" in r.stderr
    r = invoke("-q", "eval", "instrument", "-c", ck, "--data", copy, "--skip-bad")
    assert r.exit_code == 0 and r.stderr.strip() == "skipped 1 bad note(s)"  # even under -q


def test_wrong_checkpoint_and_options(trained, tmp_path):
    root, ck = trained
    wav = min((root / "nsynth-test" / "audio").glob("*.wav"))
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    r = invoke("instrument", wav, "-c", junk)
    assert r.exit_code == 2 and str(junk) in r.stderr
    r = invoke("eval", "instrument", "-c", ck, "--data", root, "--split", "val")
    assert r.exit_code == 2 and "--split val: expected train, valid, test" in r.stderr
    r = invoke("eval", "instrument", "-c", ck, "--data", root, "--split", "valid", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["split"] == "valid" and json.loads(r.stdout)["notes"] == 15
    r = invoke("train", "instrument", "--data", root, "--model", "resnet", "--out", tmp_path / "r")
    assert r.exit_code == 2 and "--model resnet: expected one of linear, lstm" in r.stderr


def test_resume_continues_a_killed_run(trained, tmp_path):
    root, _ = trained
    args = ["train", "instrument", "--data", root, "--model", "linear", "--batch-size", "16", "--device", "cpu",
            "--out", tmp_path / "r", "--workers", "0"]
    assert invoke(*args, "--epochs", "1").exit_code == 0
    r = invoke(*args, "--epochs", "2", "--resume")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]


def test_default_checkpoint_runs_without_options(tmp_path):
    from songkit.core.checkpoint import default_checkpoint
    from songkit.core.errors import UserError

    try:
        default_checkpoint("instrument")
    except UserError:
        pytest.skip("no default checkpoint built yet")
    wav = tmp_path / "organ.wav"
    sf.write(wav, tone("organ", 60), 16000)
    r = invoke("instrument", wav, "--json", "--top", "11")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert len(row["top"]) == 11 and abs(sum(p for _, p in row["top"]) - 1) < 1e-4


def test_audio_on_stdin(trained):
    root, ck = trained
    wav = min((root / "nsynth-test" / "audio").glob("bass*.wav"))
    r = runner.invoke(app, ["instrument", "-", "-c", str(ck), "--json"], input=wav.read_bytes())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["file"] == "-" and json.loads(r.stdout)["family"] == "bass"
    r = runner.invoke(app, ["instrument", "-", "-c", str(ck)], input=b"not audio at all")
    assert r.exit_code == 2 and r.stderr.startswith("songkit: error: -: ")


def test_limit_caps_the_split(trained):
    root, ck = trained
    r = invoke("eval", "instrument", "-c", ck, "--data", root, "--json", "--limit", "6")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["notes"] == 6 and "using 6 of" in r.stderr


def test_table_in_a_pipe_never_wraps_long_paths(trained, tmp_path):
    root, ck = trained
    deep = tmp_path / ("a-very-long-folder-name-" * 6) / "and-another-long-one"
    deep.mkdir(parents=True)
    wavs = sorted((root / "nsynth-test" / "audio").glob("*.wav"))[:3]
    for w in wavs:
        (deep / w.name).write_bytes(w.read_bytes())
    r = invoke("instrument", deep, "-c", ck)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and lines[0].split() == ["file", "family", "probability"]
    for line, w in zip(lines[1:], wavs):
        assert line.startswith(str(deep / w.name)) and len(line.split()) == 3  # one file, one line


def test_data_command_names_a_missing_soundfont(tmp_path):
    r = invoke("data", "instrument", "--out", tmp_path / "ns", "--soundfont", tmp_path / "none.sf2",
               "--soundfont", tmp_path / "other.sf2")
    assert r.exit_code == 2 and str(tmp_path / "none.sf2") in r.stderr
    assert not (tmp_path / "ns").exists()


@pytest.mark.slow  # renders with FluidSynth (test_render_from_soundfont covers the renderer by default)
def test_data_command_renders_and_packs(tmp_path):
    import shutil

    from test_instrument_data import SF2, _have_fluidsynth

    if not _have_fluidsynth():
        pytest.skip("needs pyfluidsynth, libfluidsynth and timgm6mb-soundfont")
    copy = tmp_path / "held-out.sf2"
    shutil.copy(SF2, copy)
    r = invoke("data", "instrument", "--out", tmp_path / "ns", "--soundfont", SF2, "--soundfont", copy,
               "--family", "bass", "--family", "reed", "--pitch-step", "24", "--velocity", "100",
               "--pack", tmp_path / "ns.tar")
    assert r.exit_code == 0, r.output
    counts = {Path(line.split("\t")[0]).name: line.split("\t")[1] for line in r.stdout.splitlines()[:3]}
    assert set(counts) == {"nsynth-train", "nsynth-valid", "nsynth-test"}
    assert (tmp_path / "ns.tar").stat().st_size > 0
    meta = json.loads((tmp_path / "ns" / "nsynth-test" / "examples.json").read_text())
    assert {e["soundfont"] for e in meta.values()} == {"held-out.sf2"}  # held out by SoundFont
    assert {e["instrument_family_str"] for e in meta.values()} <= {"bass", "reed"}


def test_same_seed_same_weights_through_the_cli(cli, tmp_path):
    """The issue's command (on a small set) twice, once in a real subprocess as a user runs it: identical
    last.ckpt weights. (Other worker counts: test_instrument_train.py.)"""
    import torch

    root = make_nsynth(tmp_path / "ns", {"train": 4, "valid": 2})
    args = ["train", "instrument", "--data", root, "--epochs", "1", "--max-steps-per-epoch", "2", "--batch-size", "4",
            "--seed", "3", "--device", "cpu", "--augment"]
    r = cli("-q", *args, "--out", tmp_path / "a", "--workers", "0")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert invoke(*args, "--out", tmp_path / "b", "--workers", "0").exit_code == 0
    a = torch.load(tmp_path / "a" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_the_issue_command_twice_on_the_embedded_set(cli, tmp_path):
    import torch

    args = ["train", "instrument", "--epochs", "1", "--max-steps-per-epoch", "2", "--batch-size", "4", "--seed", "3",
            "--device", "cpu"]
    for out in ("a", "b"):
        r = cli(*args, "--out", tmp_path / out)
        assert r.returncode == 0, r.stderr
    a = torch.load(tmp_path / "a" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
