"""Hostile pictures and masks (issue 14): extreme sizes, decompression bombs, damaged files. Every case ends
in exit 0 or one line with exit 2, in bounded time and memory. The fuzz tests mutate small files the test
makes (hypothesis, derandomized: the same cases every run); a bounded number of cases by default, more
behind the slow marker."""

from __future__ import annotations

import io
import resource
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from cli_helpers import invoke
from fuzz import SLOW_EXAMPLES, as_file, fuzz, mutations
from hypothesis import HealthCheck, given, settings
from PIL import Image
from test_segment import tiny_checkpoint

from songkit.core.errors import UserError
from songkit.tasks.segment import synthetic as S
from songkit.tasks.segment import voc

CLI_CASES = 4  # end to end through CliRunner


def exit_0_or_one_line(result) -> None:
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("songkit: error:"), result.stderr


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with one empty data chunk: a decompression bomb's
    header (a real bomb's few kB of zlib would inflate to the claimed size)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    tiny_checkpoint(tmp_path / "tiny.ckpt")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- extreme sizes


@pytest.mark.parametrize("width,height", [(1, 1), (1, 9000), (9000, 1), (3, 2000), (40, 30)])
def test_tiny_and_thin_pictures_get_a_mask_of_their_own_size(workdir, width, height):
    rng = np.random.default_rng(width + height)
    Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(workdir / "p.png")
    t = time.perf_counter()
    r = invoke("segment", "p.png", "-o", "m.png", "-c", "tiny.ckpt", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert time.perf_counter() - t < 20
    with Image.open(workdir / "m.png") as m:
        assert m.size == (width, height) and m.mode == "P"


def test_bombs_are_refused_from_the_header_before_decoding(workdir):
    # 100,000 x 100,000: above Pillow's own limit; 11,000 x 11,000 (121 MP): between Pillow's warning and
    # songkit's limit
    for name, (w, h) in {"bomb.png": (100_000, 100_000), "big.png": (11_000, 11_000)}.items():
        (workdir / name).write_bytes(png_header_only(w, h))
        t = time.perf_counter()
        r = invoke("segment", name, "-o", "m.png", "-c", "tiny.ckpt")
        assert r.exit_code == 2 and time.perf_counter() - t < 5, r.output
        line = r.stderr.strip()
        assert line.count("\n") == 0 and f"{name}: image" in line and "refused before decoding" in line, line
        assert "Warning" not in r.stderr
    assert not (workdir / "m.png").exists()


def test_the_pixel_limit_applies_to_masks_and_dataset_pictures(workdir, monkeypatch):
    root = S.write_synthetic(workdir / "d", S.SynthSpec(train=2, val=1, seed=0))
    monkeypatch.setattr(voc, "MAX_IMAGE_PIXELS", 5_000)  # the generated pictures are about 10,000 pixels
    expected = r"2007_000000.jpg: image of 128 x 80 pixels \(0.0102 MP\) is larger than 0.005 MP \(refused before"
    with pytest.raises(UserError, match=expected):
        voc.VOCSegmentation.open(root, "train").check_headers()
    with pytest.raises(UserError, match=r"2007_000000.png: mask of 128 x 80 pixels.*refused before decoding"):
        voc.load_mask(root / "SegmentationClass" / "2007_000000.png")


def test_masks_are_validated(tmp_path):
    rng = np.random.default_rng(0)
    cases = {
        "value.png": (Image.fromarray(np.full((4, 5), 30, np.uint8)), "class values 30 above 20"),
        "deep.png": (Image.fromarray(np.zeros((4, 5), np.uint16)), "mask in mode I;16"),
        "colour.png": (Image.fromarray((rng.random((4, 5, 3)) * 255).astype(np.uint8)), "not a VOC class colour"),
    }
    for name, (im, message) in cases.items():
        im.save(tmp_path / name)
        with pytest.raises(UserError, match=rf"{name}: .*{message}"):
            voc.load_mask(tmp_path / name)
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(UserError, match="text.png: corrupt or unreadable mask"):
        voc.load_mask(tmp_path / "text.png")


@pytest.mark.slow
def test_a_9000_by_9000_photo_is_segmented_in_bounded_memory(tmp_path):
    """81 MP: decoded (243 MB), fed to the model at its size, the logits resized back in bands."""
    tiny = tiny_checkpoint(tmp_path / "tiny.ckpt")
    ramp = np.linspace(0, 255, 9000, dtype=np.float32).astype(np.uint8)
    picture = np.stack([np.broadcast_to(ramp, (9000, 9000))] * 3, axis=-1)  # (9000, 9000, 3)
    Image.fromarray(picture).save(tmp_path / "huge.jpg", quality=50)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = subprocess.run([sys.executable, "-m", "songkit", "segment", str(tmp_path / "huge.jpg"), "-o",
                        str(tmp_path / "m.png"), "-c", str(tiny), "--device", "cpu"], check=False, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert max(peak_kb, before) < 3_000_000, peak_kb  # under 3 GB (the 21 full-size logit planes alone: 6.8 GB)
    with Image.open(tmp_path / "m.png") as m:
        assert m.size == (9000, 9000)


# ---------------------------------------------------------------- fuzzing


def _seeds() -> dict[str, bytes]:
    """Small real files to mutate: a PNG, a JPEG with EXIF, a palette mask."""
    rng = np.random.default_rng(0)
    picture = Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8))
    out = {}
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    out["png"] = buf.getvalue()
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    picture.save(buf, format="JPEG", exif=exif.tobytes())
    out["jpg"] = buf.getvalue()
    mask = np.zeros((24, 32), np.uint8)
    mask[4:12, 5:20] = 8
    mask[12] = 255
    out["mask"] = voc.mask_png_bytes(mask)
    return out


SEEDS = _seeds()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from songkit.tasks.segment.infer import load

    model, _ = load(tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.ckpt"), "cpu")
    return model


def _segment(model, suffix: str):
    """Bytes -> decoded picture -> the model's mask, as `songkit segment` runs it (tests/fuzz.py's limits:
    one line or a result, within the time and memory limit)."""
    from songkit.tasks.segment.infer import predict_masks

    return as_file(lambda path: predict_masks(model, [voc.load_image(path)], "cpu")[0], suffix)


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_fuzz_pictures(tiny_model, kind):
    fuzz(_segment(tiny_model, f".{kind}"), SEEDS[kind], seconds=30)  # tests/fuzz.py: 30 cases


def test_fuzz_masks():
    fuzz(as_file(voc.load_mask, ".png"), SEEDS["mask"], )  # 30 cases


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_fuzz_pictures_many(tiny_model, kind):
    fuzz(_segment(tiny_model, f".{kind}"), SEEDS[kind], examples=SLOW_EXAMPLES, seconds=30)


@pytest.mark.slow
def test_fuzz_masks_many():
    fuzz(as_file(voc.load_mask, ".png"), SEEDS["mask"], examples=SLOW_EXAMPLES)


@settings(max_examples=CLI_CASES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(picture=mutations(SEEDS["jpg"]), mask=mutations(SEEDS["mask"]))
def test_fuzz_through_the_command_line(workdir, picture, mask):
    """A few cases end to end: `songkit segment` and `songkit eval segment` on damaged files."""
    (workdir / "fuzz.jpg").write_bytes(picture)
    exit_0_or_one_line(invoke("segment", "fuzz.jpg", "-o", "m.png", "-c", "tiny.ckpt", "--device", "cpu", "--force"))
    root = workdir / "d" / "VOCdevkit" / "VOC2007"
    if not root.is_dir():
        S.write_synthetic(workdir / "d", S.SynthSpec(train=1, val=1, seed=0))
    (root / "SegmentationClass" / "2007_000001.png").write_bytes(mask)
    exit_0_or_one_line(invoke("eval", "segment", "-c", "tiny.ckpt", "--data", root, "--json", "--device", "cpu"))


def test_fuzzing_stayed_in_bounded_memory():
    """After the cases above (same process): the peak resident size stayed far below what a bomb takes."""
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 2_500_000  # kB


@pytest.mark.parametrize("field,value,expected", [
    ("size", 33, "size"), ("mean", (0.5, 0.5), "mean"), ("std", (0.0, 1.0, 1.0), "std"), ("init", "nope", "init"),
    ("num_classes", 0, "num_classes"), ("base", "x", "base"), ("unknown_field", 1, "unknown_field"),
])
def test_damaged_checkpoint_config_is_one_line(workdir, field, value, expected):
    """A segment checkpoint whose config has a wrong type or range, or a key no model knows: one line naming
    the file and the field, before anything is built (the shipped configs' check() in core's loader)."""
    import torch

    from songkit.core.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(workdir / "tiny.ckpt", task="segment")
    config = dict(ck.config, **{field: value})
    save_checkpoint(workdir / "bad.ckpt", task="segment", model=ck.model, config=config, vocab=ck.vocab,
                    state_dict=ck.state_dict)
    Image.new("RGB", (20, 10)).save(workdir / "p.png")
    r = invoke("segment", "p.png", "-o", "m.png", "-c", "bad.ckpt")
    exit_0_or_one_line(r)
    assert r.exit_code == 2 and "bad.ckpt" in r.stderr and expected in r.stderr, r.stderr
    assert not (workdir / "m.png").exists()
    if field != "size":
        return
    nan = {k: v.clone() for k, v in ck.state_dict.items()}
    nan["head.weight"][0] = float("nan")
    save_checkpoint(workdir / "nan.ckpt", task="segment", model=ck.model, config=ck.config, vocab=ck.vocab,
                    state_dict=nan)
    r = invoke("segment", "p.png", "-o", "m.png", "-c", "nan.ckpt")
    assert r.exit_code == 2 and "head.weight" in r.stderr and torch.isnan(nan["head.weight"]).any()
