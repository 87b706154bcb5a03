"""Training, decoding and scoring for chords.

``ChordTrainTask`` feeds ``core.train.fit`` 128-frame windows of normalised 24-d chroma with
random transposition (chroma rolled, labels moved with it); ``predict_song`` runs a model on
a whole song and decodes with an HMM (Viterbi, one self-transition probability), the usual
smoothing of frame-wise chord posteriors; ``score_songs`` gives the MIREX root and majmin
WCSR per song and over the set (duration-weighted), frame accuracy and a confusion matrix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from songkit.core.errors import UserError
from songkit.tasks.chords import harte, spec
from songkit.tasks.chords.features import normalize_chroma

DEFAULT_SELF_PROB = 0.9  # HMM self-transition probability at ~21.5 frames/s (chords last ~10-40 frames)


@dataclass
class DataConfig:
    seq_len: int = 128
    batch_size: int = 32
    augment: bool = True  # random transposition of every window across the 12 keys
    seed: int = 0


def to_input(chroma) -> torch.Tensor:
    """Raw ``(T, 24)`` chroma -> normalised float32 tensor ``(T, 24)``."""
    return torch.as_tensor(normalize_chroma(np.asarray(chroma, dtype=np.float32)))


class ChordTrainTask:
    """The duck-typed task for ``core.train.fit``."""

    def __init__(self, train_songs, valid_songs, cfg: DataConfig):
        if not train_songs:
            raise UserError("no training songs in the data")
        self.train = train_songs
        self.valid = valid_songs or train_songs[:1]
        self.cfg = cfg
        # all songs in one (N, 24) tensor; a window is a start row, cut at its song's end
        inputs = [to_input(s.chroma) for s in train_songs]
        self.lengths = [len(x) for x in inputs]
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.all_x = torch.cat(inputs) if inputs else torch.zeros(0, spec.CHROMA_DIM)
        self.all_y = torch.cat([torch.as_tensor(s.labels) for s in train_songs])

    def _windows(self, epoch: int):
        """(song index, start frame, transposition) per window, shuffled; from (seed, epoch) alone."""
        rng = np.random.default_rng([self.cfg.seed, epoch])
        L = self.cfg.seq_len
        songs, starts = [], []
        for i, T in enumerate(self.lengths):
            off = int(rng.integers(0, L)) if T > L else 0
            st = np.arange(off, max(T - L, 0) + 1, L) if T > L else np.zeros(1, dtype=np.int64)
            if off > 0:
                st = np.concatenate([[0], st])
            songs.append(np.full(len(st), i))
            starts.append(st)
        songs, starts = np.concatenate(songs), np.concatenate(starts)
        order = rng.permutation(len(songs))
        shifts = rng.integers(-5, 7, size=len(songs)) if self.cfg.augment else np.zeros(len(songs), dtype=np.int64)
        return songs[order], starts[order], shifts

    def num_batches(self, epoch, rank=0, world=1):
        return len(self._windows(epoch)[0]) // self.cfg.batch_size // world

    def batches(self, epoch, rank=0, world=1):
        songs, starts, shifts = self._windows(epoch)
        B, L = self.cfg.batch_size, self.cfg.seq_len
        n = len(songs) // B // world
        lengths = torch.as_tensor(self.lengths)
        offsets = torch.as_tensor(self.offsets)
        steps = torch.arange(L)
        pcs = torch.arange(12)
        for b in range(n):
            sl = slice((b * world + rank) * B, (b * world + rank + 1) * B)
            song = torch.as_tensor(songs[sl])
            start = torch.as_tensor(starts[sl])
            shift = torch.as_tensor(shifts[sl])
            pos = start[:, None] + steps  # (B, L) frame within the song
            inside = pos < lengths[song][:, None]
            rows = offsets[song][:, None] + pos.minimum(lengths[song][:, None] - 1)
            x = self.all_x[rows]  # (B, L, 24)
            y = self.all_y[rows].clone()
            # transpose up `shift`: new bin p takes old bin p - shift, in each 12-bin half
            src = (pcs[None] - shift[:, None]) % 12  # (B, 12)
            src = torch.cat([src, src + 12], 1)[:, None].expand(-1, L, -1)
            x = torch.gather(x, 2, src)
            chord = y > 0
            y = torch.where(chord, 1 + 12 * ((y - 1) // 12) + (y - 1 + shift[:, None]) % 12, y)
            x[~inside] = 0
            y[~inside] = spec.IGNORE
            yield x, y

    def train_step(self, model, batch, device):
        x, y = batch
        x, y = x.to(device), y.to(device)
        logits = model(x)  # (B, L, 25)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                                 ignore_index=spec.IGNORE)
        return loss, int((y != spec.IGNORE).sum())

    @torch.no_grad()
    def evaluate(self, model, device):
        total_loss, correct, count = 0.0, 0, 0
        for s in self.valid:
            logits = song_logits(model, s.chroma, device)  # (T, 25)
            y = torch.as_tensor(s.labels)
            keep = y != spec.IGNORE
            if keep.any():
                total_loss += float(torch.nn.functional.cross_entropy(logits[keep], y[keep], reduction="sum"))
                correct += int((logits[keep].argmax(-1) == y[keep]).sum())
                count += int(keep.sum())
        return {"val_loss": total_loss / max(count, 1), "val_acc": correct / max(count, 1)}


@torch.no_grad()
def song_logits(model, chroma, device="cpu") -> torch.Tensor:
    """Run a model over a whole song: raw ``(T, 24)`` chroma -> ``(T, 25)`` log-probabilities (CPU)."""
    was = model.training
    model.eval()
    x = to_input(chroma)[None].to(device)
    out = torch.log_softmax(model(x)[0].float(), -1).cpu()
    model.train(was)
    return out


def viterbi(log_probs, self_prob: float = DEFAULT_SELF_PROB) -> np.ndarray:
    """Most likely class path under a uniform-switch HMM: ``(T, K)`` log-probs -> ``(T,)`` classes.

    ``self_prob`` is the probability of staying on a chord from one frame to the next; any other
    chord is equally likely. ``self_prob <= 1/K`` is plain frame-wise argmax.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    T, K = lp.shape
    if T == 0 or self_prob <= 1.0 / K:
        return lp.argmax(-1)
    stay, move = math.log(self_prob), math.log((1 - self_prob) / (K - 1))
    back = np.empty((T, K), dtype=np.int64)
    score = lp[0].copy()
    for t in range(1, T):
        best = int(score.argmax())
        switch = score[best] + move
        stay_score = score + stay
        take_stay = stay_score >= switch
        back[t] = np.where(take_stay, np.arange(K), best)
        score = np.where(take_stay, stay_score, switch) + lp[t]
    path = np.empty(T, dtype=np.int64)
    path[-1] = int(score.argmax())
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def predict_classes(model, chroma, device="cpu", self_prob: float = DEFAULT_SELF_PROB) -> np.ndarray:
    return viterbi(song_logits(model, chroma, device).numpy(), self_prob)


# ----------------------------------------------------------------------------- template baseline
def template_log_probs(chroma, n_threshold: float = 0.05) -> np.ndarray:
    """The classic baseline: cosine similarity of (bass + treble) chroma with binary major/minor
    triad templates; ``N`` where the frame's energy is below ``n_threshold`` of the song's
    95th percentile. Returns pseudo log-probabilities ``(T, 25)`` for the same HMM decoding."""
    c = np.asarray(chroma, dtype=np.float64)
    c = c[:, :12] + c[:, 12:]  # (T, 12) from A
    energy = c.sum(1)
    templ = np.zeros((spec.NUM_CLASSES, 12))
    for root in range(12):
        a_root = (root - spec.A_OFFSET) % 12  # chroma bins start at A
        for minor in (0, 1):
            k = spec.class_index(root, bool(minor))
            for iv in (0, 3 if minor else 4, 7):
                templ[k, (a_root + iv) % 12] = 1
    templ[1:] /= np.linalg.norm(templ[1:], axis=1, keepdims=True)
    cn = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-9)
    sim = cn @ templ.T  # (T, 25)
    is_n = energy < n_threshold * max(np.percentile(energy, 95), 1e-9)
    sim[:, 0] = np.where(is_n, 2.0, -1.0)
    return 20.0 * sim  # a soft-max temperature for the HMM


# ----------------------------------------------------------------------------- scoring
def segments_for(classes, duration: float):
    iv, labels = harte.frames_to_segments(classes, spec.FRAME_SECONDS, duration)
    return harte.Annotation(iv, labels)


def score_songs(songs, predict) -> dict:
    """Score ``predict(song) -> (T,) classes`` on songs: per-song and overall MIREX scores."""
    from songkit.core.metrics import ConfusionMatrix
    from songkit.core.progress import track

    cm = ConfusionMatrix(spec.NUM_CLASSES, ignore_index=None)
    per_song = []
    for s in track(songs, total=len(songs), description="eval"):
        pred = predict(s)
        keep = s.labels != spec.IGNORE
        cm.update(s.labels[keep], pred[keep])
        sc = harte.score_song(s.ref, segments_for(pred, s.duration))
        sc["name"] = s.name
        sc["frame_accuracy"] = float((pred[keep] == s.labels[keep]).mean()) if keep.any() else float("nan")
        per_song.append(sc)
    return {
        "songs": len(songs),
        "majmin_wcsr": harte.wcsr(per_song, "majmin"),
        "root_wcsr": harte.wcsr(per_song, "root"),
        "frame_accuracy": cm.accuracy(),
        "per_song": per_song,
        "confusion": cm,
    }


# ----------------------------------------------------------------------------- entry points
def load_model(checkpoint=None, device="cpu"):
    """Rebuild a chords model from a checkpoint (default: the shipped one) -> (model, Checkpoint)."""
    from songkit.core.checkpoint import default_checkpoint, load_checkpoint
    from songkit.tasks.chords.model import build

    path = checkpoint or default_checkpoint(spec.TASK)
    if not Path(path).exists():
        raise UserError(f"{path}: no such checkpoint (run `make checkpoint-chords` or pass --checkpoint)")
    ck = load_checkpoint(path, task=spec.TASK)
    if list(ck.vocab) != spec.VOCAB:
        raise UserError(f"{path}: chord vocabulary differs from songkit's 25 majmin classes")
    _, model = build(ck.model, ck.config)
    try:
        model.load_state_dict(ck.state_dict)
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not fit model {ck.model!r} ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), ck


def input_chroma(path, device="cpu"):
    """An input file -> (raw chroma (T, 24), duration s): a Chordino ``*.csv`` or an audio file."""
    from songkit.tasks.chords.data import read_bothchroma
    from songkit.tasks.chords.features import audio_features

    p = Path(path)
    if p.suffix.lower() == ".csv":
        times, chroma = read_bothchroma(p)
        return chroma, float(times[-1] + spec.FRAME_SECONDS)
    return audio_features(p, device)


def train(run, model_name: str, seq_len: int, train_songs, valid_songs, data_name: str, hidden: int | None = None):
    """Train ``model_name`` with ``core.train.fit``; returns the history."""
    from songkit.core.progress import log
    from songkit.core.train import fit
    from songkit.tasks.chords.model import build

    cfg_over = {"hidden": hidden} if hidden and model_name in ("frame", "blstm") else {}
    cfg, model = build(model_name, cfg_over)
    dcfg = DataConfig(seq_len=seq_len, batch_size=run.batch_size, seed=run.seed)
    task = ChordTrainTask(train_songs, valid_songs, dcfg)
    frames = sum(len(s.labels) for s in train_songs)
    log(f"chords: {model_name}, {len(train_songs)} train songs ({frames} frames), {len(valid_songs)} validation songs, "
        f"{sum(p.numel() for p in model.parameters())} parameters")
    meta = {"task": spec.TASK, "model": model_name, "config": asdict(cfg), "vocab": spec.VOCAB,
            "extra": {"data": data_name, "data_config": asdict(dcfg), "input": "bothchroma24-normalized",
                      "frames_per_second": spec.FRAMES_PER_SECOND, "self_prob": DEFAULT_SELF_PROB,
                      "train_songs": [s.name for s in train_songs]}}
    tcfg = run.train_config(monitor="val_acc", monitor_mode="max")
    return fit(model, task, tcfg, run.out, meta, device=run.device, resume=run.resume)
