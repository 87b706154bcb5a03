"""Training a segmentation model with ``core.train.fit``: augmented crops in, weighted cross-entropy out.

``train(data, run, options)`` checks the options and the data (every file's header, before the first
step), builds the datasets and a training task, and hands ``fit`` a model factory (built after seeding:
the same seed gives the same weights). The model config saved in the checkpoint holds the input size
and normalisation, which prediction reads back.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from songkit.core.errors import UserError
from songkit.tasks.segment.constants import (
    IGNORE_INDEX,
    INITS,
    MAX_SIZE,
    MIN_SIZE,
    TASK,
    VOC_CLASSES,
    TrainOptions,
)
from songkit.tasks.segment.data import (
    TrainCrops,
    collate_crops,
    raise_bad,
    resolve_data,
)
from songkit.tasks.segment.evaluate import evaluate_split
from songkit.tasks.segment.model import MODELS, count_parameters
from songkit.tasks.segment.transforms import Augment, fill_colour
from songkit.tasks.segment.voc import VOCSegmentation, class_weights_from_counts


class SegmentTrainTask:
    """The ``fit`` protocol over a VOC split (torchvision's train_one_epoch/evaluate, as methods)."""

    def __init__(self, crops: TrainCrops, valid: VOCSegmentation, batch_size: int, seed: int, workers: int = 0,
                 class_weights: torch.Tensor | None = None, eval_batch_size: int = 8, amp: bool = True):
        self.crops, self.valid, self.amp = crops, valid, amp
        self.batch_size, self.seed, self.workers = batch_size, seed, workers
        self.class_weights = class_weights
        self.eval_batch_size = eval_batch_size

    def _loader(self, epoch: int, rank: int, world: int):
        from songkit.core.data import make_loader

        # full batches only, unless the split is smaller than one batch per process
        drop_last = len(self.crops) >= self.batch_size * world
        return make_loader(self.crops, batch_size=self.batch_size, shuffle=True, seed=self.seed, epoch=epoch,
                           rank=rank, world=world, workers=self.workers, collate_fn=collate_crops,
                           drop_last=drop_last)

    def num_batches(self, epoch: int, rank: int, world: int) -> int:
        return len(self._loader(epoch, rank, world))

    def batches(self, epoch: int, rank: int, world: int):
        for batch in self._loader(epoch, rank, world):
            if isinstance(batch, str):  # a file that failed to decode in a worker: one line here
                raise_bad([batch])
            yield batch  # (B, 3, S, S) float, (B, S, S) int64

    def train_step(self, model, batch, device):
        x, y = batch[0].to(device), batch[1].to(device)  # (B, 3, S, S), (B, S, S)
        logits = model(x).float()  # (B, C, S, S)
        weight = self.class_weights.to(device) if self.class_weights is not None else None
        loss = F.cross_entropy(logits, y, weight=weight, ignore_index=IGNORE_INDEX)
        if torch.isnan(loss) and not bool((y != IGNORE_INDEX).any()):
            loss = logits.sum() * 0.0  # a crop that is all void: no signal, not a divergence
        return loss, x.shape[0]

    def evaluate(self, model, device) -> dict[str, float]:
        cm, loss = evaluate_split(model, self.valid, device, self.amp, batch_size=self.eval_batch_size,
                                  workers=self.workers)
        return {"val_loss": loss, "val_miou": cm.mean_iou(), "val_acc": cm.accuracy(),
                "val_mean_acc": cm.mean_accuracy()}


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
        raise UserError(f"--class-weights {spec}: expected auto, none or {train.num_classes} comma-separated "
                        "numbers") from None
    if len(values) != train.num_classes or any(v < 0 or not math.isfinite(v) for v in values):
        raise UserError(f"--class-weights: expected {train.num_classes} non-negative numbers, got {len(values)}")
    return torch.tensor(values, dtype=torch.float32), None


def check_options(options: TrainOptions) -> None:
    """One line per bad option, before any data is read."""
    if options.model not in MODELS:
        raise UserError(f"--model {options.model}: expected one of {', '.join(MODELS)}")
    if options.init is not None and options.init not in INITS:
        raise UserError(f"--init {options.init}: expected one of {', '.join(INITS)}")
    if not MIN_SIZE <= options.size <= MAX_SIZE or options.size % 32:
        raise UserError(f"--size {options.size}: expected a multiple of 32 from {MIN_SIZE} to {MAX_SIZE}")
    if options.width is not None and options.model != "unet":
        raise UserError(f"--width applies to --model unet, not {options.model}")
    if options.encoder_weights and options.model != "resnet34_unet":
        raise UserError(f"{options.encoder_weights}: --encoder-weights needs --model resnet34_unet")


def model_config(options: TrainOptions):
    """The model's config dataclass from the options (size and normalisation included)."""
    cfg_cls, _ = MODELS[options.model]
    fields = {"size": options.size}
    if options.init is not None:
        fields["init"] = options.init
    if options.width is not None:
        fields["base"] = options.width
    config = cfg_cls(**fields)
    try:
        config.check()
    except ValueError as e:
        raise UserError(f"--{str(e).split(':')[0]}: {str(e).split(':', 1)[-1].strip()}") from None
    return config


def train(data: list[Path] | None, run, options: TrainOptions) -> list[dict]:
    """Train a segmentation model; writes best.ckpt/last.ckpt/metrics.jsonl/curves.png in ``run.out``."""
    from songkit.core.progress import log
    from songkit.core.train import fit

    check_options(options)
    if data and len(data) > 1:
        raise UserError("--data: give one VOC folder")
    root = resolve_data(data[0] if data else None)
    train_split = VOCSegmentation.open(root, options.train_split)
    valid_split = VOCSegmentation.open(root, options.valid_split)
    train_split.check_headers()  # a bad file stops the run before its first step, not after an epoch
    valid_split.check_headers()
    weights, counts = parse_class_weights(options.class_weights, train_split)
    config = model_config(options)
    fill = fill_colour(config.mean)
    augment = (Augment(size=options.size, rotate=options.rotate, shear=options.shear, vflip=options.vflip, fill=fill)
               if options.augment else Augment.scale_and_crop(options.size, fill))
    _, module = MODELS[options.model]

    def build_model():
        model = module(config)
        if options.encoder_weights:
            load_encoder_weights(model, options.encoder_weights)
        log(f"{options.model}: {count_parameters(model):,} parameters; {root}: {len(train_split)} "
            f"{options.train_split} / {len(valid_split)} {options.valid_split} pictures")
        return model

    if weights is not None:
        log("class weights: " + ", ".join(f"{VOC_CLASSES[i] if i < len(VOC_CLASSES) else i} {w:.3g}"
                                          for i, w in enumerate(weights.tolist()) if counts is None or counts[i] > 0))
    crops = TrainCrops(train_split, augment, run.seed, config.mean, config.std)
    task = SegmentTrainTask(crops, valid_split, run.batch_size, run.seed, workers=run.workers, class_weights=weights,
                            amp=run.amp)
    extra = {
        "data": str(root), "synthetic": not data, "train_split": options.train_split,
        "valid_split": options.valid_split, "class_weights": weights.tolist() if weights is not None else None,
        "class_pixels": counts, "augment": {k: v for k, v in vars(augment).items()},
        "encoder_weights": os.path.basename(options.encoder_weights) if options.encoder_weights else None,
    }
    meta = {"task": TASK, "model": options.model, "config": config,
            "vocab": list(VOC_CLASSES[: train_split.num_classes]), "extra": extra}
    cfg = run.train_config(monitor="val_miou", monitor_mode="max")
    return fit(build_model, task, cfg, run.out, meta, device=run.device, resume=run.resume)


def export_checkpoint(src, dst) -> Path:
    """Copy a run's checkpoint for shipping: float weights stored as float16 (half the size), no
    training state. The loader copies them back into float32 parameters."""
    from songkit.core.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(src, task=TASK)
    state = {k: v.half() if v.is_floating_point() else v for k, v in ck.state_dict.items()}
    extra = dict(ck.extra, exported_from=str(Path(src).name), weights_dtype="float16")
    return save_checkpoint(dst, task=TASK, model=ck.model, config=ck.config, vocab=ck.vocab, state_dict=state,
                           history=ck.history, extra=extra)


def load_encoder_weights(model, path) -> None:
    """Load torchvision's ``resnet34-b627a593.pth`` (or any resnet34 state dict) into ``model.encoder``."""
    from songkit.tasks.segment.model import ResNet34Encoder

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
