"""Split names with slices, as in Hugging Face ``datasets``: ``"train[:10%]"``, ``"validation[:700]"``.

A split spec is a split name, optionally followed by one slice in square brackets. Bounds are item
counts (``[100:200]``, negative ones count from the end: ``[-200:]``) or whole percentages of the
split (``[90%:]``, ``[:10%]``); either bound may be left out. Percent bounds are rounded to the
nearest item (halves up), and the same rule applies to both ends, so ``"train[:90%]"`` and
``"train[90%:]"`` are always disjoint and together cover the split. A slice keeps file order: it is
deterministic, and the same spec always names the same items.

Examples:
    >>> parse_split("train[90%:]")
    SplitSpec(name='train', start='90%', stop=None)
    >>> parse_split("validation").slice(818)
    slice(0, 818, None)
    >>> parse_split("validation[:700]").slice(818), parse_split("validation[700:]").slice(818)
    (slice(0, 700, None), slice(700, 818, None))
    >>> parse_split("train[:10%]").slice(3995), parse_split("train[-100:]").slice(3995)
    (slice(0, 400, None), slice(3895, 3995, None))
    >>> parse_split("train[:5%%]")
    Traceback (most recent call last):
    ...
    ValueError: malformed split 'train[:5%%]': expected NAME or NAME[START:STOP] with START and STOP \
each empty, an integer (e.g. 700, -100) or a whole percentage from 0% to 100% (e.g. 90%); \
examples: 'train', 'validation[:700]', 'train[90%:]', 'train[:10%]'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence, TypeVar

__all__ = ["SplitSpec", "parse_split", "slice_items"]

T = TypeVar("T")
_SPEC = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<start>[^:\]]*):(?P<stop>[^:\]]*)\])?$")
_BOUND = re.compile(r"^(?:-?\d+|\d+%)$")
_EXAMPLES = "'train', 'validation[:700]', 'train[90%:]', 'train[:10%]'"


@dataclass(frozen=True)
class SplitSpec:
    """A parsed split spec: the split's name and the optional slice bounds as written.

    Attributes:
        name: The split (``"train"``, ``"validation"``, ...).
        start: ``None`` (from the first item), ``"700"``, ``"-100"`` or ``"90%"``.
        stop: ``None`` (to the end) or a bound like ``start``.
    """

    name: str
    start: str | None = None
    stop: str | None = None

    @property
    def is_sliced(self) -> bool:
        """Whether the spec selects part of the split."""
        return self.start is not None or self.stop is not None

    def slice(self, size: int) -> slice:
        """The Python slice (non-negative bounds) that this spec selects from ``size`` items."""
        start = 0 if self.start is None else _resolve(self.start, size)
        stop = size if self.stop is None else _resolve(self.stop, size)
        return slice(start, max(start, stop))

    def __str__(self) -> str:
        if not self.is_sliced:
            return self.name
        return f"{self.name}[{self.start or ''}:{self.stop or ''}]"


def _resolve(bound: str, size: int) -> int:
    """One bound as an index in ``[0, size]``."""
    if bound.endswith("%"):
        return (int(bound[:-1]) * size * 2 + 100) // 200  # round(pct * size / 100), halves up, exact
    index = int(bound)
    if index < 0:
        index += size
    return min(max(index, 0), size)


def parse_split(spec: str) -> SplitSpec:
    """Parse ``"name"`` or ``"name[start:stop]"`` (see the module docstring for the bounds).

    Args:
        spec: The split spec.

    Returns:
        The parsed spec (not yet checked against a data set's splits).

    Raises:
        ValueError: The spec is malformed, or a percentage is above 100.
        TypeError: The spec is not a string.
    """
    if not isinstance(spec, str):
        raise TypeError(f"split must be a string such as {_EXAMPLES}, got {type(spec).__name__} {spec!r}")
    match = _SPEC.match(spec.strip())
    bounds = [match[k] for k in ("start", "stop")] if match else []
    if match is None or any(b and not _BOUND.match(b.strip()) for b in bounds):
        raise ValueError(
            f"malformed split {spec!r}: expected NAME or NAME[START:STOP] with START and STOP each empty, an "
            f"integer (e.g. 700, -100) or a whole percentage from 0% to 100% (e.g. 90%); examples: {_EXAMPLES}"
        )
    start, stop = ((b.strip() or None) if b is not None else None for b in bounds)
    for bound in (start, stop):
        if bound is not None and bound.endswith("%") and int(bound[:-1]) > 100:
            raise ValueError(f"malformed split {spec!r}: percentage {bound} is above 100%; examples: {_EXAMPLES}")
    return SplitSpec(match["name"], start, stop)


def slice_items(items: Sequence[T], spec: SplitSpec) -> list[T]:
    """The items ``spec`` selects, in their order.

    Example:
        >>> slice_items(list("abcdefghij"), parse_split("x[20%:-3]"))
        ['c', 'd', 'e', 'f', 'g']
    """
    return list(items[spec.slice(len(items))])
