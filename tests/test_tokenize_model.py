"""Token models: the seed's accuracy, focal loss, a GRU that learns a tiny task, sampling to MIDI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from songkit.tasks.tokenize import readers
from songkit.tasks.tokenize.constants import TokenizerConfig, Vocabulary
from songkit.tasks.tokenize.data import SongWindows, encode_files, window
from songkit.tasks.tokenize.evaluate import evaluate_songs, scored_mask
from songkit.tasks.tokenize.infer import sample_midi
from songkit.tasks.tokenize.model import MODELS, TokenRNNConfig, focal_loss
from songkit.tasks.tokenize.quantise import quantise
from songkit.tasks.tokenize.train import TokenTrainTask

VOCAB = Vocabulary(TokenizerConfig())


@pytest.fixture(autouse=True)
def one_thread():
    """Small recurrent models run fastest on one thread (and the machine is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_scored_mask_leaves_out_ignore_conti_padding():
    y = torch.tensor([[[4, 2, 1, 1, 5, 1, 61, 4, 30],  # NB-like note group: tempo/timesig CONTI
                       [0, 0, 0, 0, 0, 0, 0, 0, 0]]])  # padding
    m = scored_mask(y, "nb")
    assert m[0, 0].tolist() == [True, True, False, False, True, True, True, True, True]
    assert not m[0, 1].any()


def test_focal_loss_is_cross_entropy_at_gamma_0_and_smaller_above():
    logits, t = torch.randn(20, 7), torch.randint(0, 7, (20,))
    t[3] = -100
    ce = torch.nn.functional.cross_entropy(logits, t, ignore_index=-100)
    assert torch.allclose(focal_loss(logits, t, gamma=0.0), ce, atol=1e-6)
    assert focal_loss(logits, t, gamma=2.0) < ce


def _motif_songs(tmp_path, n=4):
    import symusic

    files = []
    for k in range(n):
        score = symusic.Score(480)
        tr = symusic.Track(name="m", program=0, is_drum=False)
        for i in range(128):  # a repeating 4-note motif in 8th notes
            tr.notes.append(symusic.Note(i * 240, 240, [60, 64, 67, 72][i % 4], 80))
        score.tracks.append(tr)
        score.dump_midi(str(tmp_path / f"s{k}.mid"))
        files.append(tmp_path / f"s{k}.mid")
    return files


def test_windows_tile_every_target_once():
    """Evaluation windows see every group of BOS, song..., EOS exactly once as a target."""
    song = np.arange(1, 24, dtype=np.int64).repeat(9).reshape(-1, 9)  # 23 groups, ids 1..23
    bos, eos = np.full(9, 100), np.full(9, 200)
    assert window(song, 0, 5, bos, eos)[:, 0].tolist() == [100, 1, 2, 3, 4]
    assert window(song, 22, 5, bos, eos)[:, 0].tolist() == [22, 23, 200, 0, 0]
    songs = encode_files([], VOCAB, "nb")
    songs.sequences, songs.names = [song], ["s"]
    ds = SongWindows(songs, seq_len=4)
    targets = np.concatenate([ds[i][1:, 0].numpy() for i in range(len(ds))])
    assert targets[targets != 0].tolist() == list(range(1, 24)) + [VOCAB.index["bar"]["EOS"]]
    shifted = SongWindows(songs, seq_len=4, shift=True, seed=1)
    for epoch in range(3):  # a shifted tiling still covers every target, and moves with the epoch
        shifted.set_epoch(epoch)
        seen = {int(t) for i in range(len(shifted)) for t in shifted[i][1:, 0].tolist()}
        assert seen - {0} == set(range(1, 24)) | {VOCAB.index["bar"]["EOS"]}


@pytest.mark.parametrize("cell,encoding", [("gru", "nb"), ("linear", "cp")])
def test_model_learns_a_repeating_motif(tmp_path, cell, encoding):
    from songkit.core.train import TrainConfig, fit

    songs = encode_files(_motif_songs(tmp_path), VOCAB, encoding)
    cfg = TokenRNNConfig(encoding=encoding, cell=cell, vocab_sizes=VOCAB.sizes(encoding), embed_dim=16,
                         d_model=64, num_layers=1, dropout=0.0)
    task = TokenTrainTask(songs, songs.subset([0]), seq_len=32, batch_size=8, seed=0)
    torch.manual_seed(0)
    before = evaluate_songs(MODELS[cell][1](cfg), songs.subset([0]), 32, torch.device("cpu"))["val_acc"]
    meta = {"task": "tokenize", "model": cell, "config": dataclasses.asdict(cfg),
            "vocab": {**VOCAB.to_dict(), "hash": VOCAB.hash}, "extra": {"seq_len": 32}}
    hist = fit(lambda: MODELS[cell][1](cfg), task, TrainConfig(epochs=8, lr=1e-2, schedule="none",
                                                               monitor="val_acc", monitor_mode="max"),
               tmp_path / "run", meta, device="cpu")
    assert before < 0.5 and hist[-1]["val_acc"] > 0.9, hist[-1]
    (tmp_path / "s.mid").write_bytes(sample_midi(tmp_path / "run", max_groups=64, temperature=0.5, seed=0))
    q = quantise(readers.read_music(tmp_path / "s.mid"), VOCAB)
    assert len(q.notes) > 5


def test_resume_through_the_loader_equals_an_uninterrupted_run(tmp_path):
    """Windows through make_loader (shifted per epoch): a run stopped after epoch 1 and resumed ends with the
    same weights as one that was never stopped."""
    from songkit.core.checkpoint import load_checkpoint
    from songkit.core.train import TrainConfig, fit

    songs = encode_files(_motif_songs(tmp_path, n=2), VOCAB, "nb")
    cfg = TokenRNNConfig(encoding="nb", vocab_sizes=VOCAB.sizes("nb"), embed_dim=8, d_model=16, num_layers=1)
    meta = {"task": "tokenize", "model": "gru", "config": dataclasses.asdict(cfg),
            "vocab": {**VOCAB.to_dict(), "hash": VOCAB.hash}, "extra": {"seq_len": 16}}

    def run(out, **kw):
        task = TokenTrainTask(songs, songs.subset([0]), seq_len=16, batch_size=4, seed=5)
        fit(lambda: MODELS["gru"][1](cfg), task, TrainConfig(epochs=2, lr=1e-2, max_steps_per_epoch=3, seed=5),
            out, meta, device="cpu", **kw)

    run(tmp_path / "full")
    run(tmp_path / "part", stop_after_epoch=1)
    assert load_checkpoint(tmp_path / "part" / "last.ckpt").train_state["epoch"] == 0  # stopped after epoch 1
    run(tmp_path / "part", resume=True)
    a = load_checkpoint(tmp_path / "full" / "last.ckpt").state_dict
    b = load_checkpoint(tmp_path / "part" / "last.ckpt").state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
