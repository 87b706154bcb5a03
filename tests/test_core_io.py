"""core.io: the overwrite rule of every command, `-` for stdin, atomic writes and their stale temp files."""

import io
import os
import sys

import pytest

from songkit.core.errors import UserError
from songkit.core.io import (
    atomic_write_text,
    check_outputs,
    clean_stale_temps,
    input_file,
    open_output,
    output_for,
    read_input_bytes,
)


@pytest.fixture
def files(tmp_path):
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.wav").write_bytes(b"sub a")
    return tmp_path


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_one_input_and_a_file_name_writes_that_file(files):
    assert output_for([files / "a.wav"], files / "a.lab", ".lab", force=False) == [files / "a.lab"]
    assert output_for([files / "a.wav"], files / "new" / "song", ".lab", force=False) == [files / "new" / "song"]


def test_one_input_and_a_folder(files):
    assert output_for([files / "a.wav"], files / "sub", ".lab", False) == [files / "sub" / "a.lab"]
    assert output_for([files / "a.wav"], str(files / "labels") + "/", ".lab", False) == [files / "labels" / "a.lab"]


def test_several_inputs_go_into_a_folder_with_distinct_names(files):
    ins = [files / "a.wav", files / "sub" / "a.wav", files / "b.wav", "-"]
    assert output_for(ins, files / "out", ".lab", False) == [
        files / "out" / "a.lab", files / "out" / "a-2.lab", files / "out" / "b.lab", files / "out" / "stdin.lab"]
    with pytest.raises(UserError, match=r"a\.wav: is a file; with several inputs --out is a folder"):
        output_for(ins, files / "a.wav", ".lab", False)


def test_no_out_or_dash_is_stdout(files):
    assert output_for([files / "a.wav", files / "b.wav"], None, ".lab", False) == ["-", "-"]
    assert output_for([files / "a.wav"], "-", ".lab", False) == ["-"]


@pytest.mark.parametrize("force", [False, True])
def test_never_over_an_input_even_with_force(files, force):
    before = snapshot(files)
    # `cd photos; songkit segment photo.png --out .`: the derived name is the input itself
    with pytest.raises(UserError, match=r"a\.wav: is one of the inputs"):
        output_for([files / "a.wav", files / "b.wav"], files, ".wav", force)
    with pytest.raises(UserError, match=r"a\.wav: is one of the inputs"):
        output_for([files / "a.wav"], files / "a.wav", ".lab", force)
    os.symlink(files / "b.wav", files / "link.wav")  # the same file under another name
    with pytest.raises(UserError, match=r"link\.wav: is one of the inputs"):
        output_for([files / "b.wav"], files / "link.wav", ".lab", force)
    os.link(files / "b.wav", files / "hard.wav")
    with pytest.raises(UserError, match=r"hard\.wav: is one of the inputs"):
        output_for([files / "b.wav"], files / "hard.wav", ".lab", force)
    assert {p: b for p, b in snapshot(files).items() if p.name not in ("link.wav", "hard.wav")} == before


def test_existing_non_input_needs_force(files):
    (files / "out").mkdir()
    (files / "out" / "b.lab").write_text("keep")
    (files / "old.lab").write_text("keep")
    with pytest.raises(UserError, match=r"^.*out/b\.lab: exists \(--force replaces it\)$"):
        output_for([files / "a.wav", files / "b.wav"], files / "out", ".lab", False)
    with pytest.raises(UserError, match=r"old\.lab: exists \(--force replaces it\)"):
        output_for([files / "a.wav"], files / "old.lab", ".lab", False)
    assert output_for([files / "a.wav"], files / "old.lab", ".lab", True) == [files / "old.lab"]
    assert (files / "old.lab").read_text() == "keep"  # output_for only decides; nothing is written


def test_check_outputs_refuses_a_folder_and_duplicates(files):
    with pytest.raises(UserError, match=r"sub: is a folder"):
        check_outputs([files / "a.wav"], [files / "sub"], force=True)
    with pytest.raises(UserError, match="two outputs would have this name"):
        check_outputs([], [files / "x.lab", files / "x.lab"], force=True)


def test_read_input_bytes_and_input_file_from_stdin(files, monkeypatch):
    assert read_input_bytes(files / "a.wav") == b"a.wav"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"RIFF\x00\xff")))
    with input_file("-", suffix=".wav") as path:
        assert path.name == "stdin.wav" and path.read_bytes() == b"RIFF\x00\xff"
    assert not path.exists()  # the copy is removed afterwards
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x" * 11)))
    with pytest.raises(UserError, match="-: stdin holds more than 10 bytes"):
        read_input_bytes("-", max_bytes=10)
    with input_file(files / "b.wav") as path:
        assert path == files / "b.wav"


def test_missing_input_and_folder_are_one_line(files):
    with pytest.raises(UserError, match=r"nope\.wav: no such file"):
        read_input_bytes(files / "nope.wav")
    with pytest.raises(UserError, match=r"sub: is a folder"):
        with input_file(files / "sub"):
            pass
    with pytest.raises(UserError, match=r"a\.wav: larger than 2 bytes"):
        read_input_bytes(files / "a.wav", max_bytes=2)


def test_stdin_terminal_is_refused(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    with pytest.raises(UserError, match="stdin is a terminal"):
        read_input_bytes("-")


def test_clean_stale_temps_removes_only_songkit_temps(tmp_path):
    atomic_write_text(tmp_path / "metrics.jsonl", "{}\n")
    with pytest.raises(RuntimeError):  # an error mid-write removes its own temp file
        with open_output(tmp_path / "x.txt") as f:
            f.write("half")
            raise RuntimeError("boom")
    # what a SIGKILL mid-write leaves behind, and files that only look similar
    stale = [tmp_path / ".last.ckpt.ab_3x9kq.tmp", tmp_path / ".metrics.jsonl.zz00aa11.tmp"]
    keep = [tmp_path / "notes.tmp", tmp_path / ".hidden.tmp", tmp_path / ".last.ckpt.short.tmp",
            tmp_path / "metrics.jsonl"]
    for p in stale + keep[:-1]:
        p.write_text("x")
    assert sorted(clean_stale_temps(tmp_path, names=["metrics.jsonl"])) == [stale[1]]
    assert sorted(clean_stale_temps(tmp_path)) == [stale[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)
    assert clean_stale_temps(tmp_path / "missing") == []
