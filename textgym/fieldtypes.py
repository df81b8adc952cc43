"""Type checks derived from dataclass field hints: one mechanism for every config dataclass.

A config dataclass calls :func:`check_field_types` in ``__post_init__``; every field then gets its
type checked against its annotation, so a field added later is covered without a new check:

* ``int`` refuses floats (``8.5`` and ``8.0`` alike), strings and bools;
* ``float`` accepts ints, refuses NaN, inf, strings (``"3e-4"`` is named as a quoted number) and bools;
* ``str``, ``bool`` and ``dict`` take only their own type;
* ``list[X]`` refuses a bare string (Python would iterate it character by character) and checks items;
* ``X | None`` lets ``None`` through; ``Any`` and callables (SB3 schedules) are not checked.

>>> from dataclasses import dataclass
>>> @dataclass
... class C:
...     n: int = 1
...     def __post_init__(self):
...         check_field_types(self)
>>> C(n=2.5)
Traceback (most recent call last):
...
TypeError: n must be an int, got 2.5 (a float)
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import math
import numbers
import types
import typing
from typing import Any, Union

import numpy as np

from textgym.argtypes import INT_MAX

__all__ = ["check_arg_types", "check_call", "check_field_types", "resolved_hints", "type_problem"]


def _name(hint: Any) -> str:
    if hint is type(None):
        return "None"
    if isinstance(hint, type):
        return {"int": "an int", "float": "a finite number", "str": "a string", "bool": "a bool (true/false)",
                "dict": "a mapping", "list": "a list"}.get(hint.__name__, f"a {hint.__name__}")
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_name(h) for h in typing.get_args(hint))
    if origin is collections.abc.Sequence:
        return f"a list of {_name(typing.get_args(hint)[0]).split(' ', 1)[-1]}s"
    if origin is list:
        return f"a list of {_name(typing.get_args(hint)[0]).split(' ', 1)[-1]}s"
    if origin is dict:
        return "a mapping"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    if collections.abc.Callable in (origin, hint):
        return "a callable"
    return str(hint).replace("typing.", "")


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:  # NumPy scalars too (np.float32, np.int64): they are what arrays hand out
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if hint is int:
        return (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
                and abs(int(value)) <= INT_MAX)
    if origin is collections.abc.Callable:  # callbacks, schedules
        return callable(value)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is collections.abc.Sequence:  # any sequence but a bare string (iterated character by character)
        (item,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, collections.abc.Sequence) or isinstance(value, (str, bytes)):
            return False
        return not isinstance(value, (list, tuple)) or all(_fits(v, item) for v in value)  # lazy ones: not iterated
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, collections.abc.Mapping)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a hint this checker does not know: the field's own checks apply


def type_problem(name: str, value: Any, hint: Any) -> str | None:
    """The message for ``value`` in a field ``name`` typed ``hint``, or ``None`` when it fits."""
    if _fits(value, hint):
        return None
    kind = type(value).__name__
    what = f"{value!r} ({'a quoted number' if _numeric_text(value) else ('an ' if kind[0] in 'aeiou' else 'a ') + kind})"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_MAX:
        what = f"{value!r} (beyond int64, the largest whole number a tensor holds)"
    listy = (list, collections.abc.Sequence)
    options = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    if isinstance(value, str) and any(typing.get_origin(h) in listy and typing.get_args(h) in ((), (str,), (Any,))
                                      for h in options):
        what = f"the bare string {value!r} (write a list: [{value}])"
    return f"{name} must be {_name(hint)}, got {what}"


def finite_problem(name: str, value: Any, hint: Any) -> str | None:
    """The message for a NaN or infinite ``value`` where ``hint`` allows a float (no hyperparameter, length or weight
    means them; a value error, not a type error), or ``None``."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    if (float in options and isinstance(value, numbers.Real) and not isinstance(value, bool)
            and not math.isfinite(value)):
        return f"{name} must be a finite number, got {value!r}"
    return None


def _numeric_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def check_field_types(obj: Any, owner: str = "") -> None:
    """Raise TypeError naming the first field of dataclass ``obj`` whose value does not fit its annotation.

    Args:
        obj: A dataclass instance.
        owner: Prefix for the message (e.g. the section a YAML key sits in).
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if callable(value) and not isinstance(value, type) and not dataclasses.is_dataclass(value):
            continue  # SB3 schedules (learning_rate=lambda progress: ...)
        problem = type_problem(f.name, value, hints.get(f.name, Any))
        if problem:
            raise TypeError(f"{owner}: {problem}" if owner else problem)
        problem = None if "range" in f.metadata else finite_problem(f.name, value, hints.get(f.name, Any))
        if problem:  # (a ranged field's range check says it, with the range)
            raise ValueError(f"{owner}: {problem}" if owner else problem)


def check_arg_types(fn: Any, values: dict[str, Any], owner: str = "",
                    at_least: dict[str, float] | None = None) -> None:
    """Raise TypeError naming the first argument of ``fn`` (by its annotations) whose value does not fit.

    Call it first in a public constructor or function as ``check_arg_types(Cls.__init__, locals())``: only
    ``fn``'s own annotated parameters are checked (``self``, ``**kwargs`` and ``Any`` are skipped).
    ``at_least`` gives the least allowed value of numeric arguments (ValueError naming the argument; ``None``
    passes where the annotation allows it).
    """
    fn = getattr(fn, "__func__", fn)  # a bound method: its function's annotations
    hints = resolved_hints(fn)
    prefix = f"{owner}: " if owner else ""
    for name, param in inspect.signature(fn).parameters.items():
        if name == "self" or name not in values or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        problem = type_problem(name, values[name], hints.get(name, Any))
        if problem:
            raise TypeError(prefix + problem)
        problem = finite_problem(name, values[name], hints.get(name, Any))
        if problem:
            raise ValueError(prefix + problem)
    for name, low in (at_least or {}).items():
        value = values.get(name)
        if value is not None and isinstance(value, numbers.Real) and not (math.isfinite(value) and value >= low):
            raise ValueError(f"{prefix}{name} must be >= {low}, got {value!r}")


class _PackageNames(dict):
    """Names for annotations that a module imports only for type checkers (SB3's ``"BaseCallback"``): found in
    the already imported modules of the function's own package."""

    def __init__(self, module: str) -> None:
        super().__init__()
        self.package = module.split(".")[0]

    def __missing__(self, name: str) -> Any:
        import sys

        for module_name, module in list(sys.modules.items()):
            if module_name.split(".")[0] == self.package and isinstance(getattr(module, name, None), type):
                return getattr(module, name)
        raise KeyError(name)


def resolved_hints(fn: Any) -> dict[str, Any]:
    """``fn``'s resolved annotations; one that cannot be resolved counts as ``Any``. Cached per function (a
    constructor checks its arguments on every call); do not modify the returned dict."""
    return _resolved_hints(getattr(fn, "__func__", fn))  # a bound method: its function (not its instance) is the key


@functools.lru_cache(maxsize=None)
def _resolved_hints(fn: Any) -> dict[str, Any]:
    try:  # the plain way first: the package scan below is only for names imported for type checkers
        return typing.get_type_hints(fn)
    except (NameError, TypeError):
        pass
    localns = _PackageNames(getattr(fn, "__module__", "") or "")
    try:
        return typing.get_type_hints(fn, localns=localns)
    except (NameError, TypeError):
        pass
    hints: dict[str, Any] = {}
    for name, hint in getattr(fn, "__annotations__", {}).items():
        try:
            hints[name] = typing.get_type_hints(types.SimpleNamespace(__annotations__={name: hint}),
                                                globalns=getattr(fn, "__globals__", {}), localns=localns)[name]
        except (NameError, TypeError):
            hints[name] = Any
    return hints


def check_call(fn: Any, args: tuple, kwargs: dict[str, Any], owner: str = "",
               at_least: dict[str, float] | None = None) -> dict[str, Any]:
    """Bind ``args``/``kwargs`` to ``fn``'s signature (TypeError naming an unknown or missing argument, as
    Python would), check them as :func:`check_arg_types` does, and return them by name.

    For wrappers that take ``*args, **kwargs`` and pass them on (e.g. an SB3 method): the wrapped
    function's own annotations check the call.
    """
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{owner}: {exc}" if owner else str(exc)) from None
    check_arg_types(fn, bound.arguments, owner, at_least)
    return bound.arguments
