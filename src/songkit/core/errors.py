"""User errors: one clear line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import sys

try:  # typer >= 0.2x vendors its own click: its handler catches only that ClickException
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer over the click package
    from click import ClickException


class UserError(ClickException):
    """A mistake in the user's input (a file, an option, a checkpoint), not a bug.

    The message should name the file and the problem: ``f"{path}: not a WAV file"``.
    Raised inside a command, Click prints ``songkit: error: <message>`` and exits with 2.
    """

    exit_code = 2

    def show(self, file=None) -> None:  # noqa: D102 - click API
        print(f"songkit: error: {self.format_message()}", file=file or sys.stderr)
