"""Training the instrument models through ``train()``: runs that repeat exactly (any worker count, with
augmentation and mixup), resume equal to an uninterrupted run, and a model that learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_instrument_data import make_nsynth

from songkit.core.train import TrainRun
from songkit.tasks.instrument.constants import TrainOptions
from songkit.tasks.instrument.train import train


@pytest.fixture(scope="module")
def nsynth(tmp_path_factory) -> Path:
    return make_nsynth(tmp_path_factory.mktemp("ns"), {"train": 4, "valid": 2})


def run_in(out: Path, **kw) -> TrainRun:
    values = {"out": out, "epochs": 1, "batch_size": 4, "lr": 1e-3, "optimizer": "adam", "weight_decay": 0.0,
              "schedule": "none", "max_steps_per_epoch": 2, "device": "cpu", "seed": 3, "workers": 0, **kw}
    return TrainRun(**values)


def weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "last.ckpt", weights_only=True)["state_dict"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_whatever_the_workers(nsynth, tmp_path):
    options = TrainOptions(model="cnn2d", augment=True, mixup=0.2)
    train([nsynth], run_in(tmp_path / "a"), options)
    train([nsynth], run_in(tmp_path / "b", workers=2), options)
    train([nsynth], run_in(tmp_path / "c", seed=4), options)
    assert same(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert not same(weights(tmp_path / "a"), weights(tmp_path / "c"))


def test_resume_through_the_loader_equals_an_uninterrupted_run(nsynth, tmp_path):
    options = TrainOptions(model="linear", augment=True)
    train([nsynth], run_in(tmp_path / "full", epochs=2, max_steps_per_epoch=0), options)
    train([nsynth], run_in(tmp_path / "cut", epochs=1, max_steps_per_epoch=0), options)
    history = train([nsynth], run_in(tmp_path / "cut", epochs=2, max_steps_per_epoch=0, resume=True), options)
    assert [h["epoch"] for h in history] == [1, 2]
    assert same(weights(tmp_path / "full"), weights(tmp_path / "cut"))


def test_a_model_learns_a_tiny_family_task(tmp_path):
    """cnn1d separates three synthetic families (bass/mallet/organ) on instruments it has not seen."""
    root = make_nsynth(tmp_path / "ns", {"train": 12, "valid": 6})
    history = train([root], run_in(tmp_path / "run", epochs=5, max_steps_per_epoch=0, batch_size=8),
                    TrainOptions(model="cnn1d"))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert max(h["val_acc"] for h in history) >= 0.9  # chance is 1/3
    assert (tmp_path / "run" / "best.ckpt").is_file()


def test_recipe_options_reach_the_checkpoint(nsynth, tmp_path):
    options = TrainOptions(model="cnn1d", augment=True, timbre=True, frontend="pcen")
    train([nsynth], run_in(tmp_path / "r", max_steps_per_epoch=1), options)
    ck = torch.load(tmp_path / "r" / "best.ckpt", weights_only=True)
    assert ck["config"]["frontend"] == "pcen"
    assert ck["extra"]["augment"]["eq_db"] == 8.0 and ck["extra"]["augment"]["reverb"] == 0.3
    from songkit.core.errors import UserError

    with pytest.raises(UserError, match="--frontend pcen: model lstm has no log-mel front end"):
        train([nsynth], run_in(tmp_path / "s"), TrainOptions(model="lstm", frontend="pcen"))
