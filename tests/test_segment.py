"""songkit segment: metrics, models, VOC files, joint transforms, prediction, training and repeatability.

The CLI's behaviour is in test_segment_cli.py, hostile files in test_segment_fuzz.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from songkit.core.errors import UserError
from songkit.core.metrics import ConfusionMatrix
from songkit.tasks.segment import synthetic as S
from songkit.tasks.segment import transforms as T
from songkit.tasks.segment import voc as D
from songkit.tasks.segment.constants import IGNORE_INDEX, VOC_CLASSES, voc_palette
from songkit.tasks.segment.model import (
    FCN,
    MODELS,
    ERFNet,
    ERFNetConfig,
    FCNConfig,
    build_model,
    count_parameters,
)

# ---------------------------------------------------------------- metrics


def torchvision_confusion(truth: torch.Tensor, pred: torch.Tensor, n: int):
    """torchvision references/segmentation/utils.py ConfusionMatrix, verbatim arithmetic."""
    a, b = truth.flatten(), pred.flatten()
    k = (a >= 0) & (a < n)
    inds = n * a[k].to(torch.int64) + b[k]
    h = torch.bincount(inds, minlength=n**2).reshape(n, n).float()
    acc_global = torch.diag(h).sum() / h.sum()
    acc = torch.diag(h) / h.sum(1)
    iu = torch.diag(h) / (h.sum(1) + h.sum(0) - torch.diag(h))
    return h, acc_global, acc, iu


def test_metrics_match_torchvision_on_hand_made_masks():
    truth = torch.tensor([[0, 0, 1], [1, 2, 255]])
    pred = torch.tensor([[0, 1, 1], [1, 0, 2]])
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(truth, pred)
    # by hand: pairs (0,0) (0,1) (1,1) (1,1) (2,0); the void pixel is left out
    assert cm.mat.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert cm.accuracy() == pytest.approx(3 / 5)
    assert cm.per_class_accuracy() == pytest.approx([0.5, 1.0, 0.0])
    assert cm.iou() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert cm.mean_iou() == pytest.approx(1 / 3)
    assert cm.mean_accuracy() == pytest.approx(0.5)
    h, acc_global, acc, iu = torchvision_confusion(truth, pred, 3)
    assert cm.mat.tolist() == h.long().tolist()
    assert cm.accuracy() == pytest.approx(acc_global.item())
    assert cm.per_class_accuracy() == pytest.approx(acc.tolist())
    assert cm.iou() == pytest.approx(iu.tolist())
    assert cm.mean_iou() == pytest.approx(iu.mean().item())


def test_absent_class_left_out_of_mean_and_reported():
    truth = torch.tensor([0, 0, 1, 1, 255, 255])
    pred = torch.tensor([0, 1, 1, 1, 3, 0])
    cm = ConfusionMatrix(4)
    cm.update(truth, pred)
    _, _, _, iu = torchvision_confusion(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]), 4)
    # class 2 and 3 are in neither truth nor prediction (void pixels do not count)
    assert math.isnan(iu[2].item()) and math.isnan(cm.iou()[2])
    assert cm.absent_classes() == [2, 3]
    assert cm.mean_iou() == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert cm.as_dict(["bg", "a", "b", "c"])["absent_classes"] == ["b", "c"]


def test_metrics_accumulate_over_a_dataset_not_per_image():
    # two images: the dataset-level IoU is not the mean of per-image IoUs
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([1, 1, 1, 1]), torch.tensor([1, 1, 1, 1]))  # IoU(1) = 1 alone
    cm.update(torch.tensor([1, 0, 0, 0]), torch.tensor([0, 0, 0, 0]))  # IoU(1) = 0 alone
    assert cm.iou()[1] == pytest.approx(4 / 5)


# ---------------------------------------------------------------- models


def test_fcn_parameter_count_matches_the_seed_description():
    conv = lambda a, b, k=3: a * b * k * k + b
    bn = lambda c: 2 * c
    enc = [(3, 32), (32, 64), (64, 128), (128, 256), (256, 512)]
    dec = [(512, 512), (512, 256), (256, 128), (128, 64), (64, 32)]
    expected = sum(conv(a, b) + bn(b) for a, b in enc + dec) + conv(32, 21, 1)
    model = FCN(FCNConfig())
    assert count_parameters(model) == expected == 5_500_245
    strides = [m.stride for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert strides == [(2, 2)] * 10 + [(1, 1)]


def test_erfnet_has_about_2_07_million_parameters():
    n = count_parameters(ERFNet(ERFNetConfig()))
    assert abs(n - 2.07e6) / 2.07e6 < 0.01, n
    darren = count_parameters(build_model("darrennet"))
    assert darren == 3_007_041
    assert n == 2_064_321


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_maps_images_to_logits_of_the_same_size(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    with torch.inference_mode():
        y = model(torch.randn(2, 3, 64, 96))
    assert y.shape == (2, 21, 64, 96)
    assert torch.isfinite(y).all()


def _torchvision_resnet34_shapes() -> dict[str, tuple[int, ...]]:
    """torchvision.models.resnet34's state-dict keys and shapes, from its architecture
    (BasicBlocks 3-4-6-3 at 64-128-256-512, a 1x1 downsample in the first block of layers 2-4)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix, c):
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{k}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    a = 64
    for layer, (blocks, c) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for i in range(blocks):
            p = f"layer{layer}.{i}"
            shapes[f"{p}.conv1.weight"] = (c, a if i == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            shapes[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if i == 0 and layer > 1:
                shapes[f"{p}.downsample.0.weight"] = (c, a, 1, 1)
                bn(f"{p}.downsample.1", c)
        a = c
    shapes["fc.weight"] = (1000, 512)
    shapes["fc.bias"] = (1000,)
    return shapes


def test_resnet34_encoder_loads_a_torchvision_state_dict_strictly(tmp_path):
    from songkit.tasks.segment.train import load_encoder_weights

    shapes = _torchvision_resnet34_shapes()
    assert len(shapes) == 218  # torchvision resnet34().state_dict() has 218 entries
    g = torch.Generator().manual_seed(0)
    sd = {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
          for k, s in shapes.items()}
    path = tmp_path / "resnet34-b627a593.pth"
    torch.save(sd, path)
    model = build_model("resnet34_unet")
    own = model.encoder.state_dict()
    assert {k: tuple(v.shape) for k, v in own.items()} == {k: s for k, s in shapes.items() if not k.startswith("fc.")}
    load_encoder_weights(model, path)
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # a file with a key missing is refused, naming the file
    del sd["layer4.2.bn2.weight"]
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(UserError, match="broken.pth.*layer4.2.bn2.weight"):
        load_encoder_weights(model, tmp_path / "broken.pth")  # checked before anything is copied


def test_xavier_and_kaiming_initialisation():
    xavier = FCN(FCNConfig(init="xavier"))
    conv = xavier.encoder[2]["conv"]  # 64 -> 128, 3x3
    bound = math.sqrt(6 / (64 * 9 + 128 * 9))  # the seed's eq. 1
    assert conv.weight.abs().max() <= bound
    assert conv.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(conv.bias) == 0
    kaiming = FCN(FCNConfig(init="kaiming"))
    w = kaiming.encoder[2]["conv"].weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.05)  # fan_out, ReLU gain


# ---------------------------------------------------------------- the VOC layout and the embedded data


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    """A small generated dataset in the VOC layout (6 train, 3 val)."""
    return S.write_synthetic(tmp_path_factory.mktemp("voc"), S.SynthSpec(train=6, val=3, seed=1))


def test_synthetic_dataset_is_in_the_voc_layout(voc):
    assert voc.name == "VOC2007" and voc.parent.name == "VOCdevkit"
    ids = D.read_split(voc, "train")
    assert len(ids) == 6 and len(D.read_split(voc, "valid")) == 3 and len(D.read_split(voc, "trainval")) == 9
    with pytest.raises(UserError, match="--split val: spelled 'valid'"):
        D.read_split(voc, "val")
    with Image.open(voc / "SegmentationClass" / f"{ids[0]}.png") as im:
        assert im.mode == "P"
        assert im.getpalette()[: 3 * 16] == [v for rgb in voc_palette()[:16] for v in rgb]
    mask = D.load_mask(voc / "SegmentationClass" / f"{ids[0]}.png")
    values = set(np.unique(mask).tolist())
    assert 0 in values and IGNORE_INDEX in values and len(values - {0, 255}) >= 1  # objects with void borders
    assert D.find_voc_root(voc.parent) == voc  # VOCdevkit/
    assert D.find_voc_root(voc.parent.parent) == voc  # the folder holding VOCdevkit/


def test_synthetic_dataset_is_deterministic(tmp_path):
    a = S.write_synthetic(tmp_path / "a", S.SynthSpec(train=2, val=1, seed=3))
    b = S.write_synthetic(tmp_path / "b", S.SynthSpec(train=2, val=1, seed=3))
    for sub in ("SegmentationClass/2007_000001.png", "JPEGImages/2007_000002.jpg"):
        assert (a / sub).read_bytes() == (b / sub).read_bytes()


def test_mask_png_round_trip_keeps_indices(tmp_path):
    mask = np.array([[0, 1, 20], [255, 15, 0]], dtype=np.uint8)
    D.save_mask_png(mask, tmp_path / "m.png")
    assert np.array_equal(D.load_mask(tmp_path / "m.png"), mask)
    # the same mask saved as VOC colours in RGB maps back to the indices
    rgb = np.array(voc_palette(), dtype=np.uint8)[mask]
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(D.load_mask(tmp_path / "rgb.png"), mask)


def test_joint_augmentation_keeps_image_and_mask_aligned():
    np.random.default_rng(0)
    mask = np.zeros((90, 120), dtype=np.uint8)
    mask[10:60, 20:70] = 8
    mask[40:85, 70:115] = 15
    colours = np.array([[0, 0, 0]] + [[0, 0, 0]] * 7 + [[255, 0, 0]] + [[0, 0, 0]] * 6 + [[0, 0, 255]], dtype=np.uint8)
    image = colours[mask]
    aug = T.Augment(size=64, rotate=20, shear=5, jitter=0.0)
    for seed in range(8):
        img, msk = aug(image, mask, np.random.default_rng(seed))
        assert img.shape == (64, 64, 3) and msk.shape == (64, 64)
        assert set(np.unique(msk).tolist()) <= {0, 8, 15, 255}  # nearest neighbour: no new values
        for cls, channel in ((8, 0), (15, 2)):
            inside = msk == cls
            if inside.sum() > 20:
                # pixels of the class are the class's colour (bilinear blur only at edges)
                assert (img[..., channel][inside] > 128).mean() > 0.9
    # a rotation brings in void at the corners, never background (golden counts: the draw is seeded)
    img, msk = T.Augment(size=64, scale=(1.0, 1.0), rotate=30, shear=0, hflip=False, jitter=0)(
        image, mask, np.random.default_rng(1))
    counts = {int(v): int(c) for v, c in zip(*np.unique(msk, return_counts=True))}
    assert counts == GOLDEN_ROTATED_COUNTS, counts
    assert (img[msk == 255] == T.fill_colour()).all()  # rotated-in corners: the mean colour


GOLDEN_ROTATED_COUNTS = {0: 1712, 8: 1288, 15: 619, 255: 477}  # background, cat, person, void


def test_resize_and_pad_for_the_model():
    img = np.zeros((75, 100, 3), dtype=np.uint8)
    assert T.model_input_size(75, 100, 64) == (64, 85)
    x = T.resize_for_model(img, 64)
    assert x.shape == (64, 96, 3)  # padded up to a multiple of 32
    # tiny pictures are scaled up; extremely thin ones shrunk to a longer side of 8 x size, never blown up
    assert T.model_input_size(1, 1, 64) == (64, 64)
    assert T.model_input_size(1, 9000, 64) == (1, 512)
    assert T.model_input_size(9000, 9000, 64) == (64, 64)
    assert T.model_input_size(100, 2000, 64) == (26, 512)
    assert T.resize_for_model(np.zeros((1, 9000, 3), np.uint8), 64).shape == (32, 512, 3)


# ---------------------------------------------------------------- images in any format


def test_images_in_any_mode_become_rgb(tmp_path):
    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray((np.arange(600).reshape(20, 30) * 100).astype(np.uint16)).save(tmp_path / "deep.png")
    for name in ("grey.png", "rgba.png", "cmyk.jpg", "deep.png"):
        out = D.load_image(tmp_path / name)
        assert out.shape == (20, 30, 3) and out.dtype == np.uint8, name
    deep = D.load_image(tmp_path / "deep.png")
    assert deep.max() > 200 and deep.min() == 0  # 16-bit range scaled, not clipped


def test_exif_orientation_is_respected(tmp_path):
    im = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert D.load_image(tmp_path / "rot.jpg").shape == (40, 20, 3)


# ---------------------------------------------------------------- bad inputs


def _copy_voc(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src.parent.parent, dst)
    return dst / "VOCdevkit" / "VOC2007"


def test_mask_size_mismatch_names_the_file(voc, tmp_path):
    root = _copy_voc(voc, tmp_path / "v")
    first = D.read_split(root, "train")[0]
    D.save_mask_png(np.zeros((10, 10), np.uint8), root / "SegmentationClass" / f"{first}.png")
    ds = D.VOCSegmentation.open(root, "train")
    with pytest.raises(UserError, match=rf"{first}.png: mask is 10x10 but its image"):
        ds.class_pixel_counts()


def test_class_value_above_20_names_the_file(voc, tmp_path):
    root = _copy_voc(voc, tmp_path / "v")
    first = D.read_split(root, "train")[0]
    path = root / "SegmentationClass" / f"{first}.png"
    mask = D.load_mask(path)
    mask[0, 0] = 30
    D.save_mask_png(mask, path)
    with pytest.raises(UserError, match=rf"{first}.png: class values 30 above 20"):
        D.VOCSegmentation.open(root, "train")[0]


def test_corrupt_jpeg_names_the_file(voc, tmp_path):
    root = _copy_voc(voc, tmp_path / "v")
    ids = D.read_split(root, "train")
    truncated = root / "JPEGImages" / f"{ids[0]}.jpg"
    truncated.write_bytes(truncated.read_bytes()[:400])
    with pytest.raises(UserError, match=rf"{ids[0]}.jpg: corrupt or unreadable image"):
        D.load_image(truncated)
    garbage = root / "JPEGImages" / f"{ids[1]}.jpg"
    garbage.write_bytes(b"not a jpeg at all" * 10)
    with pytest.raises(UserError, match=rf"{ids[1]}.jpg: corrupt or unreadable image"):
        D.VOCSegmentation.open(root, "train")[1]


def test_split_list_naming_a_missing_file(voc, tmp_path):
    root = _copy_voc(voc, tmp_path / "v")
    listing = root / "ImageSets" / "Segmentation" / "train.txt"
    listing.write_text(listing.read_text() + "2007_999999\n")
    with pytest.raises(UserError, match=r"train.txt: lists '2007_999999' but its image .*2007_999999.jpg does not"):
        D.read_split(root, "train")
    with pytest.raises(UserError, match="no such split list"):
        D.read_split(root, "nosuchsplit")
    with pytest.raises(UserError, match="not a VOC folder"):
        D.find_voc_root(tmp_path)


def test_class_weights_median_frequency():
    w = D.class_weights_from_counts(np.array([800, 100, 100, 0]))
    assert w.tolist() == pytest.approx([0.125, 1.0, 1.0, 0.0])


def test_header_check_finds_a_mask_of_the_wrong_size_without_decoding(voc, tmp_path):
    root = _copy_voc(voc, tmp_path / "v")
    first = D.read_split(root, "valid")[0]
    D.save_mask_png(np.zeros((10, 12), np.uint8), root / "SegmentationClass" / f"{first}.png")
    D.VOCSegmentation.open(root, "train").check_headers()  # the other split is fine
    with pytest.raises(UserError, match=rf"{first}.png: mask is 12x10 but its image"):
        D.VOCSegmentation.open(root, "valid").check_headers()


# ---------------------------------------------------------------- prediction


def test_banded_upsampling_equals_interpolate():
    """The bounded-memory resize of the logits is F.interpolate's bilinear resize, band by band."""
    import torch.nn.functional as F

    from songkit.tasks.segment import infer

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, 9, generator=g)
    for height, width, band in ((7, 9, 1 << 24), (20, 31, 1 << 24), (20, 31, 5 * 31 * 3), (3, 50, 100), (1, 1, 10)):
        infer.BAND_ELEMENTS, before = band, infer.BAND_ELEMENTS
        try:
            got = torch.cat([b for _, b in infer.upsampled_bands(logits, height, width)], dim=1)
        finally:
            infer.BAND_ELEMENTS = before
        want = F.interpolate(logits[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5), (height, width)


def tiny_checkpoint(path: Path, synthetic: bool = False, **cfg) -> Path:
    """A U-Net of width 2 with seeded random weights, saved as a run would save it (no training)."""
    from dataclasses import asdict

    from songkit.core.checkpoint import save_checkpoint
    from songkit.tasks.segment.model import UNet, UNetConfig

    torch.manual_seed(0)
    config = UNetConfig(**{"base": 2, "size": 32, **cfg})
    model = UNet(config)
    save_checkpoint(path, task="segment", model="unet", config=asdict(config), vocab=list(VOC_CLASSES),
                    state_dict=model.state_dict(), extra={"synthetic": synthetic})
    return path


def test_prediction_uses_the_mean_std_and_size_saved_in_the_checkpoint(tmp_path):
    """Two checkpoints with the same weights but other normalisation predict differently, each as its
    config says (before, prediction used the constants whatever the checkpoint held)."""
    from songkit.tasks.segment.infer import load, predict_masks

    rng = np.random.default_rng(0)
    image = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    a, _ck_a = load(tiny_checkpoint(tmp_path / "a.ckpt"), "cpu")
    b, ck_b = load(tiny_checkpoint(tmp_path / "b.ckpt", mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5), size=64), "cpu")
    assert ck_b.config["mean"] == (0.1, 0.2, 0.3) and b.cfg.size == 64
    for model in (a, b):
        cfg = model.cfg
        x = T.to_tensor([T.resize_for_model(image, cfg.size, cfg.mean)], cfg.mean, cfg.std)
        with torch.inference_mode():
            th, tw = T.model_input_size(40, 50, cfg.size)
            logits = model(x)[:, :, :th, :tw]
        import torch.nn.functional as F

        want = F.interpolate(logits, size=(40, 50), mode="bilinear", align_corners=False)[0].argmax(0).numpy()
        # amp=False: the reference is plain fp32; on a CPU with native bf16 the default path rounds
        # the tiny random model's near-ties differently
        assert np.array_equal(predict_masks(model, [image], "cpu", amp=False)[0], want)
    assert not np.array_equal(predict_masks(a, [image], "cpu", amp=False)[0],
                              predict_masks(b, [image], "cpu", amp=False)[0])


# ---------------------------------------------------------------- training


def test_a_model_learns_a_tiny_task():
    """The baseline FCN fits four fixed 32x32 crops: loss falls and the masks come out right."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    aug = T.Augment(size=32, scale=(1.0, 1.0), rotate=0, shear=0, hflip=False, jitter=0)
    pairs = [aug(*S.synth_sample(rng), np.random.default_rng(i)) for i in range(4)]
    x = T.to_tensor([p[0] for p in pairs])  # (4, 3, 32, 32)
    y = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))  # (4, 32, 32)
    model = build_model("fcn")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y, ignore_index=IGNORE_INDEX)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    cm = ConfusionMatrix(21)
    with torch.no_grad():
        cm.update(y, model(x).argmax(1))
    assert losses[-1] < 0.3 * losses[0]
    assert cm.accuracy() > 0.95 and cm.mean_iou() > 0.6, (cm.accuracy(), cm.mean_iou())


def _run(out: Path, data: Path, seed: int = 0, epochs: int = 2, workers: int = 0, **options):
    from songkit.core.train import TrainRun
    from songkit.tasks.segment.constants import TrainOptions
    from songkit.tasks.segment.train import train

    run = TrainRun(data=[data], out=out, epochs=epochs, batch_size=4, lr=5e-3, device="cpu", seed=seed,
                   workers=workers)
    opts = TrainOptions(**{"model": "unet", "width": 4, "size": 32, **options})
    return train(run.data, run, opts)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short core.fit run (unet width 4, 32 px, 2 epochs of 2 steps) for the round trips below."""
    base = tmp_path_factory.mktemp("fit")
    root = S.write_synthetic(base / "data", S.SynthSpec(train=8, val=2, seed=5))
    history = _run(base / "run", root, class_weights="auto")
    return root, base / "run", history


def test_fit_writes_a_run_folder_with_the_input_settings_in_the_config(trained):
    from songkit.core.checkpoint import load_checkpoint

    _, run, _history = trained
    assert (run / "best.ckpt").is_file() and (run / "last.ckpt").is_file() and (run / "curves.png").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and {"val_miou", "val_acc", "val_loss"} <= set(rows[0])
    ck = load_checkpoint(run / "best.ckpt", task="segment")
    assert ck.vocab == list(VOC_CLASSES) and ck.model == "unet"
    assert ck.config["size"] == 32 and ck.config["base"] == 4 and tuple(ck.config["mean"]) == (0.485, 0.456, 0.406)
    assert ck.extra["synthetic"] is False and len(ck.extra["class_weights"]) == 21


def test_same_seed_gives_identical_tensors_and_workers_do_not_matter(trained, tmp_path):
    """Train twice in-process with the same seed (once decoding in 2 worker processes): every tensor of
    last.ckpt (weights, optimizer state) is identical; another seed differs."""
    root, first, _ = trained
    _run(tmp_path / "again", root, class_weights="auto", workers=2)
    a = torch.load(first / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "again" / "last.ckpt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for sa, sb in zip(a["train_state"]["optimizer"]["state"].values(), b["train_state"]["optimizer"]["state"].values()):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k
    _run(tmp_path / "other", root, seed=1, epochs=1, class_weights="auto")
    c = torch.load(tmp_path / "other" / "last.ckpt", weights_only=True)
    assert not torch.equal(a["state_dict"]["head.weight"], c["state_dict"]["head.weight"])


def test_crops_do_not_depend_on_the_loader(voc):
    """An item's augmentation comes from (seed, epoch, index): the same in any order, any worker."""
    from songkit.tasks.segment.data import TrainCrops

    crops = TrainCrops(D.VOCSegmentation.open(voc, "train"), T.Augment(size=32), seed=3,
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    crops.set_epoch(1)
    x3, y3 = crops[3]
    _ = crops[0], crops[5]
    assert torch.equal(crops[3][0], x3) and torch.equal(crops[3][1], y3)
    crops.set_epoch(2)
    assert not torch.equal(crops[3][0], x3)
    assert x3.shape == (3, 32, 32) and y3.dtype == torch.int64


def test_eval_matches_a_recomputed_confusion_matrix(trained):
    from songkit.tasks.segment.evaluate import evaluate
    from songkit.tasks.segment.infer import load, predict_masks

    root, run, _ = trained
    result = evaluate(run, root, "valid", "cpu", progress=False)  # a run folder: its best.ckpt
    model, _ck = load(run / "best.ckpt")
    ds = D.VOCSegmentation.open(root, "valid")
    cm = ConfusionMatrix(21)
    for i, p in enumerate(predict_masks(model, [ds[i][0] for i in range(len(ds))], "cpu")):
        assert p.shape == ds[i][1].shape
        cm.update(torch.from_numpy(ds[i][1]), torch.from_numpy(p))
    assert result["mean_iou"] == pytest.approx(cm.mean_iou())
    assert result["accuracy"] == pytest.approx(cm.accuracy())
    assert result["pixels"] == cm.total and result["size"] == 32
    absent = [VOC_CLASSES[i] for i in cm.absent_classes()]
    assert absent and result["absent_classes"] == absent  # e.g. 'bicycle': never in the generated data
    assert all(math.isnan(result["per_class"][name]["iou"]) for name in absent)


def test_width_applies_only_to_unet(voc, tmp_path):
    with pytest.raises(UserError, match="--width applies to --model unet"):
        _run(tmp_path / "run", voc, model="erfnet", width=8)


DEFAULT_CKPT = Path(__file__).resolve().parent.parent / "src/songkit/tasks/segment/weights/default.ckpt"
GOLDEN_DEFAULT_MIOU = 0.8180  # `songkit eval segment` on the shipped checkpoint (docs/segment.md)


@pytest.mark.skipif(not DEFAULT_CKPT.is_file(), reason="no shipped default checkpoint (make checkpoint-segment)")
def test_default_checkpoint_is_small_and_scores_its_golden_value():
    from songkit.tasks.segment.evaluate import evaluate

    assert DEFAULT_CKPT.stat().st_size < 6_000_000
    # fp32: bf16 kernels differ between CPUs (0.8186 on an AMX Xeon); the fp32 path does not depend on them
    result = evaluate(None, None, "valid", "cpu", amp=False, progress=False)  # builds the embedded set
    assert result["images"] == 50 and result["pixels"] == 428_958 and result["model"] == "unet"
    assert result["mean_iou"] == pytest.approx(GOLDEN_DEFAULT_MIOU, abs=5e-4)
    assert result["accuracy"] == pytest.approx(0.9790, abs=5e-4)
