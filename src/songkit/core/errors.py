"""User errors: one clear line on stderr and exit status 2, never a traceback.

Also the one place that knows where click lives: typer >= 0.2x vendors its own copy
(``typer._click``), older typer runs on the click package. Code that needs click's context or
parameter sources imports them from here, so it works with either (the click package's
``get_current_context`` returns None under a vendoring typer).
"""

from __future__ import annotations

import sys

try:  # typer >= 0.2x vendors its own click: its handler catches only that ClickException
    from typer._click.core import ParameterSource
    from typer._click.exceptions import ClickException
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older typer over the click package
    from click import ClickException, get_current_context
    from click.core import ParameterSource

__all__ = ["ClickException", "ParameterSource", "UserError", "get_current_context"]


class UserError(ClickException):
    """A mistake in the user's input (a file, an option, a checkpoint), not a bug.

    The message should name the file and the problem: ``f"{path}: not a WAV file"``.
    Raised inside a command, Click prints ``songkit: error: <message>`` and exits with 2.
    """

    exit_code = 2

    def show(self, file=None) -> None:  # noqa: D102 - click API
        print(f"songkit: error: {self.format_message()}", file=file or sys.stderr)
