"""Token models: the seed's accuracy, focal loss, a GRU that learns a tiny task, sampling to MIDI."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from songkit.tasks.tokenize import data
from songkit.tasks.tokenize import encoding as E
from songkit.tasks.tokenize.model import MODELS, TokenRNNConfig, focal_loss
from songkit.tasks.tokenize.spec import TokenizerConfig, Vocabulary
from songkit.tasks.tokenize.task import TokenTrainTask, encode_songs, evaluate_songs, sample_midi, scored_mask

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


@pytest.mark.parametrize("cell,encoding", [("gru", "nb"), ("linear", "cp")])
def test_model_learns_a_repeating_motif(tmp_path, cell, encoding):
    from songkit.core.train import TrainConfig, fit

    songs = encode_songs(_motif_songs(tmp_path), VOCAB, encoding)
    cfg = TokenRNNConfig(encoding=encoding, cell=cell, vocab_sizes=VOCAB.sizes(encoding), embed_dim=16,
                         d_model=64, num_layers=1, dropout=0.0)
    model = MODELS[cell][1](cfg)
    task = TokenTrainTask(songs, songs[:1], encoding, seq_len=32, batch_size=8, seed=0)
    before = evaluate_songs(model, songs[:1], encoding, 32, torch.device("cpu"))["val_acc"]
    meta = dict(task="tokenize", model=cell, config=dataclasses.asdict(cfg),
                vocab={**VOCAB.to_dict(), "hash": VOCAB.hash}, extra={"seq_len": 32})
    hist = fit(model, task, TrainConfig(epochs=8, lr=1e-2, schedule="none", monitor="val_acc",
                                        monitor_mode="max"), tmp_path / "run", meta, device="cpu")
    assert before < 0.5 and hist[-1]["val_acc"] > 0.9, hist[-1]
    out = sample_midi(tmp_path / "run" / "best.ckpt", tmp_path / "s.mid", max_groups=64, temperature=0.5, seed=0)
    q = E.quantise(data.read_music(out), VOCAB)
    assert len(q.notes) > 5
