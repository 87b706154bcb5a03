"""SongRNN library: data splitting, the training stream, a tiny model that learns a tune, same-seed runs,
fine-tuning, sampling, scoring."""

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from songkit.core.checkpoint import load_checkpoint
from songkit.core.train import TrainRun
from songkit.tasks.generate.constants import ASCII_CHARS, SPECIALS, UNK, TrainOptions
from songkit.tasks.generate.data import (
    TuneStream,
    build_vocab,
    corpus_ids,
    encode,
    normalize_tune,
    out_of_vocab,
    split_train_val,
    split_tunes,
)
from songkit.tasks.generate.evaluate import (
    abc2midi_path,
    compiles_with_abc2midi,
    parses_with_notes,
    score_files,
    stream_nats,
    stream_nats_per_char,
)
from songkit.tasks.generate.infer import (
    LSTMStepper,
    filter_logits,
    format_tunes,
    sample_tunes,
)
from songkit.tasks.generate.model import CharLSTM, CharLSTMConfig
from songkit.tasks.generate.train import train

TUNE = "T:Tiny\nM:4/4\nL:1/8\nK:C\nCDEF GABc|cBAG FEDC|]"
ABC_FILE = """% a comment before the first tune
X:7
T:First
N:a note that is dropped
M:6/8
K:D
def edc|]

X:8
T:Second
M:3/4
K:G
% a comment line inside
GAB c2d|]
"""
TINY = TrainOptions(embed_dim=8, hidden_size=32, num_layers=1, dropout=0.0, seq_len=32)


def write_abc(folder: Path, name: str, tunes: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(f"X:{i + 1}\n{t}\n\n" for i, t in enumerate(tunes)))
    return path


def tiny_run(out: Path, **kw) -> TrainRun:
    return TrainRun(**{"out": out, "epochs": 2, "batch_size": 4, "lr": 1e-2, "warmup_steps": 2, "device": "cpu",
                       "seed": 3, "workers": 0, **kw})


def test_split_and_normalise():
    tunes = split_tunes(ABC_FILE)
    assert len(tunes) == 2 and tunes[0].startswith("X:7")
    assert normalize_tune(tunes[0]) == "T:First\nM:6/8\nK:D\ndef edc|]"
    assert normalize_tune(tunes[1]) == "T:Second\nM:3/4\nK:G\nGAB c2d|]"
    assert normalize_tune("X:1\nT:no music\nK:C\n") == ""


def test_split_is_deterministic_and_by_tune():
    tunes = [f"T:{i}\nK:C\nCDE|]" for i in range(100)]
    train_tunes, val = split_train_val(tunes)
    assert (train_tunes, val) == split_train_val(list(tunes))
    assert len(val) == 5 and not set(train_tunes) & set(val) and len(train_tunes) + len(val) == 100


def test_ascii_vocab_has_no_unknown_for_ascii_tunes():
    vocab = build_vocab([], "ascii")
    assert vocab[:3] == list(SPECIALS) and len(vocab) == 3 + 96 and set(ASCII_CHARS) < set(vocab)
    tune = '"G"GABc|"D7"d2 ^f=g _B,,|[CEG]3/2 (3abc {g}a~b !trill!c|]'
    assert UNK not in [vocab[i] for i in encode(tune, vocab)]
    assert out_of_vocab([tune + "é\té"], vocab) == {"é": 2, "\t": 1}
    assert build_vocab(["ba", "ac"], "corpus") == list(SPECIALS) + ["a", "b", "c"]


def test_stream_continues_across_items_and_epochs_reorder():
    tunes = [chr(ord("a") + k) * (5 + k) for k in range(12)]
    vocab = build_vocab(tunes, "corpus")
    stream = TuneStream(tunes, vocab, n_streams=2, seq_len=4, seed=0)
    x0, y0 = stream[0]
    x1, _ = stream[1]
    assert x0.shape == (2, 4) and torch.equal(y0[:, :-1], x0[:, 1:]) and torch.equal(y0[:, -1], x1[:, 0])
    joined = torch.cat([stream[k][0] for k in range(len(stream))], 1)  # (2, chunks * 4): the rows, in order
    whole = torch.cat([joined[0], joined[1]]).tolist()
    assert sorted(set(whole)) == list(range(1, len(vocab)))  # BOS, EOS and every letter; never UNK
    first = stream.x.clone()
    stream.set_epoch(1)
    assert not torch.equal(first, stream.x)
    stream.set_epoch(0)
    assert torch.equal(first, stream.x)  # a pure function of (seed, epoch)
    halves = [TuneStream(tunes, vocab, 1, 4, 0, rank=r, world=2) for r in range(2)]
    assert torch.equal(torch.cat([h.x for h in halves]), first)  # ranks share the rows, not the chunks


def test_stream_transpose_moves_tunes_to_new_keys_per_epoch():
    tunes = [f"T:t{k}\nM:4/4\nL:1/8\nK:G\n|:GABc dBAG|\"D7\"FGAB cAFD:|" for k in range(8)]
    vocab = build_vocab(tunes + ["K:ABCDEFGabcdefg^_=#',"], "corpus")
    plain = TuneStream(tunes, vocab, 1, 8, seed=0)
    moved = TuneStream(tunes, vocab, 1, 8, seed=0, transpose=True)
    assert len(moved) == len(plain) and moved.x.shape == plain.x.shape  # the layout keeps its length

    def keys(stream):
        text = "".join(vocab[i] for i in stream.x[0].tolist())
        return {line for line in text.split("\n") if line.startswith("K:")}

    assert keys(plain) == {"K:G"} and len(keys(moved)) > 1
    first = moved.x.clone()
    moved.set_epoch(1)
    assert not torch.equal(first, moved.x)
    moved.set_epoch(0)
    assert torch.equal(first, moved.x)  # a pure function of (seed, epoch), as without --transpose


def test_filter_logits():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    assert torch.isinf(filter_logits(logits, 2, 1.0)).tolist() == [[True, True, False, False]]
    probs = logits.softmax(-1)[0]  # 0.032 0.087 0.237 0.644
    kept = ~torch.isinf(filter_logits(logits, 0, 0.7))
    assert kept.tolist() == [[False, False, True, True]] and probs[3] < 0.7


def test_stream_score_equals_one_forward():
    torch.manual_seed(0)
    model = CharLSTM(CharLSTMConfig(vocab_size=10, embed_dim=4, hidden_size=8, num_layers=2)).eval()
    ids = torch.randint(0, 10, (700,))
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
        want = F.cross_entropy(logits[0], ids[1:]).item()
    # one stream cut in chunks of 64 with the state carried = one forward over the whole stream
    assert stream_nats_per_char(model, ids, "cpu", seq_len=64, n_streams=1) == pytest.approx(want, rel=1e-5)
    _, count = stream_nats(model, ids, "cpu", seq_len=64, n_streams=4)
    assert count == 4 * (699 // 4)
    with torch.no_grad():
        _, warm = model(torch.tensor([[1, 2, 3]]))
        logits, _ = model(ids[None, :-1], warm)
    assert stream_nats_per_char(model, ids, "cpu", seq_len=64, n_streams=1, burn_in=[1, 2, 3]) == pytest.approx(
        F.cross_entropy(logits[0], ids[1:]).item(), rel=1e-5)


def test_score_files_per_file_and_overall():
    torch.manual_seed(0)
    vocab = build_vocab([], "ascii")
    model = CharLSTM(CharLSTMConfig(vocab_size=len(vocab), embed_dim=4, hidden_size=8, num_layers=1)).eval()
    named = [("a.abc", [TUNE] * 3), ("b.abc", ["T:é\nK:C\nCDE|]"])]
    result = score_files(model, vocab, named, "cpu")
    a, b = result["files"]
    assert (a["tunes"], a["characters"], a["oov_share"]) == (3, 3 * (len(TUNE) + 2) - 1, 0.0)
    assert b["oov_chars"] == "é" and b["oov_share"] == pytest.approx(1 / b["characters"])
    overall = (a["bits_per_char"] * a["characters"] + b["bits_per_char"] * b["characters"]) / result["characters"]
    assert result["bits_per_char"] == pytest.approx(overall)
    assert 0.5 * math.log2(len(vocab)) < a["bits_per_char"] < 1.5 * math.log2(len(vocab))  # an untrained model


def test_tiny_lstm_learns_a_repeating_tune(tmp_path):
    data = write_abc(tmp_path / "abc", "tiny.abc", [TUNE] * 60)
    history = train([data], tiny_run(tmp_path / "run", epochs=12), replace(TINY, hidden_size=64, vocab="corpus"))
    assert history[0]["val_bpc"] > 1.0 and history[-1]["val_bpc"] < 0.2
    ck = load_checkpoint(tmp_path / "run" / "best.ckpt", task="generate")
    model = CharLSTM(CharLSTMConfig(**ck.config))
    model.load_state_dict(ck.state_dict)
    out = sample_tunes(model.eval(), ck.vocab, num=3, temperature=0.05, max_chars=200, seed=0)
    assert out == [TUNE] * 3
    assert parses_with_notes(out[0])


def test_same_seed_same_tensors(tmp_path):
    data = write_abc(tmp_path / "abc", "tunes.abc", [TUNE.replace("Tiny", f"Tune {i}") for i in range(30)])
    runs = []
    for k in range(2):
        torch.manual_seed(k)  # whatever the caller's RNG state: the run seeds itself before building the model
        train([data], tiny_run(tmp_path / f"run{k}"), TINY)
        runs.append(load_checkpoint(tmp_path / f"run{k}" / "last.ckpt"))
    a, b = runs
    assert a.state_dict.keys() == b.state_dict.keys()
    for key in a.state_dict:
        assert torch.equal(a.state_dict[key], b.state_dict[key]), key
    opt_a, opt_b = a.train_state["optimizer"]["state"], b.train_state["optimizer"]["state"]
    for key in opt_a:
        for name, value in opt_a[key].items():
            assert torch.equal(value, opt_b[key][name]), (key, name)
    assert a.history[-1]["train_loss"] == b.history[-1]["train_loss"]
    other = load_checkpoint(train_and_return(data, tmp_path / "seed4", seed=4))
    assert not torch.equal(other.state_dict["head.weight"], a.state_dict["head.weight"])


def train_and_return(data: Path, out: Path, **kw) -> Path:
    train([data], tiny_run(out, **kw), TINY)
    return out / "last.ckpt"


def test_init_fine_tunes_a_checkpoint(tmp_path):
    data = write_abc(tmp_path / "abc", "tunes.abc", [TUNE.replace("Tiny", f"Tune {i}") for i in range(30)])
    base = train_and_return(data, tmp_path / "base")
    # a vanishing lr: fine-tuning starts from the checkpoint's weights and vocabulary, and keeps them
    train([data], tiny_run(tmp_path / "init", lr=1e-12, weight_decay=0.0),
          replace(TINY, init=str(base), hidden_size=256, vocab="corpus"))
    a, b = load_checkpoint(base), load_checkpoint(tmp_path / "init" / "last.ckpt")
    assert b.config == a.config and b.vocab == a.vocab and b.extra["init"] == str(base)
    for key in a.state_dict:  # the architecture comes from --init (hidden_size 256 was not typed)
        torch.testing.assert_close(a.state_dict[key], b.state_dict[key], rtol=0, atol=1e-6)
    scratch = load_checkpoint(train_and_return(data, tmp_path / "scratch", lr=1e-12, weight_decay=0.0))
    assert not torch.allclose(scratch.state_dict["head.weight"], a.state_dict["head.weight"], atol=1e-3)


def test_init_refuses_a_typed_architecture(tmp_path):
    from songkit.core.errors import UserError

    data = write_abc(tmp_path / "abc", "tunes.abc", [TUNE] * 10)
    base = train_and_return(data, tmp_path / "base")
    run = tiny_run(tmp_path / "init", explicit=frozenset({"hidden_size"}))
    with pytest.raises(UserError, match="--hidden-size 32, not 64"):
        train([data], run, replace(TINY, init=str(base), hidden_size=64))


def test_format_tunes_numbers_every_tune():
    text = format_tunes(["T:a\nK:C\nC|]", "T:b\nK:C\nD|]"])
    assert text == "X:1\nT:a\nK:C\nC|]\n\nX:2\nT:b\nK:C\nD|]\n\n"


def test_stepper_matches_nn_lstm():
    torch.manual_seed(0)
    model = CharLSTM(CharLSTMConfig(vocab_size=20, embed_dim=8, hidden_size=16, num_layers=3)).eval()
    ids = torch.randint(0, 20, (4, 12))
    with torch.no_grad():
        want, _ = model(ids)
        step = LSTMStepper(model)
        h = [torch.zeros(4, 16) for _ in range(3)]
        c = [torch.zeros(4, 16) for _ in range(3)]
        for t in range(12):
            got, h, c = step(ids[:, t], h, c)
            torch.testing.assert_close(got, want[:, t], atol=1e-5, rtol=1e-5)


def test_corpus_ids_layout():
    vocab = build_vocab(["ab"], "corpus")
    assert corpus_ids(["ab", "b"], vocab) == [1, 3, 4, 2, 1, 4, 2]


def test_abc2midi_compile_check():
    program = abc2midi_path()
    if program is None:
        pytest.skip("abc2midi (inside the symusic wheel) is not installed")
    assert compiles_with_abc2midi(TUNE, program)
    assert not compiles_with_abc2midi("T:bad\nM:4/4\nK:C\nCDE|]]]((( ^^^^^x3/0|", program)
