"""Model configs read back from checkpoints: each field checked against its dataclass annotation.

A checkpoint is user input: a config value of the wrong type or range must be one line naming the
field, never a traceback from deep inside a module's constructor.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from songkit.core.errors import UserError

_MAX_INT = 2**62  # config integers beyond this are damage (and overflow C code)


def build_config(cfg_cls: type, config: Any, source: Any, where: str = "config") -> Any:
    """The config dataclass ``cfg_cls`` from a checkpoint's ``config`` dict, validated field by field.

    Each value must fit its annotation (int, float, bool, str, Optional, Literal, list/tuple/dict of
    those, or a nested config dataclass given as a dict); an int is accepted for a float field and a
    list for a tuple field. Unknown keys are refused, missing fields take their defaults, and the
    dataclass's optional ``check()`` (ValueError "field: problem") runs last. Every failure is one
    ``UserError`` line ``"{source}: config.FIELD: problem"``.
    """
    import typing

    if not isinstance(config, dict):
        raise UserError(f"{source}: {where}: a {type(config).__name__}, expected a dict of fields")
    try:
        hints = typing.get_type_hints(cfg_cls)
    except Exception:  # unresolvable annotations: check the names only
        hints = {}
    fields_ = {f.name: f for f in dataclasses.fields(cfg_cls) if f.init}
    for key in config:
        if key not in fields_:
            name = str(key)[:60]
            raise UserError(f"{source}: {where}.{name}: unknown field (model config {cfg_cls.__name__} has "
                            f"{', '.join(fields_)})")
    values = {}
    for name, f in fields_.items():
        if name not in config:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"{source}: {where}.{name}: missing")
            continue
        try:
            values[name] = _fit_type(config[name], hints.get(name, Any), source, f"{where}.{name}")
        except ValueError as e:
            raise UserError(f"{source}: {e}") from None
    try:
        cfg = cfg_cls(**values)
        check = getattr(cfg, "check", None)
        if callable(check):
            check()
    except UserError:
        raise
    except (ValueError, TypeError, AssertionError, OverflowError, ZeroDivisionError) as e:
        raise UserError(f"{source}: {where}.{first_line(e)}" if _names_field(e, fields_)
                        else f"{source}: {where}: {first_line(e)}") from None
    return cfg


def _names_field(e: BaseException, fields_: dict) -> bool:
    """Does the message start with "field: ..." (the convention of ``check()``)?"""
    head = str(e).split(":", 1)[0].strip()
    return head.split(".")[0].split("[")[0] in fields_


def _fit_type(value: Any, tp: Any, source: Any, where: str) -> Any:
    """``value`` converted to annotation ``tp`` (ValueError "problem" when it does not fit)."""
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        check_plain(value, where)
        return value
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ValueError(f"{where}: None, expected a value")
        problems = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _fit_type(value, arg, source, where)
            except ValueError as e:
                problems.append(str(e))
        raise ValueError(problems[0] if len(problems) == 1 else f"{_show(value)} fits none of {tp}")
    if origin is typing.Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise ValueError(f"{where}: {_show(value)}, expected one of {', '.join(map(repr, args))}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return value if isinstance(value, tp) else build_config(tp, value, source, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where}: {_show(value)}, expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > _MAX_INT:
                raise ValueError(f"{where}: {_show(value)} is out of range")
            return value
        raise ValueError(f"{where}: {_show(value)}, expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or abs(value) > 1e300:
                raise ValueError(f"{where}: {_show(value)}, expected a finite number")
            return float(value)
        raise ValueError(f"{where}: {_show(value)}, expected a number")
    if tp is str:
        if isinstance(value, str) and len(value) <= 10_000:
            return value
        raise ValueError(f"{where}: {_show(value)}, expected a string")
    if tp in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: {_show(value)}, expected a list")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ValueError(f"{where}: {len(value)} values, expected {len(args)}")
            items = [_fit_type(v, a, source, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))]
        else:
            arg = args[0] if args else Any
            items = [_fit_type(v, arg, source, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (tp is tuple or origin is tuple) else items
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: {_show(value)}, expected a dict")
        key_t, val_t = args if len(args) == 2 else (Any, Any)
        return {_fit_type(k, key_t, source, where): _fit_type(v, val_t, source, f"{where}.{k}")
                for k, v in value.items()}
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ValueError(f"{where}: {_show(value)}, expected {tp.__name__}")
    return value


def _show(value: Any) -> str:
    """A short picture of a damaged value for a one-line message."""
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{text} ({type(value).__name__})" if not isinstance(value, (str, int, float)) else text


def check_plain(value: Any, where: str, depth: int = 0) -> None:
    """``value`` is plain data (str, number, bool, None, lists and str-keyed dicts of them), not too deep."""
    if depth > 20:
        raise ValueError(f"{where}: nested too deeply")
    if value is None or isinstance(value, (str, int, float, bool)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_plain(v, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"{where}: a key of type {type(k).__name__}")
            check_plain(v, f"{where}.{k}", depth + 1)
        return
    raise ValueError(f"{where}: a {type(value).__name__}, expected plain values")


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:120]
