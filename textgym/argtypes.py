"""Checked ``type=`` functions for command-line options: every number has a range and is finite.

argparse turns the ``ValueError`` of these into one ``error:`` line naming the option, the value
and what is allowed.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

__all__ = ["INT_MAX", "int_in", "float_in", "port"]

INT_MAX = 2**63 - 1  # the largest whole number a tensor (int64) holds


def int_in(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]`` (``None``: unbounded).

    >>> int_in(1)("3")
    3
    >>> int_in(1)("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an integer >= 1, got '0'
    """
    allowed = (f"in [{low}, {high}]" if low is not None and high is not None else
               f">= {low}" if low is not None else f"<= {high}" if high is not None else "")

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            value = None
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {allowed}, got {text!r}".replace("  ", " "))
        if abs(value) > INT_MAX:  # torch and numpy hold int64: a bigger number would overflow deep inside
            raise argparse.ArgumentTypeError(f"must be an integer {allowed} that fits int64, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


def float_in(low: float | None = None, high: float | None = None, *, low_open: bool = False,
             high_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float in the given range (``1e-5`` style accepted).

    >>> float_in(0, low_open=True)("1e-5")
    1e-05
    >>> float_in(0, low_open=True)("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a finite number > 0, got 'nan'
    """
    if high is None:
        allowed = f"{'>' if low_open else '>='} {low}" if low is not None else ""
    else:
        allowed = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        bad = not math.isfinite(value)
        if not bad and low is not None:
            bad = value <= low if low_open else value < low
        if not bad and high is not None:
            bad = value >= high if high_open else value > high
        if bad:
            raise argparse.ArgumentTypeError(f"must be a finite number {allowed}, got {text!r}".replace("  ", " "))
        return value

    parse.__name__ = "float"
    return parse


port = int_in(0, 65535)
port.__doc__ = "An argparse type: a TCP port, 0..65535 (0: a free one)."
