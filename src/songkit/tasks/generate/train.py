"""Training SongRNN: truncated BPTT over a stream of tunes, the LSTM state carried across chunks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from songkit.core.errors import UserError
from songkit.core.progress import log
from songkit.core.train import TrainRun, fit
from songkit.tasks.generate.constants import (
    EVAL_SEQ_LEN,
    MODEL_NAMES,
    TASK,
    TrainOptions,
)
from songkit.tasks.generate.data import (
    TuneStream,
    build_vocab,
    corpus_fingerprint,
    corpus_ids,
    embedded_corpus_files,
    read_tunes,
    split_train_val,
)
from songkit.tasks.generate.evaluate import stream_nats_per_char
from songkit.tasks.generate.model import MODELS, CharLSTMConfig

ARCHITECTURE = ("embed_dim", "hidden_size", "num_layers")  # taken from the --init checkpoint


class GenerateTrainTask:
    """Truncated BPTT over ``seq_len`` characters with the hidden state carried across chunks (fit's protocol)."""

    def __init__(self, train_tunes: Sequence[str], val_tunes: Sequence[str], vocab: Sequence[str],
                 batch_size: int, seq_len: int, seed: int, transpose: bool = False):
        self.train_tunes, self.vocab, self.transpose = list(train_tunes), list(vocab), transpose
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.val_ids = torch.tensor(corpus_ids(val_tunes, vocab), dtype=torch.long)
        self.streams: dict[tuple[int, int], TuneStream] = {}
        self.state = None

    def stream(self, rank: int, world: int) -> TuneStream:
        """This rank's stream (built once; its epochs are laid out by set_epoch)."""
        if (rank, world) not in self.streams:
            self.streams[rank, world] = TuneStream(self.train_tunes, self.vocab, self.batch_size, self.seq_len,
                                                   self.seed, rank, world, self.transpose)
        return self.streams[rank, world]

    def num_batches(self, epoch: int, rank: int, world: int) -> int:
        return len(self.stream(rank, world))

    def batches(self, epoch: int, rank: int, world: int):
        from songkit.core.data import make_loader

        # items in order (the state is carried from one to the next), no workers: the stream is in memory
        return make_loader(self.stream(rank, world), batch_size=None, shuffle=False, seed=self.seed, epoch=epoch)

    def on_epoch_start(self, epoch: int) -> None:
        self.state = None

    def train_step(self, model, batch, device):
        x, y = (t.to(device, non_blocking=True) for t in batch)  # (B, L) each
        logits, state = model(x, self.state)
        self.state = tuple(s.detach() for s in state)  # carry, but do not backpropagate across chunks
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        return loss, y.numel()

    def evaluate(self, model, device) -> dict[str, float]:
        nats = stream_nats_per_char(model, self.val_ids, device, seq_len=max(self.seq_len, EVAL_SEQ_LEN))
        return {"val_loss": nats, "val_bpc": nats / math.log(2)}


def train(data: list[Path] | None, run: TrainRun, options: TrainOptions) -> list[dict]:
    """Train SongRNN on ABC files (default: music21's corpus); returns the per-epoch history."""
    if options.model not in MODEL_NAMES:
        raise UserError(f"--model {options.model}: expected one of {', '.join(MODEL_NAMES)}")
    tunes = read_tunes(data) if data else read_tunes(embedded_corpus_files())
    if options.limit:
        tunes = tunes[: options.limit]
    train_tunes, val_tunes = split_train_val(tunes)
    if not val_tunes:
        raise UserError("need at least 2 tunes to hold one out for validation")
    cfg = CharLSTMConfig(embed_dim=options.embed_dim, hidden_size=options.hidden_size,
                         num_layers=options.num_layers, dropout=options.dropout)
    init_weights = None
    if options.init:
        cfg, vocab, init_weights = _init_from(options, run)
    else:
        vocab = build_vocab(train_tunes, options.vocab)
        cfg = replace(cfg, vocab_size=len(vocab))
    try:
        cfg.check()
    except ValueError as e:
        raise UserError(f"--{str(e).replace('_', '-')}") from None
    log(f"{len(tunes)} tunes ({len(train_tunes)} train, {len(val_tunes)} validation), {len(vocab)} characters")

    def build_model():
        model = MODELS[options.model][1](cfg)
        if init_weights is not None:
            model.load_state_dict(init_weights)
        return model

    task = GenerateTrainTask(train_tunes, val_tunes, vocab, run.batch_size, options.seq_len, run.seed,
                             options.transpose)
    meta = {"task": TASK, "model": options.model, "config": asdict(cfg), "vocab": vocab,
            "extra": {"seq_len": options.seq_len, "train_tunes": len(train_tunes), "val_tunes": len(val_tunes),
                      "data": [str(p) for p in data] if data else "music21-corpus-abc",
                      "data_fingerprint": corpus_fingerprint(tunes), "init": options.init,
                      "transpose": options.transpose}}
    return fit(build_model, task, run.train_config(monitor="val_loss"), run.out, meta, device=run.device,
               resume=run.resume)


def _init_from(options: TrainOptions, run: TrainRun):
    """Config, vocabulary and weights of the checkpoint to fine-tune (--init default|PATH)."""
    from songkit.tasks.generate.infer import load

    model, ck = load(None if options.init == "default" else Path(options.init), "cpu")
    if ck.model != options.model:
        raise UserError(f"{ck.path}: --init holds a '{ck.model}' model, not --model {options.model}")
    for name in ARCHITECTURE:
        want, have = getattr(options, name), ck.config[name]
        if name in run.explicit and want != have:
            raise UserError(f"{ck.path}: --init has --{name.replace('_', '-')} {have}, not {want} "
                            "(the architecture comes from the checkpoint)")
    if "vocab" in run.explicit:
        raise UserError(f"{ck.path}: --init keeps the checkpoint's vocabulary; drop --vocab")
    cfg = replace(CharLSTMConfig(**ck.config), dropout=options.dropout)
    log(f"fine-tuning {ck.path} ({ck.config['num_layers']} x {ck.config['hidden_size']} LSTM, "
        f"{len(ck.vocab)} characters)")
    return cfg, list(ck.vocab), {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
