"""core.data (seeded loaders, build-once caches) and core.device's precision choice."""

import os

import pytest
import torch

from songkit.core import data as core_data
from songkit.core.device import amp_dtype, autocast, cpu_supports_bf16, place_model
from songkit.core.errors import UserError


def test_loader_order_is_a_function_of_seed_and_epoch():
    ds = torch.utils.data.TensorDataset(torch.arange(20))

    def order(seed, epoch, rank=0, world=1):
        loader = core_data.make_loader(ds, batch_size=4, shuffle=True, seed=seed, epoch=epoch, rank=rank, world=world)
        return torch.cat([b[0] for b in loader]).tolist()

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)
    assert sorted(order(1, 3)) == list(range(20))
    shards = order(1, 0, 0, 2) + order(1, 0, 1, 2)  # two ranks: disjoint halves of the same permutation
    assert sorted(shards) == list(range(20))


def test_item_rng_is_per_item():
    a = core_data.item_rng(0, 1, 5).random(3)
    assert (a == core_data.item_rng(0, 1, 5).random(3)).all()
    assert not (a == core_data.item_rng(0, 1, 6).random(3)).all()
    assert not (a == core_data.item_rng(0, 2, 5).random(3)).all()


def test_build_once_is_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("SONGKIT_HOME", str(tmp_path))
    calls = []

    def broken(folder):
        (folder / "half.txt").write_text("half")
        raise KeyboardInterrupt  # a killed build

    with pytest.raises(KeyboardInterrupt):
        core_data.build_once("toyset", broken)
    assert not (tmp_path / "toyset-v1").exists() and not list(tmp_path.glob(".toyset*"))

    def build(folder):
        calls.append(folder)
        (folder / "all.txt").write_text("all")

    path = core_data.build_once("toyset", build)
    assert path == tmp_path / "toyset-v1" and (path / "all.txt").read_text() == "all"
    assert core_data.build_once("toyset", build) == path and len(calls) == 1  # built once
    assert core_data.build_once("toyset", build, version="2") != path and len(calls) == 2


def test_build_once_removes_leftovers_of_dead_builders(tmp_path, monkeypatch):
    monkeypatch.setenv("SONGKIT_HOME", str(tmp_path))
    dead = tmp_path / ".toyset-v1.999999999.x.building"  # no such pid
    dead.mkdir()
    core_data.build_once("toyset", lambda folder: (folder / "a").write_text("a"))
    assert not dead.exists()


def test_precision_follows_the_hardware():
    conv = torch.nn.Conv2d(3, 4, 3)
    conv_cls = type("ConvNet", (torch.nn.Sequential,), {"channels_last": True})
    net = conv_cls(conv)
    lstm_cls = type("Slow", (torch.nn.Module,), {"use_amp": False})
    assert amp_dtype("cpu", enabled=False) is None
    assert amp_dtype("cpu", model=lstm_cls()) is None
    expected = torch.bfloat16 if cpu_supports_bf16() else None
    assert amp_dtype("cpu") is expected
    placed = place_model(net, "cpu")
    assert placed[0].weight.is_contiguous(memory_format=torch.channels_last) == (expected is not None)
    with autocast("cpu", torch.bfloat16):
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16
    with autocast("cpu", None):
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.float32


def test_default_workers_bounded():
    assert 0 <= core_data.default_workers() <= min(4, os.cpu_count() or 1)


class _BadNotes(torch.utils.data.Dataset):
    def __len__(self): return 4
    def __getitem__(self, i):
        raise UserError(f"note{i}.wav: not a WAV file")

def test_user_error_from_a_worker_is_the_original_line():
    with pytest.raises(UserError) as e:
        list(core_data.make_loader(_BadNotes(), batch_size=2, shuffle=False, seed=0, workers=1))
    assert e.value.format_message() == "note0.wav: not a WAV file"
