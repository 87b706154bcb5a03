"""Next-token loss and accuracy of a token model, per family and overall (the seed's accuracy)."""

from __future__ import annotations

from pathlib import Path

from songkit.tasks.tokenize.constants import CONTI_FAMILIES, GROUP_FAMILIES
from songkit.tasks.tokenize.data import Songs, SongWindows


def scored_mask(targets, encoding: str):
    """(B, T, F) bool: the targets the seed's accuracy counts (not padding, ignore or CONTI)."""
    import torch

    fams = GROUP_FAMILIES[encoding]
    conti = torch.tensor([f in CONTI_FAMILIES for f in fams], device=targets.device)
    real = targets[..., :1] != 0  # padding groups are all zeros
    return real & (targets != 0) & ~(conti & (targets == 1))


def window_losses(model, batch, device, loss: str = "ce", gamma: float = 2.0):
    """(mean loss over families, per-family logits, targets) of a (B, T + 1, F) batch of windows;
    padding targets are left out. Losses are computed in float32 whatever the autocast dtype."""
    import torch.nn.functional as F

    from songkit.tasks.tokenize.model import focal_loss

    batch = batch.to(device)
    x, y = batch[:, :-1], batch[:, 1:]  # (B, T, F) each
    logits, _ = model(x)
    pad = y[..., 0] == 0  # (B, T)
    total = 0.0
    for f, lg in enumerate(logits):
        t = y[..., f].masked_fill(pad, -100).reshape(-1)  # (B*T,)
        lg = lg.reshape(-1, lg.shape[-1]).float()  # (B*T, V_f)
        total = total + (focal_loss(lg, t, gamma) if loss == "focal" else F.cross_entropy(lg, t, ignore_index=-100))
    return total / len(logits), logits, y


def evaluate_songs(model, songs: Songs, seq_len: int, device, loss: str = "ce", gamma: float = 2.0,
                   batch_size: int = 32, amp: bool = True) -> dict:
    """val_loss, val_acc and acc_<family> over whole songs, window by window (every target once)."""
    import torch

    from songkit.core.device import amp_dtype, autocast

    fams = GROUP_FAMILIES[songs.encoding]
    windows = SongWindows(songs, seq_len)
    correct = torch.zeros(len(fams), dtype=torch.float64)
    counted = torch.zeros(len(fams), dtype=torch.float64)
    loss_sum, n_items = 0.0, 0
    was_training = model.training
    model.eval()
    dtype = amp_dtype(device, amp, model)
    with torch.inference_mode(), autocast(device, dtype):
        for i in range(0, len(windows), batch_size):
            batch = torch.stack([windows[k] for k in range(i, min(i + batch_size, len(windows)))])
            mean, logits, y = window_losses(model, batch, device, loss, gamma)
            items = int((y[..., 0] != 0).sum())
            loss_sum += float(mean) * items
            n_items += items
            mask = scored_mask(y, songs.encoding)
            for f, lg in enumerate(logits):
                hit = (lg.argmax(-1) == y[..., f]) & mask[..., f]
                correct[f] += hit.sum().item()
                counted[f] += mask[..., f].sum().item()
    model.train(was_training)
    out = {"val_loss": loss_sum / max(1, n_items), "val_acc": float(correct.sum() / counted.sum().clamp(min=1))}
    for f, name in enumerate(fams):
        if counted[f] > 0:
            out[f"acc_{name}"] = float(correct[f] / counted[f])
    return out


def evaluate(checkpoint: Path | None, data_paths: list[Path] | None, device="auto", split: str = "valid",
             batch_size: int = 32, limit: int = 0) -> dict:
    """The seed's accuracy of a checkpoint (None: the shipped one) on a split of a dataset (MIDI files
    and folders, a token dataset folder, or the embedded chorales); ``limit``: the first N songs."""
    from songkit.core.device import resolve_device
    from songkit.tasks.tokenize.data import load_songs
    from songkit.tasks.tokenize.infer import load

    dev = resolve_device(device)
    model, vocab, ck = load(checkpoint, dev)
    encoding = ck.config["encoding"]
    songs = load_songs(data_paths, vocab, encoding).split(split)
    if limit:
        songs = songs.subset(list(range(min(limit, len(songs.names)))))
    res = evaluate_songs(model, songs, int(ck.extra.get("seq_len", 128)), dev, batch_size=batch_size)
    return {"checkpoint": str(ck.path), "model": ck.model, "encoding": encoding, "split": split,
            "songs": len(songs.names), "groups": int(sum(len(s) for s in songs.sequences)), **res}
