"""The reward protocol shared by metric and learned rewards."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable


@runtime_checkable
class RewardFn(Protocol):
    """A pure, batched text reward.

    Called with equally long sequences of prompts, generations and reference lists; returns one
    float per item. Implementations must not keep state between calls that changes results.
    """

    name: str

    def __call__(
        self,
        prompts: Sequence[str],
        generations: Sequence[str],
        references: Sequence[Sequence[str]],
    ) -> list[float]: ...


def check_scores(name: str, scores: object, n: int) -> list[float]:
    """Validate what a reward returned for ``n`` texts: exactly ``n`` finite real numbers.

    Args:
        name: The reward's name (for the message).
        scores: The reward's return value.
        n: The number of texts it was given.

    Returns:
        The scores as Python floats.

    Raises:
        TypeError: Not a sequence (list, tuple, 1-D array) of real numbers.
        ValueError: Not exactly one score per text.
        FloatingPointError: A score is NaN or infinite.

    Example:
        >>> check_scores("bleu", [0.5, 1], 2)
        [0.5, 1.0]
        >>> check_scores("mine", [1.0, 2.0], 1)
        Traceback (most recent call last):
        ...
        ValueError: reward 'mine' returned 2 scores for 1 text(s); it must return exactly one float per text
    """
    import math
    import numbers

    shape = getattr(scores, "shape", None)
    if isinstance(scores, (str, bytes, dict)) or not hasattr(scores, "__len__") or (shape is not None and len(shape) != 1):
        raise TypeError(f"reward {name!r} must return a list of {n} float(s), one per text; got "
                        f"{type(scores).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else ""))
    values = list(scores)  # type: ignore[arg-type]
    if len(values) != n:
        raise ValueError(f"reward {name!r} returned {len(values)} scores for {n} text(s); it must return "
                         "exactly one float per text")
    out = []
    for i, value in enumerate(values):
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()  # NumPy and torch scalars
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"reward {name!r} returned {type(value).__name__} {str(value)[:40]!r} at position {i}; "
                            "scores must be real numbers")
        value = float(value)
        if not math.isfinite(value):
            raise FloatingPointError(f"reward {name!r} returned {value} at position {i}; scores must be finite")
        out.append(value)
    return out
