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

    def __init__(self, message: str) -> None:
        super().__init__(one_line(_from_worker(str(message))))

    def show(self, file=None) -> None:  # noqa: D102 - click API
        print(f"songkit: error: {self.format_message()}", file=file or sys.stderr)


def _from_worker(message: str) -> str:
    """A UserError raised in a DataLoader worker comes back as "Caught UserError in DataLoader worker
    process N. Original Traceback ...": keep only the original message (its traceback's last line)."""
    if not (message.startswith("Caught ") and "Original Traceback" in message):
        return message
    last = [line for line in message.strip().splitlines() if line.strip()][-1]
    prefix = "UserError: "
    return last.split(prefix, 1)[1] if prefix in last else last


def one_line(text: str) -> str:
    """``text`` as one printable line: newlines and other control characters (which a damaged file can put
    into a name the message quotes) are shown escaped, so the message never spans lines or drives the terminal."""
    text = str(text).strip()
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ("\\n" if ch == "\n" else repr(ch)[1:-1]) for ch in text)
