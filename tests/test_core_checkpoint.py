import io
from pathlib import Path

import pytest
import torch

from songkit.core.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from songkit.core.errors import UserError


def _save(path, **kw):
    model = torch.nn.Linear(3, 2)
    args = dict(task="generate", model="lstm", config={"hidden": 3}, vocab=["a", "b"],
                state_dict=model.state_dict(), history=[{"epoch": 1, "val_loss": 0.5}], extra={"seq_len": 8})
    args.update(kw)
    return model, save_checkpoint(path, **args)


def test_round_trip(tmp_path):
    model, path = _save(tmp_path / "a.ckpt")
    ck = load_checkpoint(path, task="generate")
    assert (ck.task, ck.model, ck.config, ck.vocab, ck.extra) == ("generate", "lstm", {"hidden": 3}, ["a", "b"], {"seq_len": 8})
    assert ck.history == [{"epoch": 1, "val_loss": 0.5}]
    for k, v in model.state_dict().items():
        assert torch.equal(ck.state_dict[k], v)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".a.ckpt*"))  # atomic: no temp left


def test_ddp_prefixes_are_stripped(tmp_path):
    sd = {"module.weight": torch.zeros(2), "_orig_mod.bias": torch.ones(1)}
    _, path = _save(tmp_path / "p.ckpt", state_dict=sd)
    assert set(load_checkpoint(path).state_dict) == {"weight", "bias"}


def test_other_task_is_refused(tmp_path):
    _, path = _save(tmp_path / "c.ckpt", task="chords")
    with pytest.raises(UserError, match="'chords' checkpoint.*'generate'"):
        load_checkpoint(path, task="generate")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_object_is_refused_not_executed(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    torch.save({"format": "songkit-checkpoint", "format_version": 1, "payload": Evil()}, path)
    with pytest.raises(UserError, match="refused"):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "junk.ckpt"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(UserError, match="junk.ckpt: not a songkit checkpoint"):
        load_checkpoint(bad)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(1)}, plain)
    with pytest.raises(UserError, match="no songkit header"):
        load_checkpoint(plain)
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "new.ckpt"
    _save(path)
    obj = torch.load(path, weights_only=True)
    obj["format_version"] = FORMAT_VERSION + 1
    torch.save(obj, path)
    with pytest.raises(UserError, match="newer"):
        load_checkpoint(path)


def test_failed_save_keeps_previous_file(tmp_path):
    path = tmp_path / "keep.ckpt"
    _save(path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, task="generate", model="lstm", config={}, vocab=[], state_dict={"x": object()})
    assert path.read_bytes() == before
