"""Results on stdout in one style for every command: aligned plain-text tables, or one JSON line.

Tables are plain text on purpose: no boxes, no colour, no wrapping at the terminal's width, so a
row is one line also in a pipe (`songkit instrument DIR | grep brass` keeps working on long paths).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import IO, Any


def format_cell(value: Any) -> str:
    """One cell as text: None -> "", NaN -> "-", floats with 3 decimals (large ones with 4 digits and an
    exponent), ints with thousands separated, text on one line (tabs and newlines become spaces)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            value = value.item()  # numpy / torch scalars
        except (ValueError, RuntimeError):
            pass
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return f"{value:.3f}" if abs(value) < 1e6 else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return " ".join(str(value).split()) if any(c in str(value) for c in "\t\n\r") else str(value)


def _numeric(text: str) -> bool:
    t = text.replace(",", "").rstrip("%").strip()
    if t in ("", "-"):
        return True
    try:
        float(t)
    except ValueError:
        return False
    return True


def table_lines(title: str | None, columns: list[str], rows: list[list]) -> list[str]:
    """The lines :func:`print_table` writes: the title, the header, one line per row. Columns are as wide
    as their widest cell and two spaces apart; a column of numbers is right-aligned, text left-aligned."""
    header = [format_cell(c) for c in columns]
    cells = [[format_cell(v) for v in row] + [""] * (len(header) - len(row)) for row in rows]
    if any(len(r) > len(header) for r in cells):
        raise ValueError("a row has more cells than there are columns")
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    right = [bool(cells) and all(_numeric(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(v.rjust(w) if ra else v.ljust(w) for v, w, ra in zip(r, widths, right, strict=True)).rstrip()

    return ([title] if title else []) + [line(header)] + [line(r) for r in cells]


def print_table(title: str | None, columns: list[str], rows: list[list], file: IO[str] | None = None) -> None:
    """Write a table to stdout (or ``file``): the one table style of every ``eval`` and per-file result.

    ``rows`` hold plain values (str, int, float, None, numpy/torch scalars); see :func:`format_cell`.
    A reader that closes the pipe is handled by ``songkit.cli.main`` (exit 0).
    """
    out = file or sys.stdout
    out.write("\n".join(table_lines(title, columns, rows)) + "\n")
    out.flush()


def _plain(obj: Any) -> Any:
    """JSON-able values: NaN and infinities become null (JSON has neither), paths strings, arrays lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, tensors
        return _plain(obj.tolist())
    return str(obj)


def print_json(obj: Any, file: IO[str] | None = None) -> None:
    """Write ``obj`` as one JSON line to stdout (or ``file``); NaN/inf become null."""
    out = file or sys.stdout
    out.write(json.dumps(_plain(obj), ensure_ascii=False, allow_nan=False) + "\n")
    out.flush()
