"""The segmentation task: training (for ``core.train.fit``), prediction and evaluation.

Prediction and evaluation work at each image's own size: the image is resized so its
shorter side is ``size`` (both sides rounded to a multiple of 32), the logits are resized
back (bilinear) to the original height and width, and the arg-max is the mask. Metrics
are one confusion matrix over every labelled pixel of the split (void = 255 left out).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from songkit.core.errors import UserError
from songkit.core.metrics import ConfusionMatrix
from songkit.tasks.segment.data import (
    Augment,
    VOCSegmentation,
    class_weights_from_counts,
    model_input_size,
    resize_for_model,
    resolve_data,
    to_tensor,
)
from songkit.tasks.segment.model import (
    MODELS,
    ResNet34Encoder,
    build_model,
    count_parameters,
)
from songkit.tasks.segment.spec import (
    DEFAULT_SIZE,
    IGNORE_INDEX,
    INITS,
    MEAN,
    STD,
    TASK,
    VOC_CLASSES,
)

# ---------------------------------------------------------------- prediction


@torch.inference_mode()
def predict_logits(model, images: list[np.ndarray], size: int, device, channels_last: bool | None = None) -> list[torch.Tensor]:
    """Logits (C, H, W) at each image's own size; images of the same model-input shape share a batch.

    Inputs go in channels-last when the model's weights are (``load_model`` converts them: 1.1-1.6x
    faster inference on CPU, bench/bench_segment.py)."""
    model.eval()
    if channels_last is None:
        conv = next((p for p in model.parameters() if p.dim() == 4), None)
        channels_last = conv is not None and conv.is_contiguous(memory_format=torch.channels_last) \
            and not conv.is_contiguous()
    out: list[torch.Tensor | None] = [None] * len(images)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(model_input_size(img.shape[0], img.shape[1], size), []).append(i)
    for idx in groups.values():
        th, tw = model_input_size(images[idx[0]].shape[0], images[idx[0]].shape[1], size)
        x = to_tensor([resize_for_model(images[i], size) for i in idx]).to(device)  # (B, 3, th+pad, tw+pad)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x).float()[:, :, :th, :tw]  # (B, C, th, tw): padding cropped off
        for j, i in enumerate(idx):
            h, w = images[i].shape[:2]
            one = logits[j : j + 1]
            if one.shape[-2:] != (h, w):
                one = F.interpolate(one, size=(h, w), mode="bilinear", align_corners=False)
            out[i] = one[0].cpu()
    return out  # type: ignore[return-value]


def predict_masks(model, images: list[np.ndarray], size: int, device, batch_size: int = 8) -> list[np.ndarray]:
    """Class-index masks (H, W) uint8 for RGB uint8 images (H, W, 3)."""
    masks = []
    for start in range(0, len(images), batch_size):
        for logits in predict_logits(model, images[start : start + batch_size], size, device):
            masks.append(logits.argmax(0).to(torch.uint8).numpy())
    return masks


def evaluate_dataset(model, dataset: VOCSegmentation, size: int, device, batch_size: int = 8,
                     progress: bool = False) -> tuple[ConfusionMatrix, float]:
    """(confusion matrix over every labelled pixel of the split, mean cross-entropy per labelled pixel)."""
    from songkit.core.progress import track

    cm = ConfusionMatrix(dataset.num_classes, ignore_index=IGNORE_INDEX)
    loss_sum, pixels = 0.0, 0
    starts = range(0, len(dataset), batch_size)
    if progress:
        starts = track(starts, total=len(starts), description="eval", unit="batch")
    for start in starts:
        samples = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        for (image, mask), logits in zip(samples, predict_logits(model, [s[0] for s in samples], size, device)):
            target = torch.from_numpy(mask.astype(np.int64))
            cm.update(target, logits.argmax(0))
            n = int((target != IGNORE_INDEX).sum())
            if n:
                loss_sum += float(F.cross_entropy(logits[None], target[None], ignore_index=IGNORE_INDEX, reduction="sum"))
                pixels += n
    return cm, loss_sum / max(1, pixels)


# ---------------------------------------------------------------- loading a trained model


def load_model(path, device="cpu"):
    """(model on ``device`` in eval mode, Checkpoint) from a segment checkpoint."""
    from songkit.core.checkpoint import load_checkpoint

    ck = load_checkpoint(path, task=TASK)
    if ck.model not in MODELS:
        raise UserError(f"{ck.path}: unknown segment model '{ck.model}' (known: {', '.join(MODELS)})")
    try:
        model = build_model(ck.model, ck.config)
        model.load_state_dict(ck.state_dict, strict=True)
    except (TypeError, RuntimeError) as e:
        raise UserError(f"{ck.path}: weights do not fit model '{ck.model}' ({str(e).splitlines()[0][:160]})") from None
    # channels-last: faster convolutions on CPU (bench/bench_segment.py); predict_logits follows it
    model.to(device).to(memory_format=torch.channels_last).eval()
    return model, ck


def load_encoder_weights(model, path) -> None:
    """Load torchvision's ``resnet34-b627a593.pth`` (or any resnet34 state dict) into ``model.encoder``."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such encoder weights file")
    if not isinstance(getattr(model, "encoder", None), ResNet34Encoder):
        raise UserError(f"{p}: --encoder-weights needs --model resnet34_unet")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's
        raise UserError(f"{p}: not a PyTorch state dict ({str(e).splitlines()[0][:120]})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise UserError(f"{p}: not a state dict")
    model.encoder.load_torchvision(sd, source=str(p))


# ---------------------------------------------------------------- training


class SegmentTrainTask:
    """The ``fit`` protocol over a VOC split: augmented crops in, weighted cross-entropy out."""

    def __init__(self, train: VOCSegmentation, val: VOCSegmentation, augment: Augment, batch_size: int,
                 seed: int, size: int, class_weights: torch.Tensor | None = None, channels_last: bool = False,
                 eval_batch_size: int = 8):
        self.train, self.val, self.augment = train, val, augment
        self.batch_size, self.seed, self.size = batch_size, seed, size
        self.class_weights = class_weights
        self.channels_last = channels_last
        self.eval_batch_size = eval_batch_size

    def _order(self, epoch: int, rank: int, world: int) -> list[int]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train)).tolist()
        per_rank = len(order) // world  # the same count on every rank
        return order[rank * per_rank : (rank + 1) * per_rank]

    def num_batches(self, epoch: int, rank: int, world: int) -> int:
        n = len(self._order(epoch, rank, world))
        return max(1, n // self.batch_size) if n >= self.batch_size else 1

    def batches(self, epoch: int, rank: int, world: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order(epoch, rank, world)
        n_batches = self.num_batches(epoch, rank, world)
        for b in range(n_batches):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            images, masks = [], []
            for i in idx:
                image, mask = self.train[i]
                # per-sample RNG from (seed, epoch, index): the same crops after --resume
                rng = np.random.default_rng([self.seed, epoch, i])
                image, mask = self.augment(image, mask, rng)
                images.append(image)
                masks.append(mask)
            yield to_tensor(images), torch.from_numpy(np.stack(masks).astype(np.int64))

    def train_step(self, model, batch, device):
        x, y = batch  # (B, 3, S, S), (B, S, S)
        x, y = x.to(device), y.to(device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)  # (B, C, S, S)
        weight = self.class_weights.to(device) if self.class_weights is not None else None
        loss = F.cross_entropy(logits.float(), y, weight=weight, ignore_index=IGNORE_INDEX)
        if torch.isnan(loss) and not bool((y != IGNORE_INDEX).any()):
            loss = logits.sum() * 0.0  # a crop that is all void: no signal, not a divergence
        return loss, x.shape[0]

    def evaluate(self, model, device) -> dict[str, float]:
        cm, loss = evaluate_dataset(model, self.val, self.size, device, self.eval_batch_size)
        return {"val_loss": loss, "val_miou": cm.mean_iou(), "val_acc": cm.accuracy(),
                "val_mean_acc": cm.mean_accuracy()}


@dataclass
class SegmentSettings:
    """Everything `songkit train segment` decides besides the optimiser (saved in ``extra``)."""

    model: str = "erfnet"
    size: int = 64
    batch_size: int = 8
    class_weights: str = "none"  # none | auto | comma-separated list of NUM_CLASSES floats
    init: str | None = None  # None: the model's own default (xavier for fcn, kaiming otherwise)
    width: int | None = None  # U-Net's first width (None: 32)
    encoder_weights: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    channels_last: bool = False
    augment: dict = field(default_factory=dict)  # Augment fields to override


def parse_class_weights(spec: str, train: VOCSegmentation) -> tuple[torch.Tensor | None, list[int] | None]:
    """(weights or None, per-class pixel counts when they were counted)."""
    spec = (spec or "none").strip().lower()
    if spec == "none":
        return None, None
    if spec == "auto":
        counts = train.class_pixel_counts()
        return torch.tensor(class_weights_from_counts(counts), dtype=torch.float32), counts.tolist()
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError:
        raise UserError(f"--class-weights {spec}: expected auto, none or {train.num_classes} comma-separated numbers") from None
    if len(values) != train.num_classes or any(v < 0 or not math.isfinite(v) for v in values):
        raise UserError(f"--class-weights: expected {train.num_classes} non-negative numbers, got {len(values)}")
    return torch.tensor(values, dtype=torch.float32), None


def train(data, settings: SegmentSettings, cfg, out_dir, device: str = "auto", resume: bool = False,
          stop_after_epoch: int | None = None) -> list[dict]:
    """Train a segmentation model with ``core.train.fit``; writes best.ckpt/last.ckpt in ``out_dir``."""
    from songkit.core.progress import log
    from songkit.core.train import fit

    if settings.model not in MODELS:
        raise UserError(f"--model {settings.model}: expected one of {', '.join(MODELS)}")
    if settings.init is not None and settings.init not in INITS:
        raise UserError(f"--init {settings.init}: expected one of {', '.join(INITS)}")
    if settings.size < 32 or settings.size % 32:
        raise UserError(f"--size {settings.size}: expected a multiple of 32 (32 or more)")
    if settings.batch_size < 1:
        raise UserError(f"--batch-size {settings.batch_size}: expected 1 or more")
    root = resolve_data(data)
    train_ds = VOCSegmentation.open(root, settings.train_split)
    val_ds = VOCSegmentation.open(root, settings.val_split)
    # decode every training pair once up front: a bad file stops the run before the first step
    weights, counts = parse_class_weights(settings.class_weights, train_ds)
    if counts is None:
        counts = train_ds.class_pixel_counts().tolist()
    val_ds.class_pixel_counts()  # and every validation pair, so a bad file cannot stop the run after epoch 1
    try:
        augment = Augment(size=settings.size, **settings.augment)
    except TypeError as e:
        raise UserError(f"augmentation settings: {e}") from None

    cfg_cls, _ = MODELS[settings.model]
    config = cfg_cls()
    if settings.init is not None:
        config.init = settings.init
    if settings.width is not None:
        if not hasattr(config, "base"):
            raise UserError(f"--width applies to --model unet, not {settings.model}")
        if settings.width < 1:
            raise UserError(f"--width {settings.width}: expected 1 or more")
        config.base = settings.width
    config = dataclasses.asdict(config)
    model = build_model(settings.model, config)
    if settings.encoder_weights:
        load_encoder_weights(model, settings.encoder_weights)
        log(f"encoder weights from {settings.encoder_weights}")
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    log(f"{settings.model}: {count_parameters(model):,} parameters; {root}: {len(train_ds)} {settings.train_split} / "
        f"{len(val_ds)} {settings.val_split} images")
    if weights is not None:
        log("class weights: " + ", ".join(f"{VOC_CLASSES[i] if i < len(VOC_CLASSES) else i} {w:.3g}"
                                          for i, w in enumerate(weights.tolist()) if counts[i] > 0))
    task = SegmentTrainTask(train_ds, val_ds, augment, settings.batch_size, cfg.seed, settings.size,
                            class_weights=weights, channels_last=settings.channels_last)
    extra = {
        "size": settings.size, "mean": list(MEAN), "std": list(STD), "data": str(root),
        "train_split": settings.train_split, "val_split": settings.val_split,
        "class_weights": weights.tolist() if weights is not None else None,
        "class_pixels": counts, "augment": dataclasses.asdict(augment),
        "encoder_weights": os.path.basename(settings.encoder_weights) if settings.encoder_weights else None,
        "batch_size": settings.batch_size,
    }
    meta = {"task": TASK, "model": settings.model, "config": config, "vocab": list(VOC_CLASSES[: train_ds.num_classes]),
            "extra": extra}
    return fit(model, task, cfg, out_dir, meta, device=device, resume=resume, stop_after_epoch=stop_after_epoch)


def evaluate_checkpoint(checkpoint, data=None, split: str = "val", device="cpu", size: int | None = None,
                        batch_size: int = 8, progress: bool = True) -> dict:
    """Metrics of a checkpoint on a split: accuracy, mean accuracy, per-class IoU, mean IoU, absent classes."""
    from songkit.core.device import resolve_device

    dev = resolve_device(device)
    model, ck = load_model(checkpoint, dev)
    size = size or int(ck.extra.get("size", DEFAULT_SIZE))
    dataset = VOCSegmentation.open(resolve_data(data), split, num_classes=len(ck.vocab))
    cm, loss = evaluate_dataset(model, dataset, size, dev, batch_size, progress=progress)
    result = cm.as_dict(list(ck.vocab))
    result.update({"checkpoint": str(ck.path), "model": ck.model, "data": str(dataset.root), "split": split,
                   "images": len(dataset), "pixels": cm.total, "size": size, "loss": loss})
    result["_matrix"] = cm.mat.tolist()
    return result


def segment_files(files: list[Path], out, checkpoint=None, device="cpu", size: int | None = None,
                  overlay: bool = False, batch_size: int = 4) -> Iterator[dict]:
    """Segment image files; write ``out/<stem>.png`` (VOC palette) and optionally ``<stem>.overlay.jpg``.

    ``out`` '-' writes the one mask PNG to stdout. Yields one row per image: paths and the
    share of the image's pixels given to each class.
    """
    import io
    import sys

    from songkit.core.checkpoint import default_checkpoint
    from songkit.core.io import atomic_write_bytes, open_output
    from songkit.tasks.segment.data import load_image, save_mask_png
    from songkit.tasks.segment.data import overlay as blend

    model, ck = load_model(checkpoint or default_checkpoint(TASK), device)
    size = size or int(ck.extra.get("size", DEFAULT_SIZE))
    names = list(ck.vocab)
    to_stdout = str(out) == "-"
    out_dir = None if to_stdout else Path(out)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    stems: dict[str, int] = {}
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        images = [load_image(f) for f in chunk]
        for path, image, mask in zip(chunk, images, predict_masks(model, images, size, device, batch_size)):
            buf = io.BytesIO()
            save_mask_png(mask, buf)
            if to_stdout:
                with open_output("-", "wb") as f:
                    f.write(buf.getvalue())
                dest = "-"
            else:
                # two inputs called a/x.jpg and b/x.jpg must not overwrite each other
                stem = path.stem
                stems[stem] = stems.get(stem, 0) + 1
                if stems[stem] > 1:
                    stem = f"{stem}-{stems[stem]}"
                dest = out_dir / f"{stem}.png"
                atomic_write_bytes(dest, buf.getvalue())
                if overlay:
                    pic = io.BytesIO()
                    blend(image, mask).save(pic, format="JPEG", quality=90)
                    atomic_write_bytes(out_dir / f"{stem}.overlay.jpg", pic.getvalue())
            counts = np.bincount(mask.ravel(), minlength=len(names))
            total = max(1, mask.size)
            yield {"image": str(path), "mask": str(dest), "width": int(mask.shape[1]), "height": int(mask.shape[0]),
                   "classes": {names[i]: round(float(c) / total, 4) for i, c in enumerate(counts[: len(names)]) if c}}
    sys.stdout.flush()


def export_checkpoint(src, dst) -> Path:
    """Copy a run's checkpoint for shipping: float weights stored as float16 (half the size),
    no training state. ``load_model`` copies them back into float32 parameters."""
    from songkit.core.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(src, task=TASK)
    state = {k: v.half() if v.is_floating_point() else v for k, v in ck.state_dict.items()}
    extra = dict(ck.extra, exported_from=str(Path(src).name), weights_dtype="float16")
    return save_checkpoint(dst, task=TASK, model=ck.model, config=ck.config, vocab=ck.vocab, state_dict=state,
                           history=ck.history, extra=extra)
