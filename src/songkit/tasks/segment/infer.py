"""Prediction: pictures in, class-index masks out, at each picture's own size.

The picture is resized so its shorter side is the model's ``size`` (the longer side at most
``MAX_ASPECT`` times that), padded right/bottom to a multiple of 32 with the mean colour and
normalised with the mean/std of the model's config (the values it was trained with, read from the
checkpoint). The logits are cropped back and resized bilinearly to the picture's height and width in
bands of rows, so a 9,000 x 9,000 picture never holds its 21 full-size logit planes (6.8 GB) at once.
Training, evaluation and prediction share one precision path: ``core.device.autocast`` with
``amp_dtype(device, amp, model)`` (bf16 where the hardware has it, else fp32).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from songkit.tasks.segment.constants import TASK
from songkit.tasks.segment.model import MODELS
from songkit.tasks.segment.transforms import (
    model_input_size,
    resize_for_model,
    to_tensor,
)

BAND_ELEMENTS = 1 << 24  # floats per band of upsampled logits (64 MB)


def load(checkpoint: Path | str | None, device="cpu", amp: bool = True):
    """(model in eval mode on ``device``, Checkpoint) through core's one loader: None = the shipped
    default; a run folder = its best.ckpt. Channels-last only when it runs under autocast."""
    from songkit.core.checkpoint import load_model

    model, ck = load_model(checkpoint, TASK, MODELS, device=device)
    if not amp:  # the loader places it for the default path; --no-amp is plain fp32 channels-first
        model = model.to(memory_format=torch.contiguous_format)
    return model, ck


def run_model(model, x: torch.Tensor, device, amp: bool = True) -> torch.Tensor:
    """Logits (B, C, H, W) in float32 for a normalised batch (B, 3, H, W), on the shared precision path."""
    from songkit.core.device import amp_dtype, autocast

    with torch.inference_mode(), autocast(device, amp_dtype(device, amp, model)):
        return model(x.to(device)).float()


def _rows(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows and weights of bilinear resizing along one axis, as F.interpolate with
    align_corners=False computes them: src = (dst + 0.5) * n_in / n_out - 0.5, clamped at 0."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_(min=0)
    lo = src.floor().long().clamp_(max=n_in - 1)
    hi = (lo + 1).clamp_(max=n_in - 1)
    return lo, hi, (src - lo).float()


def upsampled_bands(logits: torch.Tensor, height: int, width: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, band (C, rows, width)) of ``logits`` (C, h, w) resized bilinearly to height x width.

    Bilinear resizing is separable: the width is resized at once with F.interpolate (h stays the
    model's few rows), then each band of output rows mixes two of those rows. Equal to
    ``F.interpolate(logits[None], (height, width), mode="bilinear")`` up to float rounding, in bounded
    memory."""
    c, h, w = logits.shape
    if (h, w) == (height, width):
        yield 0, logits
        return
    wide = logits if w == width else F.interpolate(logits[None], size=(h, width), mode="bilinear",
                                                   align_corners=False)[0]  # (C, h, width)
    lo, hi, t = _rows(h, height)
    rows = max(1, BAND_ELEMENTS // max(1, c * width))
    for y0 in range(0, height, rows):
        sl = slice(y0, min(height, y0 + rows))
        weight = t[sl].view(1, -1, 1)
        yield y0, torch.lerp(wide.index_select(1, lo[sl]), wide.index_select(1, hi[sl]), weight)  # (C, rows, width)


def _batched(model, images: list[np.ndarray], device, amp: bool, size: int | None):
    """(index, logits (C, th, tw) at model-input size) for pictures grouped by model-input shape."""
    cfg = model.cfg
    size = size or cfg.size
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(model_input_size(img.shape[0], img.shape[1], size), []).append(i)
    for (th, tw), idx in groups.items():
        x = to_tensor([resize_for_model(images[i], size, cfg.mean) for i in idx], cfg.mean, cfg.std)  # (B, 3, H', W')
        logits = run_model(model, x, device, amp)[:, :, :th, :tw].cpu()  # (B, C, th, tw): padding cropped off
        for j, i in enumerate(idx):
            yield i, logits[j]


def predict_masks(model, images: list[np.ndarray], device, amp: bool = True,
                  size: int | None = None) -> list[np.ndarray]:
    """Class-index masks (H, W) uint8 for RGB uint8 pictures (H, W, 3); ``size`` overrides the model's."""
    masks: list[np.ndarray | None] = [None] * len(images)
    for i, logits in _batched(model, images, device, amp, size):
        h, w = images[i].shape[:2]
        mask = np.empty((h, w), dtype=np.uint8)
        for y0, band in upsampled_bands(logits, h, w):
            mask[y0 : y0 + band.shape[1]] = band.argmax(0).to(torch.uint8).numpy()
        masks[i] = mask
    return masks  # type: ignore[return-value]


def score_pairs(model, pairs: list[tuple[np.ndarray, np.ndarray]], device, amp: bool, size: int | None,
                cm, ignore_index: int) -> tuple[float, int]:
    """Add (mask, prediction) of each pair to the confusion matrix ``cm``; (summed cross-entropy, labelled pixels)."""
    loss_sum, pixels = 0.0, 0
    for i, logits in _batched(model, [image for image, _ in pairs], device, amp, size):
        truth = torch.from_numpy(pairs[i][1].astype(np.int64))  # (H, W)
        for y0, band in upsampled_bands(logits, *truth.shape):
            target = truth[y0 : y0 + band.shape[1]]
            cm.update(target, band.argmax(0))
            if bool((target != ignore_index).any()):
                loss_sum += float(F.cross_entropy(band[None], target[None], ignore_index=ignore_index, reduction="sum"))
                pixels += int((target != ignore_index).sum())
    return loss_sum, pixels


def segment_files(files: list[Path], outputs: list[Path | None], checkpoint=None, device="cpu", amp: bool = True,
                  size: int | None = None, overlay: bool = False, stdin: bytes | None = None) -> Iterator[dict]:
    """Segment pictures with a checkpoint (None: the shipped one), one at a time.

    Each mask goes to its output path as a VOC palette PNG, and with ``overlay`` a
    ``<mask stem>.overlay.jpg`` beside it; an output of None returns the PNG's bytes in the row instead
    (for stdout). A file named ``-`` is read from ``stdin`` (bytes). Yields one row per picture: paths,
    size, and the share of its pixels given to each class. A checkpoint trained on the generated
    embedded set says so once on stderr.
    """
    from songkit.core.io import atomic_write_bytes
    from songkit.core.progress import log
    from songkit.tasks.segment.constants import SYNTHETIC_WARNING
    from songkit.tasks.segment.voc import load_image, mask_png_bytes
    from songkit.tasks.segment.voc import overlay as blend

    model, ck = load(checkpoint, device, amp)
    if trained_on_synthetic(ck):
        log(SYNTHETIC_WARNING)
    names = list(ck.vocab)
    for path, dest in zip(files, outputs):
        image = load_image(path, stdin if str(path) == "-" else None)
        mask = predict_masks(model, [image], model_device(model), amp, size)[0]
        png = mask_png_bytes(mask)
        row = {"image": str(path), "mask": str(dest) if dest is not None else "-",
               "width": int(mask.shape[1]), "height": int(mask.shape[0])}
        if dest is None:
            row["png"] = png
        else:
            atomic_write_bytes(dest, png)
            if overlay:
                import io

                pic = io.BytesIO()
                blend(image, mask).save(pic, format="JPEG", quality=90)
                atomic_write_bytes(overlay_path(dest), pic.getvalue())
        counts = np.bincount(mask.ravel(), minlength=len(names))
        row["classes"] = {names[i]: round(float(c) / max(1, mask.size), 4)
                          for i, c in enumerate(counts[: len(names)]) if c}
        yield row


def model_device(model) -> torch.device:
    """The device a model's weights are on."""
    return next(model.parameters()).device


def overlay_path(mask_path: Path) -> Path:
    """``masks/x.png`` -> ``masks/x.overlay.jpg``."""
    return mask_path.with_name(mask_path.stem + ".overlay.jpg")


def trained_on_synthetic(ck) -> bool:
    """True when the checkpoint was trained on the generated embedded set (the shipped one is)."""
    return bool((ck.extra or {}).get("synthetic", False))
