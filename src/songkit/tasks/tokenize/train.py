"""Training the token models: teacher forcing over windows of token groups, song-level validation split."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from songkit.core.errors import UserError
from songkit.tasks.tokenize.constants import (
    GROUP_ENCODINGS,
    LOSSES,
    MODEL_NAMES,
    TASK,
    TrainOptions,
    Vocabulary,
)
from songkit.tasks.tokenize.data import Songs, SongWindows, data_vocab, load_songs
from songkit.tasks.tokenize.evaluate import evaluate_songs, window_losses


class TokenTrainTask:
    """The core.train task protocol over :class:`SongWindows` (shuffled by (seed, epoch) in make_loader)."""

    def __init__(self, train: Songs, valid: Songs, seq_len: int, batch_size: int, seed: int,
                 loss: str = "ce", gamma: float = 2.0, workers: int = 0):
        self.dataset = SongWindows(train, seq_len, shift=True, seed=seed)
        self.valid, self.seq_len, self.batch_size, self.seed = valid, seq_len, batch_size, seed
        self.loss, self.gamma, self.workers = loss, gamma, workers

    def num_batches(self, epoch, rank, world):
        return -(-len(self.dataset) // (self.batch_size * world))

    def batches(self, epoch, rank, world):
        from songkit.core.data import make_loader

        return make_loader(self.dataset, batch_size=self.batch_size, shuffle=True, seed=self.seed, epoch=epoch,
                           rank=rank, world=world, workers=self.workers)

    def train_step(self, model, batch, device):
        loss, _, y = window_losses(model, batch, device, self.loss, self.gamma)
        return loss, int((y[..., 0] != 0).sum())

    def evaluate(self, model, device):
        return evaluate_songs(model, self.valid, self.seq_len, device, self.loss, self.gamma)


def resolve_vocab(path: str | Path | None, data_paths: list[Path] | None = None) -> Vocabulary:
    """The run's vocabulary: a token dataset's (--data DIR), else the --vocab file, else the CP paper's
    defaults; a --vocab that differs from the dataset's is refused."""
    from songkit.tasks.tokenize.constants import TokenizerConfig

    found = data_vocab(data_paths)
    given = Vocabulary.load(path) if path is not None else None
    if found is not None:
        if given is not None and given.hash != found[0].hash:
            raise UserError(f"--vocab {path}: not the vocabulary of {data_paths[0]} ({found[0].hash})")
        return found[0]
    return given or Vocabulary(TokenizerConfig())


def check_options(options: TrainOptions) -> None:
    """One line for an option no run can use."""
    if options.encoding not in GROUP_ENCODINGS:
        raise UserError(f"--encoding {options.encoding}: the models read cp or nb token groups")
    if options.model not in MODEL_NAMES:
        raise UserError(f"--model {options.model}: expected one of {', '.join(MODEL_NAMES)}")
    if options.loss not in LOSSES:
        raise UserError(f"--loss {options.loss}: expected one of {', '.join(LOSSES)}")


def train(data: list[Path] | None, run, options: TrainOptions) -> list[dict]:
    """Train a next-token model on CP/NB groups of ``data`` (MIDI files/folders, a token dataset folder,
    or the embedded chorales); returns the per-epoch history. A dataset folder's encoding wins over the
    default ``--encoding`` (a typed one that differs is refused)."""
    from songkit.core.progress import log

    found = data_vocab(data)
    if found is not None and found[1] != options.encoding:
        if "encoding" in run.explicit:
            raise UserError(f"--data {data[0]}: holds {found[1]} tokens, not --encoding {options.encoding}")
        options = dataclasses.replace(options, encoding=found[1])
    check_options(options)
    vocab = resolve_vocab(options.vocab, data)
    songs = load_songs(data, vocab, options.encoding)
    train_songs, valid_songs = songs.split("train"), songs.split("valid")
    log(f"{len(train_songs.names)} training and {len(valid_songs.names)} validation songs ({options.encoding})")
    from songkit.core.train import (
        fit,  # torch: only once the data has been read and checked
    )
    from songkit.tasks.tokenize.model import MODELS

    cfg_cls, module = MODELS[options.model]
    cfg = cfg_cls(encoding=options.encoding, cell=options.model, vocab_sizes=vocab.sizes(options.encoding),
                  embed_dim=options.embed_dim, d_model=options.d_model, num_layers=options.num_layers,
                  dropout=options.dropout)
    task = TokenTrainTask(train_songs, valid_songs, options.seq_len, run.batch_size, run.seed, options.loss,
                          options.gamma, run.workers)
    meta = {"task": TASK, "model": options.model, "config": dataclasses.asdict(cfg),
            "vocab": {**vocab.to_dict(), "hash": vocab.hash},
            "extra": {"loss": options.loss, "gamma": options.gamma, "seq_len": options.seq_len,
                      "train_songs": train_songs.names, "val_songs": valid_songs.names}}
    return fit(lambda: module(cfg), task, run.train_config(monitor="val_acc", monitor_mode="max"), run.out, meta,
               device=run.device, resume=run.resume)
