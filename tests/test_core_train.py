"""The shared training loop on a toy task: it learns, resumes exactly, stops early, writes its files."""

import json

import pytest
import torch

from songkit.core.checkpoint import load_checkpoint
from songkit.core.train import TrainConfig, fit, lr_at
from toy import META, ToyTask, make_model




def test_learns_and_writes_run_files(tmp_path):
    cfg = TrainConfig(epochs=15, lr=3e-2, warmup_steps=5, monitor="val_acc", monitor_mode="max")
    history = fit(make_model(), ToyTask(), cfg, tmp_path, META, device="cpu")
    assert history[-1]["val_acc"] > 0.9 and history[-1]["val_loss"] < history[0]["val_loss"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 16))
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = load_checkpoint(tmp_path / "best.ckpt", task="toy")
    assert best.train_state is None and best.vocab == ["neg", "pos"]
    assert max(r["val_acc"] for r in rows) == pytest.approx(best.history[-1]["val_acc"])
    assert load_checkpoint(tmp_path / "last.ckpt").train_state["epoch"] == 14


@pytest.mark.parametrize("schedule,optimizer", [("cosine", "adamw"), ("plateau", "adam"), ("none", "sgd")])
def test_resume_equals_uninterrupted(tmp_path, schedule, optimizer):
    cfg = dict(epochs=4, lr=1e-2, schedule=schedule, optimizer=optimizer, warmup_steps=3, plateau_patience=0)
    full = make_model()
    h_full = fit(full, ToyTask(), TrainConfig(**cfg), tmp_path / "full", META, device="cpu")
    killed = make_model()
    fit(killed, ToyTask(), TrainConfig(**cfg), tmp_path / "part", META, device="cpu", stop_after_epoch=2)
    resumed = make_model()  # a new process would start from fresh weights
    h_res = fit(resumed, ToyTask(), TrainConfig(**cfg), tmp_path / "part", META, device="cpu", resume=True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert [r["train_loss"] for r in h_full] == [r["train_loss"] for r in h_res]


def test_early_stopping(tmp_path):
    cfg = TrainConfig(epochs=50, lr=1e-9, patience=2, schedule="none")  # lr so low nothing improves
    history = fit(make_model(), ToyTask(), cfg, tmp_path, META, device="cpu")
    assert len(history) < 50
    assert load_checkpoint(tmp_path / "last.ckpt").train_state["done"]


def test_resume_refuses_another_config(tmp_path):
    from songkit.core.errors import UserError

    fit(make_model(), ToyTask(), TrainConfig(epochs=1), tmp_path, META, device="cpu")
    with pytest.raises(UserError, match="different model or config"):
        fit(make_model(), ToyTask(), TrainConfig(epochs=2), tmp_path, {**META, "config": {"hidden": 64}},
            device="cpu", resume=True)


def test_warmup_cosine_schedule():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, 110, cfg) == pytest.approx(0.1)
    assert lr_at(9, 110, cfg) == pytest.approx(1.0)
    assert lr_at(10, 110, cfg) == pytest.approx(1.0)
    assert lr_at(60, 110, cfg) == pytest.approx(0.55)
    assert lr_at(110, 110, cfg) == pytest.approx(0.1)
