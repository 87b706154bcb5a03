"""The shared training loop on a toy task: it learns, repeats, resumes exactly, stops early, writes its files."""

import json
import os
import signal

import pytest
import torch
from toy import META, Keep, ToyTask, make_model

from songkit.core.checkpoint import load_checkpoint
from songkit.core.errors import UserError
from songkit.core.train import TrainConfig, TrainRun, ema_decay, ema_update, fit, lr_at, prepare_run_folder


def _weights(path):
    return load_checkpoint(path).state_dict


def test_learns_and_writes_run_files(tmp_path):
    cfg = TrainConfig(epochs=15, lr=3e-2, warmup_steps=5, monitor="val_acc", monitor_mode="max")
    history = fit(make_model, ToyTask(), cfg, tmp_path, META, device="cpu")
    assert history[-1]["val_acc"] > 0.9 and history[-1]["val_loss"] < history[0]["val_loss"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 16))
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = load_checkpoint(tmp_path / "best.ckpt", task="toy")
    assert best.train_state is None and best.vocab == ["neg", "pos"]
    assert max(r["val_acc"] for r in rows) == pytest.approx(best.history[-1]["val_acc"])
    assert load_checkpoint(tmp_path / "last.ckpt").train_state["epoch"] == 14


def test_same_seed_same_run_whatever_the_rng_did_before(tmp_path):
    """fit seeds before it builds the model: what the caller drew before does not matter."""
    cfg = dict(epochs=2, lr=1e-2)
    torch.manual_seed(123)
    fit(make_model, ToyTask(), TrainConfig(**cfg, seed=3), tmp_path / "a", META, device="cpu")
    torch.rand(1000)  # another caller state
    fit(make_model, ToyTask(), TrainConfig(**cfg, seed=3), tmp_path / "b", META, device="cpu")
    fit(make_model, ToyTask(), TrainConfig(**cfg, seed=4), tmp_path / "c", META, device="cpu")
    a, b, c = (_weights(tmp_path / k / "last.ckpt") for k in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_loader_order_does_not_depend_on_workers(tmp_path):
    """--workers 0 and --workers 2 train to the same weights (order from (seed, epoch) only)."""
    cfg = dict(epochs=2, lr=1e-2)
    fit(make_model, ToyTask(workers=0), TrainConfig(**cfg), tmp_path / "w0", META, device="cpu")
    fit(make_model, ToyTask(workers=2), TrainConfig(**cfg), tmp_path / "w2", META, device="cpu")
    a, b = _weights(tmp_path / "w0" / "last.ckpt"), _weights(tmp_path / "w2" / "last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("schedule,optimizer", [("cosine", "adamw"), ("plateau", "adam"), ("none", "sgd")])
def test_resume_equals_uninterrupted(tmp_path, schedule, optimizer):
    cfg = dict(epochs=4, lr=1e-2, schedule=schedule, optimizer=optimizer, warmup_steps=3, plateau_patience=0)
    full = Keep()
    h_full = fit(full, ToyTask(), TrainConfig(**cfg), tmp_path / "full", META, device="cpu")
    fit(make_model, ToyTask(), TrainConfig(**cfg), tmp_path / "part", META, device="cpu", stop_after_epoch=2)
    resumed = Keep()  # a new process starts from fresh weights
    h_res = fit(resumed, ToyTask(), TrainConfig(**cfg), tmp_path / "part", META, device="cpu", resume=True)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert [r["train_loss"] for r in h_full] == [r["train_loss"] for r in h_res]


def test_ema_update_is_the_moving_average():
    ema, model = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        ema.weight.fill_(1.0)
        model.weight.fill_(3.0)
        model.running_mean.fill_(2.0)
    model.num_batches_tracked.fill_(7)
    ema_update(ema, model, 0.75)
    assert torch.allclose(ema.weight, torch.full((2,), 1.5))  # 0.75 * 1 + 0.25 * 3
    assert torch.allclose(ema.running_mean, torch.full((2,), 0.5))  # buffers are averaged too
    assert int(ema.num_batches_tracked) == 7  # integer buffers are copied
    assert ema_decay(0, 0.999) == pytest.approx(0.1) and ema_decay(10**6, 0.999) == 0.999


def test_ema_is_what_is_saved_and_resumes_exactly(tmp_path):
    cfg = dict(epochs=4, lr=1e-2, warmup_steps=3, ema=0.9)
    full = Keep()
    h_full = fit(full, ToyTask(), TrainConfig(**cfg), tmp_path / "full", META, device="cpu")
    last = load_checkpoint(tmp_path / "full" / "last.ckpt")
    raw = last.train_state["raw_state"]
    assert all(torch.equal(a, b) for a, b in zip(raw.values(), full.model.state_dict().values()))
    assert not all(torch.equal(last.state_dict[k], raw[k]) for k in raw)  # the average, not the raw weights
    fit(make_model, ToyTask(), TrainConfig(**cfg), tmp_path / "part", META, device="cpu", stop_after_epoch=2)
    h_res = fit(make_model, ToyTask(), TrainConfig(**cfg), tmp_path / "part", META, device="cpu", resume=True)
    again = load_checkpoint(tmp_path / "part" / "last.ckpt")
    assert all(torch.equal(last.state_dict[k], again.state_dict[k]) for k in raw)
    assert [r["val_loss"] for r in h_full] == [r["val_loss"] for r in h_res]  # evaluated on the average
    with pytest.raises(UserError, match="ema"):
        TrainConfig(ema=1.0).check()


def test_resume_of_a_run_older_than_an_option_takes_the_option_off(tmp_path):
    """A run recorded before --ema existed resumes without it, whatever today's CLI default is."""
    run = TrainRun(out=tmp_path, epochs=1)
    assert prepare_run_folder(run, {})
    run.record.pop("ema")  # as a previous release recorded it
    fit(make_model, ToyTask(), run.train_config(), tmp_path, META, device="cpu")
    again = TrainRun(out=tmp_path, epochs=2, resume=True, ema=0.995)  # a task's default today
    assert prepare_run_folder(again, {}) and again.ema == 0.0
    fit(make_model, ToyTask(), again.train_config(), tmp_path, META, device="cpu", resume=True)
    assert load_checkpoint(tmp_path / "last.ckpt").train_state["epoch"] == 1


def test_resume_repairs_metrics_left_behind_by_a_kill(tmp_path):
    fit(make_model, ToyTask(), TrainConfig(epochs=3), tmp_path, META, device="cpu")
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')  # as if killed before metrics were replaced
    (tmp_path / ".last.ckpt.abcd1234.tmp").write_bytes(b"half a checkpoint")  # a killed atomic write
    run = TrainRun(out=tmp_path, epochs=3, resume=True)
    assert prepare_run_folder(run, {}) is False  # finished: nothing to do
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3
    fit(make_model, ToyTask(), TrainConfig(epochs=4), tmp_path, META, device="cpu", resume=True)
    assert not list(tmp_path.glob("*.tmp"))


def test_run_folder_refused_without_resume_or_force(tmp_path):
    fit(make_model, ToyTask(), TrainConfig(epochs=1), tmp_path, META, device="cpu")
    before = (tmp_path / "best.ckpt").read_bytes()
    with pytest.raises(UserError, match="holds a run already.*--force starts over"):
        prepare_run_folder(TrainRun(out=tmp_path), {})
    assert (tmp_path / "best.ckpt").read_bytes() == before
    assert prepare_run_folder(TrainRun(out=tmp_path, force=True), {}) is True
    assert not (tmp_path / "best.ckpt").exists()


def test_resume_takes_the_runs_options_and_refuses_a_typed_change(tmp_path):
    run = TrainRun(out=tmp_path, epochs=1, lr=0.05, batch_size=8)
    opts = {"hidden_size": 64}
    assert prepare_run_folder(run, opts)
    fit(make_model, ToyTask(), run.train_config(), tmp_path, META, device="cpu")
    again = TrainRun(out=tmp_path, epochs=3, resume=True)  # defaults: lr 1e-3, batch 32
    opts2 = {"hidden_size": 256}
    assert prepare_run_folder(again, opts2)
    assert (again.lr, again.batch_size, opts2["hidden_size"]) == (0.05, 8, 64)
    typed = TrainRun(out=tmp_path, epochs=3, resume=True, lr=0.1, explicit=frozenset({"lr"}))
    with pytest.raises(UserError, match="--lr 0.1 differs from the run's 0.05"):
        prepare_run_folder(typed, {"hidden_size": 64})
    typed = TrainRun(out=tmp_path, epochs=3, resume=True, explicit=frozenset({"hidden_size"}))
    with pytest.raises(UserError, match="--hidden-size 128 differs"):
        prepare_run_folder(typed, {"hidden_size": 128})


def test_interrupt_names_the_saved_epoch(tmp_path):
    class Interrupting(ToyTask):
        def evaluate(self, model, device):
            if self.calls == 1:
                os.kill(os.getpid(), signal.SIGINT)
            self.calls += 1
            return super().evaluate(model, device)

    task = Interrupting()
    task.calls = 0
    with pytest.raises(KeyboardInterrupt, match="interrupted in epoch 2.*last.ckpt holds epoch 1; --resume"):
        fit(make_model, task, TrainConfig(epochs=3), tmp_path, META, device="cpu")


def test_early_stopping(tmp_path):
    cfg = TrainConfig(epochs=50, lr=1e-9, patience=2, schedule="none")  # lr so low nothing improves
    history = fit(make_model, ToyTask(), cfg, tmp_path, META, device="cpu")
    assert len(history) < 50
    assert load_checkpoint(tmp_path / "last.ckpt").train_state["done"]


def test_resume_refuses_another_config(tmp_path):
    fit(make_model, ToyTask(), TrainConfig(epochs=1), tmp_path, META, device="cpu")
    with pytest.raises(UserError, match="different model or config"):
        fit(make_model, ToyTask(), TrainConfig(epochs=2), tmp_path, {**META, "config": {"hidden": 64}},
            device="cpu", resume=True)


def test_warmup_cosine_schedule():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, 110, cfg) == pytest.approx(0.1)
    assert lr_at(9, 110, cfg) == pytest.approx(1.0)
    assert lr_at(10, 110, cfg) == pytest.approx(1.0)
    assert lr_at(60, 110, cfg) == pytest.approx(0.55)
    assert lr_at(110, 110, cfg) == pytest.approx(0.1)
