"""Every task is reachable in every layer, and help never needs torch."""

import subprocess
import sys

import pytest

from songkit.tasks import TASKS

HELP_CHECK = """
import sys
from typer.testing import CliRunner
from songkit.cli import app
from songkit.tasks import TASKS
runner = CliRunner()
for args in [[]] + [[t] for t in TASKS] + [["train", t] for t in TASKS] + [["eval", t] for t in TASKS]:
    r = runner.invoke(app, args + ["--help"])
    assert r.exit_code == 0, (args, r.output)
    assert "Usage" in r.output, args
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "music21", "symusic", "soundfile"))
assert not heavy, heavy
print("ok", len(TASKS))
"""


def test_help_of_every_command_without_heavy_imports():
    proc = subprocess.run([sys.executable, "-c", HELP_CHECK], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"ok {len(TASKS)}"


def test_all_five_tasks_are_built():
    assert sorted(TASKS) == ["chords", "generate", "instrument", "segment", "tokenize"]


@pytest.mark.parametrize("args", [["train", "nosuchtask"], ["generate", "--no-such-option"]])
def test_usage_errors_exit_2(cli, args):
    proc = cli(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- cli.output
def test_table_is_plain_aligned_and_never_wraps():
    import io

    from songkit.cli.output import print_table

    buf = io.StringIO()
    long = "/a/very/long/path/" * 12 + "x.wav"
    print_table("instrument", ["file", "family", "probability"],
                [[long, "brass", 0.91234], ["b.wav", "keyboard\nnew", float("nan")], ["c.wav", None, 12345]], file=buf)
    assert buf.getvalue().splitlines() == [
        "instrument",
        "file" + " " * (len(long) - 4) + "  family        probability",
        long + "  brass               0.912",
        "b.wav" + " " * (len(long) - 5) + "  keyboard new            -",
        "c.wav" + " " * (len(long) - 5) + "                     12,345",
    ]


def test_json_is_one_line_without_nan():
    import io
    import json
    from pathlib import Path

    from songkit.cli.output import print_json

    buf = io.StringIO()
    print_json({"file": Path("a b.wav"), "score": float("nan"), "top": [1.5, float("inf")], "é": "ü"}, file=buf)
    text = buf.getvalue()
    assert text.count("\n") == 1 and json.loads(text) == {"file": "a b.wav", "score": None, "top": [1.5, None],
                                                          "é": "ü"}
