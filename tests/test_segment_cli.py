"""songkit segment's command line (issue 15): never over an input, -o FILE, stdin, spellings, pipes, the
shipped checkpoint's note, and the same seed giving the same weights. In-process with CliRunner on a tiny
U-Net saved as a run would save it; one subprocess smoke test. Every test that writes checks that the
files that existed before are byte-identical after."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import invoke, one_line_error
from PIL import Image
from test_segment import tiny_checkpoint

from songkit.tasks.segment import synthetic as S
from songkit.tasks.segment.constants import SYNTHETIC_WARNING


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def unchanged(before: dict[Path, bytes]) -> bool:
    return all(p.is_file() and p.read_bytes() == data for p, data in before.items())


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """A folder with two small pictures and a tiny checkpoint; the working directory is that folder."""
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((30, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    Image.fromarray((rng.random((25, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / "other.jpg")
    tiny_checkpoint(tmp_path / "tiny.ckpt")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_out_dot_never_overwrites_the_input(photos):
    before = snapshot(photos)
    one_line_error(invoke("segment", "photo.png", "--out", ".", "-c", "tiny.ckpt", "--device", "cpu"),
                   "photo.png: is one of the inputs")
    one_line_error(invoke("segment", "photo.png", "--out", "photo.png", "-c", "tiny.ckpt", "--force"),
                   "is one of the inputs")  # not even with --force
    assert unchanged(before) and snapshot(photos).keys() == before.keys()


def test_out_file_with_one_input_and_folder_with_several(photos):
    before = snapshot(photos)
    r = invoke("segment", "photo.png", "-o", "mask.png", "-c", "tiny.ckpt", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert (photos / "mask.png").is_file()  # a file, not a folder called mask.png
    with Image.open(photos / "mask.png") as m:
        assert m.mode == "P" and m.size == (40, 30)
    # an existing output that is not an input: refused without --force, replaced with it
    one_line_error(invoke("segment", "photo.png", "-o", "mask.png", "-c", "tiny.ckpt"),
                   "mask.png: exists (--force replaces it)")
    assert invoke("segment", "photo.png", "-o", "mask.png", "-c", "tiny.ckpt", "--force").exit_code == 0
    r = invoke("segment", "photo.png", "other.jpg", "-o", "masks", "-c", "tiny.ckpt", "--overlay", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [Path(row["mask"]).name for row in rows] == ["photo.png", "other.png"]
    assert (photos / "masks" / "other.overlay.jpg").is_file()
    one_line_error(invoke("segment", "photo.png", "other.jpg", "-o", "mask.png", "-c", "tiny.ckpt"),
                   "mask.png: is a file; with several inputs --out is a folder")
    one_line_error(invoke("segment", "photo.png", "-o", "mask.jpg", "-c", "tiny.ckpt"), "masks are PNG files")
    assert unchanged(before)


def test_stdin_picture_and_stdout_mask(photos):
    before = snapshot(photos)
    data = (photos / "other.jpg").read_bytes()
    r = invoke("segment", "-", "-o", "-", "-c", "tiny.ckpt", "--device", "cpu", input=data)
    assert r.exit_code == 0, r.stderr
    from_stdin = np.array(Image.open(io.BytesIO(r.stdout_bytes)))
    assert invoke("segment", "other.jpg", "-o", "o.png", "-c", "tiny.ckpt").exit_code == 0
    assert from_stdin.shape == (25, 20) and np.array_equal(from_stdin, np.array(Image.open(photos / "o.png")))
    r = invoke("segment", "-", "-o", "from-stdin.png", "-c", "tiny.ckpt", input=data)
    assert r.exit_code == 0 and (photos / "from-stdin.png").is_file()
    one_line_error(invoke("segment", "-", "photo.png", "-o", "m", "-c", "tiny.ckpt", input=data),
                   "stdin holds one picture")
    one_line_error(invoke("segment", "-", "-o", "x.png", "-c", "tiny.ckpt", input=b"not a picture"),
                   "-: corrupt or unreadable image")
    assert unchanged(before)


def test_shipped_checkpoint_says_once_it_was_trained_on_generated_shapes(photos):
    r = invoke("segment", "photo.png", "other.jpg", "-o", "masks", "--device", "cpu")  # no -c: the shipped one
    assert r.exit_code == 0, r.output
    assert r.stderr.count(SYNTHETIC_WARNING) == 1 and "docs/segment.md" in SYNTHETIC_WARNING
    own = invoke("segment", "photo.png", "-o", "own.png", "-c", "tiny.ckpt")
    assert own.exit_code == 0 and SYNTHETIC_WARNING not in own.stderr


@pytest.fixture(scope="module")
def small_voc(tmp_path_factory) -> Path:
    return S.write_synthetic(tmp_path_factory.mktemp("voc"), S.SynthSpec(train=8, val=2, seed=2))


def test_eval_split_spelling_confusion_png_and_json(photos, small_voc):
    before = snapshot(small_voc.parent.parent)
    one_line_error(invoke("eval", "segment", "-c", "tiny.ckpt", "--data", small_voc, "--split", "val"),
                   "--split val: spelled 'valid'")
    r = invoke("eval", "segment", "-c", "tiny.ckpt", "--data", small_voc, "--split", "valid",
               "--confusion", "cm.png", "--json", "--device", "cpu")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["split"] == "valid" and result["images"] == 2 and result["size"] == 32
    with Image.open(photos / "cm.png") as im:
        assert im.format == "PNG" and im.size[0] > 50
    table = invoke("eval", "segment", "-c", "tiny.ckpt", "--data", small_voc)
    assert table.exit_code == 0 and "mean IoU" in table.stdout
    assert all(len(line) < 100 for line in table.stdout.splitlines()[:12])  # plain columns, no wrapping box
    assert unchanged(before)


def test_data_command_writes_the_voc_layout(tmp_path):
    from songkit.tasks.segment.voc import read_split

    r = invoke("data", "segment", "--out", tmp_path / "d", "--train", "2", "--valid", "1")
    assert r.exit_code == 0, r.output
    root = Path(r.stdout.strip())
    assert root == tmp_path / "d" / "VOCdevkit" / "VOC2007"
    assert len(read_split(root, "train")) == 2 and len(read_split(root, "valid")) == 1
    assert len(read_split(root, "trainval")) == 3


def _train(out: Path, data: Path, *extra):
    return invoke("train", "segment", "--data", data, "--out", out, "--epochs", "1", "--max-steps-per-epoch", "2",
                  "--batch-size", "4", "--seed", "3", "--device", "cpu", "--size", "32", "--width", "4",
                  "--workers", "0", *extra)


def test_train_twice_with_one_seed_gives_identical_weights_and_no_augment(tmp_path, small_voc):
    before = snapshot(small_voc.parent.parent)
    for name in ("a", "b"):
        r = _train(tmp_path / name, small_voc)
        assert r.exit_code == 0, r.output
    a = torch.load(tmp_path / "a" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["model"] == "unet" and a["extra"]["augment"]["rotate"] == 10.0  # the shipped model is the default
    r = _train(tmp_path / "c", small_voc, "--no-augment", "--model", "unet")
    assert r.exit_code == 0, r.output
    c = torch.load(tmp_path / "c" / "last.ckpt", weights_only=True)
    assert c["extra"]["augment"]["rotate"] == 0.0 and c["extra"]["augment"]["hflip"] is False
    one_line_error(_train(tmp_path / "d", small_voc, "--model", "nosuch"), "--model nosuch: expected one of fcn, unet")
    assert unchanged(before)


def test_resume_through_the_dataloader_equals_an_uninterrupted_run(tmp_path, small_voc):
    """Two epochs in one go, or one epoch and then --resume --epochs 2 (constant learning rate, so the
    schedule does not depend on --epochs): the same weights."""
    whole = _train(tmp_path / "whole", small_voc, "--schedule", "none")  # --epochs 1 from _train ...
    assert whole.exit_code == 0, whole.output
    r = invoke("train", "segment", "--resume", "--epochs", "2", "--out", tmp_path / "whole", "--workers", "1")
    assert r.exit_code == 0, r.output
    straight = invoke("train", "segment", "--data", small_voc, "--out", tmp_path / "straight", "--epochs", "2",
                      "--max-steps-per-epoch", "2", "--batch-size", "4", "--seed", "3", "--device", "cpu", "--size",
                      "32", "--width", "4", "--workers", "0", "--schedule", "none")
    assert straight.exit_code == 0, straight.output
    a = torch.load(tmp_path / "whole" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "straight" / "last.ckpt", weights_only=True)
    assert [row["epoch"] for row in a["history"]] == [1, 2]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_subprocess_smoke_and_a_closed_pipe_exits_0(tmp_path, small_voc, cli):
    tiny = tiny_checkpoint(tmp_path / "tiny.ckpt")
    picture = small_voc / "JPEGImages" / "2007_000000.jpg"
    r = cli("segment", picture, "-o", tmp_path / "m.png", "-c", tiny, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "m.png") as m, Image.open(picture) as im:
        assert m.mode == "P" and m.size == im.size
    # `songkit eval segment --json | head -c 30`: the reader goes away before the result is written
    proc = subprocess.Popen([sys.executable, "-m", "songkit", "eval", "segment", "-c", str(tiny), "--data",
                             str(small_voc), "--json", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"Error" not in err


@pytest.mark.slow
def test_the_issue_command_twice_gives_identical_last_ckpt(tmp_path, cli):
    """`songkit train segment --epochs 1 --max-steps-per-epoch 2 --batch-size 4 --seed 3 --device cpu --out DIR`
    (the default model on the embedded set, DataLoader workers at their default) twice: equal weights."""
    for name in ("a", "b"):
        r = cli("train", "segment", "--epochs", "1", "--max-steps-per-epoch", "2", "--batch-size", "4", "--seed", "3",
                "--device", "cpu", "--out", tmp_path / name)
        assert r.returncode == 0, r.stderr
    a = torch.load(tmp_path / "a" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
