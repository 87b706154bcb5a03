"""The songkit command line: one Typer app, thin commands over the task packages.

`songkit TASK ...` runs a model, `songkit train TASK` trains it, `songkit eval TASK`
measures it, `songkit data TASK` builds a dataset in its real layout. Each task's
commands live in `songkit/cli/<task>.py`; torch is imported only inside commands.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

from songkit import __version__
from songkit.core.progress import set_quiet
from songkit.tasks import TASKS

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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"songkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or log lines on stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Classic music machine-learning models: train, run and measure them from one CLI."""
    set_quiet(quiet)


for _task in TASKS:
    importlib.import_module(f"songkit.cli.{_task}").register(app, train_app, eval_app, data_app)

app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
if data_app.registered_commands:
    app.add_typer(data_app, name="data")


def main() -> None:
    """Console entry point: user errors exit 2 (Click), a closed pipe exits quietly."""
    try:
        app()
    except BrokenPipeError:
        # `songkit ... | head`: stop quietly; point stdout at devnull so the final flush cannot fail
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        print("songkit: interrupted", file=sys.stderr)
        sys.exit(130)
