"""Every task is reachable in every layer, and help never needs torch."""

import re
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


# ----------------------------------------------------------------------------- exit status of every command
FAKE_APP = '''
import sys, typer
from rich.console import Console
import songkit.cli as cli
from songkit.core.errors import UserError

fake = typer.Typer()

@fake.command()
def go(kind: str):
    if kind == "print":
        for i in range(100000):
            print(f"line {i} " + "x" * 60)
    elif kind == "rich":
        console = Console(file=sys.stdout, width=40)
        for i in range(100000):
            console.print(f"row {i}", "y" * 60)
    elif kind == "bytes":
        sys.stdout.buffer.write(b"z" * 1_000_000)
    elif kind == "final":
        sys.stdout.write("short, still in the buffer at exit\\n")
    elif kind == "crash":
        {}["missing key"]
    elif kind == "user":
        raise UserError("x.wav: not audio")
    elif kind == "interrupt":
        raise KeyboardInterrupt("interrupted in epoch 3; last.ckpt holds epoch 2; --resume continues")
    elif kind == "bare-interrupt":
        raise KeyboardInterrupt

@fake.command()
def other():
    pass

cli._command = lambda: typer.main.get_command(fake)
sys.exit(cli.run(sys.argv[1:]))
'''


def fake(*args, close_stdout=False, env=None):
    """Run the fake app through songkit.cli.run in a subprocess; with ``close_stdout`` the reader is gone
    before the command writes (what `| head -c 20` does to a long output)."""
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", FAKE_APP, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    if close_stdout:
        proc.stdout.close()
        out = b""
    else:
        out = proc.stdout.read()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=60), out.decode(), err


@pytest.mark.parametrize("kind", ["print", "rich", "bytes", "final"])
def test_closed_pipe_exits_0_quietly(kind):
    code, _, err = fake("go", kind, close_stdout=True)
    assert (code, err) == (0, "")


def test_closed_pipe_of_the_real_entry_point():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "songkit", "--version"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0 and proc.stderr.read() == b""


def test_internal_error_is_one_line_exit_1():
    code, out, err = fake("go", "crash")
    assert code == 1 and out == ""
    assert err == ("songkit: internal error: KeyError: 'missing key' "
                   "(please report; SONGKIT_DEBUG=1 shows the traceback)\n")
    code, _, err = fake("go", "crash", env={"SONGKIT_DEBUG": "1"})
    assert code == 1 and "Traceback (most recent call last)" in err and 'kind == "crash"' not in err
    assert err.rstrip().splitlines()[-1].startswith("songkit: internal error: KeyError")


def test_user_error_is_one_line_exit_2():
    assert fake("go", "user") == (2, "", "songkit: error: x.wav: not audio\n")


def test_interrupt_says_what_and_exits_130():
    assert fake("go", "interrupt") == (
        130, "", "songkit: interrupted in epoch 3; last.ckpt holds epoch 2; --resume continues\n")
    assert fake("go", "bare-interrupt") == (130, "", "songkit: interrupted\n")


def test_quiet_after_the_subcommand():
    from songkit.cli import hoist_quiet

    assert hoist_quiet(["train", "instrument", "--epochs", "1", "-q"]) == [
        "--quiet", "train", "instrument", "--epochs", "1"]
    assert hoist_quiet(["chords", "a.wav", "--quiet", "-o", "x.lab"]) == ["--quiet", "chords", "a.wav", "-o", "x.lab"]
    # the value of an option that takes one, and anything after --, stay where they are
    assert hoist_quiet(["generate", "--prime", "-q", "-q"]) == ["--quiet", "generate", "--prime", "-q"]
    assert hoist_quiet(["tokenize", "--", "-q"]) == ["tokenize", "--", "-q"]


def test_quiet_after_the_subcommand_end_to_end():
    from songkit.cli import run
    from songkit.core.progress import is_quiet, set_quiet

    set_quiet(False)
    assert run(["models", "nosuchtask", "-q"]) == 2 and is_quiet()
    set_quiet(False)


def test_no_option_named_q_elsewhere():
    """-q means --quiet everywhere: no command may use it for something else (it is moved to the front)."""
    from songkit.cli import QUIET, _command

    def walk(cmd, path):
        for p in cmd.params:
            if path:
                assert not set(p.opts) & set(QUIET), (path, p.opts)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(_command(), [])


def test_help_lists_commands_without_cutting_them():
    from typer.testing import CliRunner

    from songkit.cli import app

    for args in (["--help"], ["train", "--help"], ["eval", "--help"], ["data", "--help"]):
        out = CliRunner().invoke(app, args, env={"COLUMNS": "80"}).output
        listing = out.split("Commands:")[1]
        assert "..." not in listing, (args, listing)


def test_models_lists_each_task_with_parameters_and_the_shipped_one():
    import json

    from typer.testing import CliRunner

    from songkit.cli import app

    r = CliRunner().invoke(app, ["models", "chords", "--json"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [row["model"] for row in rows if row["shipped"]] == ["cnn_blstm"]
    assert {row["task"] for row in rows} == {"chords"} and all(row["parameters"] > 0 for row in rows)
    r = CliRunner().invoke(app, ["models", "nosuch"])
    assert r.exit_code == 2 and "nosuch: unknown task; expected one of" in r.output


def test_click_context_of_the_running_command():
    """core.errors gives the context of the click that typer runs on (the click package's is None under a
    typer that vendors click): what cli.options needs to tell the options a user typed."""
    import typer
    from typer.testing import CliRunner

    from songkit.core.errors import ParameterSource, get_current_context

    seen = {}
    probe = typer.Typer()

    @probe.command()
    def go(epochs: int = 1, seed: int = 0):
        ctx = get_current_context(silent=True)
        seen.update({n: ctx.get_parameter_source(n) for n in ("epochs", "seed")})

    assert CliRunner().invoke(probe, ["--epochs", "3"]).exit_code == 0
    assert seen == {"epochs": ParameterSource.COMMANDLINE, "seed": ParameterSource.DEFAULT}


def test_user_error_is_always_one_printable_line():
    """A name read from a damaged file (a config key "\\n", an escape sequence) cannot split the line."""
    from songkit.core.errors import UserError

    assert UserError("x.ckpt: config.\n: unknown field\n").format_message() == "x.ckpt: config.\\n: unknown field"
    assert UserError("a.lab: label C:\x1b[31mmaj").format_message() == "a.lab: label C:\\x1b[31mmaj"
    assert UserError("écoute: ok").format_message() == "écoute: ok"


def test_every_library_the_code_imports_is_declared():
    """A plain `pip install .` must bring what src/ imports (issue 15: scipy was used but not declared)."""
    import ast
    import re
    import sys
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~ \[;]", d)[0].lower() for d in
                [*project["dependencies"], *project["optional-dependencies"].get("soundfont", [])]}
    distribution = {"PIL": "pillow", "fluidsynth": "pyfluidsynth"}  # import name -> package name
    # core/errors.py imports click only under an old typer, which depends on click itself
    provided = {"src/songkit/core/errors.py": {"click"}}
    missing = []
    for path in sorted((root / "src" / "songkit").rglob("*.py")):
        rel = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "songkit" or top in provided.get(rel, set()):
                    continue
                if distribution.get(top, top).lower() not in declared:
                    missing.append(f"{rel}: {top}")
    assert not missing, missing


def test_help_pages_name_values_not_python_types_and_every_option_has_help():
    """`--batch-size N`, `INPUT...`: never `<int range>`, `<list[Path]>` or `{INPUT...}...`; no option without help."""
    from typer.testing import CliRunner

    from songkit.cli import _command, app

    def walk(cmd, path):
        subs = getattr(cmd, "commands", {})
        if not subs:
            out = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"}).output
            types = r"<(int|float|str|bool|path|list\[\w+\]|[a-z]+ range)>"
            assert "Usage" in out and not re.search(types, out) and "{" not in out.splitlines()[0], (path, out)
            for p in cmd.params:
                if p.name != "help" and not p.hidden and getattr(p, "param_type_name", "") == "option":
                    assert (p.help or "").strip(), (path, p.name)
        for name, sub in subs.items():
            walk(sub, [*path, name])

    walk(_command(), [])
