"""The songkit command line: one Typer app, thin commands over the task packages.

`songkit TASK ...` runs a model, `songkit train TASK` trains it, `songkit eval TASK`
measures it, `songkit data TASK` builds a dataset in its real layout, `songkit models`
lists every task's models. Each task's commands live in `songkit/cli/<task>.py`;
torch is imported only inside commands.

Exit status, the same for every command: 0 done (also when the reader of stdout closes
the pipe early, `songkit ... | head`), 1 an internal error (one line; SONGKIT_DEBUG=1 shows
the traceback), 2 a user error (one line naming the file or option), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import errno
import importlib
import inspect
import os
import sys
from typing import Annotated, Optional

import typer

from songkit import __version__
from songkit.core.progress import set_quiet
from songkit.tasks import TASKS


def _plain_metavars() -> None:
    """Help pages name values the way Unix help does (``--batch-size N``, ``INPUT...``), not with
    typer 0.29's Python types (``<int range>``, ``{INPUT...}... <list[Path]>``)."""
    from typer import core

    def option_value(self, ctx):  # an option's value placeholder: its metavar, else its name
        if self.metavar is not None:
            return self.metavar
        if self.is_flag or self.count:
            return None
        return self.name.upper()

    def argument_usage(self) -> str:
        name = self.display_name_raw
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        return name if self.required else f"[{name}]"

    core.TyperOption.display_type_rich = option_value
    core.TyperArgument.display_type_rich = lambda self, ctx: None
    core.TyperArgument._usage_display_name = argument_usage


_plain_metavars()

app = typer.Typer(
    name="songkit",
    help="Classic music machine-learning models: train, run and measure them from one CLI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,  # user errors as one plain line (UserError.show), not a rich box that cuts long paths
)
train_app = typer.Typer(help="Train the model behind a task: songkit train TASK.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure a task's checkpoint on a dataset: songkit eval TASK.", no_args_is_help=True)
data_app = typer.Typer(help="Build a dataset in its real layout: songkit data TASK.", no_args_is_help=True)

QUIET = ("-q", "--quiet")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"songkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: Annotated[bool, typer.Option(*QUIET[::-1], help="No progress bars or log lines on stderr (also after "
                                        "the command: songkit train TASK ... -q).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Classic music machine-learning models: train, run and measure them from one CLI."""
    set_quiet(quiet)


def models(
    task: Annotated[Optional[str], typer.Argument(metavar="[TASK]", help=f"One of {', '.join(TASKS)} "
                                                  "(default: every task).", show_default=False)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Write JSON (one object per line) instead of a table.")]
    = False,
) -> None:
    """List each task's models with their parameter counts (default config) and the shipped one."""
    from songkit.cli.output import print_json, print_table
    from songkit.core.errors import UserError

    if task is not None and task not in TASKS:
        raise UserError(f"{task}: unknown task; expected one of {', '.join(TASKS)}")
    rows = [row for t in ([task] if task else TASKS) for row in _model_rows(t)]
    if json_out:
        for row in rows:
            print_json(row)
    else:
        print_table("songkit models", ["task", "model", "parameters", "shipped"],
                    [[r["task"], r["model"], r["parameters"], "shipped" if r["shipped"] else ""] for r in rows])


def _model_rows(task: str) -> list[dict]:
    """One dict per model of ``task``: name, parameters of its default config, whether it is the shipped one."""
    import warnings

    import torch

    from songkit.core.checkpoint import default_checkpoint, load_checkpoint
    from songkit.core.errors import UserError

    registry = importlib.import_module(f"songkit.tasks.{task}.model").MODELS
    try:
        shipped = load_checkpoint(default_checkpoint(task), task=task).model
    except UserError:  # an install without the task's weights
        shipped = None
    rows = []
    for name, (cfg_cls, module_cls) in registry.items():
        try:
            with torch.device("meta"), warnings.catch_warnings():  # counts without allocating the weights
                warnings.simplefilter("ignore")
                model = module_cls(cfg_cls())
        except Exception:  # a module that computes buffers while built: build it for real
            model = module_cls(cfg_cls())
        rows.append({"task": task, "model": name, "parameters": sum(p.numel() for p in model.parameters()),
                     "shipped": name == shipped})
    return rows


app.command("models")(models)
for _task in TASKS:
    importlib.import_module(f"songkit.cli.{_task}").register(app, train_app, eval_app, data_app)

app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
if data_app.registered_commands:
    app.add_typer(data_app, name="data")


def _first_sentence(doc: str | None) -> str | None:
    """The first sentence of a docstring's first paragraph, whole (click cuts at 45 characters with "...")."""
    if not doc:
        return None
    paragraph = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    depth = 0
    for i, ch in enumerate(paragraph):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "." and depth == 0 and (i + 1 == len(paragraph) or paragraph[i + 1] == " "):
            return paragraph[: i + 1]
    return paragraph


for _typer in (app, train_app, eval_app, data_app):
    for _info in _typer.registered_commands:
        if _info.short_help is None:
            _info.short_help = _first_sentence(_info.help or inspect.getdoc(_info.callback))


# ----------------------------------------------------------------------------- entry point
def _command():
    return typer.main.get_command(app)


def hoist_quiet(args: list[str], command=None) -> list[str]:
    """Move ``-q``/``--quiet`` written after a subcommand to the front, where the app's option lives
    (``songkit train instrument ... -q``). Values of options that take one (``--prime -q``) and
    everything after ``--`` stay where they are."""
    command = command or _command()
    out, quiet, cmd, i = [], False, command, 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in QUIET:
            quiet = True
            i += 1
            continue
        takes_value = {o for p in getattr(cmd, "params", []) if p.param_type_name == "option"
                       and not getattr(p, "is_flag", False) and not getattr(p, "count", False) for o in p.opts}
        if arg in takes_value:
            out.extend(args[i:i + 2])
            i += 2
            continue
        sub = getattr(cmd, "commands", {}).get(arg) if not arg.startswith("-") else None
        cmd = sub or cmd
        out.append(arg)
        i += 1
    return (["--quiet"] if quiet else []) + out


def _pipe_closed(e: BaseException | None) -> bool:
    """A BrokenPipeError (EPIPE) anywhere in the exception's chain (rich and click re-raise their own)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE):
            return True
        e = e.__cause__ or e.__context__
    return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def run(args: list[str] | None = None) -> int:
    """Run the command line on ``args`` (default ``sys.argv[1:]``); returns the exit status (see the module)."""
    from typer._click.exceptions import ClickException
    from typer.exceptions import Abort, Exit

    args = list(sys.argv[1:] if args is None else args)
    try:
        command = _command()
        with command.make_context("songkit", hoist_quiet(args, command)) as ctx:
            command.invoke(ctx)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's own flush at exit
        return 0
    except Exit as e:
        code = e.exit_code
    except ClickException as e:  # UserError and usage errors: one line, exit 2
        e.show()
        code = e.exit_code
    except KeyboardInterrupt as e:
        message = str(e).strip() or "interrupted"
        print(f"songkit: {message}", file=sys.stderr)
        return 130
    except SystemExit as e:  # rich's Console exits 1 on a closed pipe (its BrokenPipeError is the context)
        if _pipe_closed(e):
            _silence_stdout()
            return 0
        raise
    except (Abort, EOFError):
        print("songkit: aborted", file=sys.stderr)
        return 1
    except Exception as e:
        if _pipe_closed(e):
            _silence_stdout()
            return 0
        if os.environ.get("SONGKIT_DEBUG", "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"songkit: internal error: {type(e).__name__}: {first} "
              "(please report; SONGKIT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError) as e:
        if not _pipe_closed(e):
            raise
        _silence_stdout()
    return code


def main() -> None:
    """Console entry point (``songkit``, ``python -m songkit``)."""
    sys.exit(run())
