"""The reward protocol shared by metric and learned rewards."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Protocol, Sequence, runtime_checkable


@runtime_checkable
class RewardFn(Protocol):
    """A pure, batched text reward.

    Called with equally long sequences of prompts, generations and reference lists; returns one
    float per item. Implementations must not keep state between calls that changes results.

    The envs pass each item's references as a :class:`References` list, whose ``fields`` hold the
    sample's labels; a reward that needs one names it in a ``sample_fields`` tuple attribute, and an
    env whose samples lack it drops those samples (or refuses a task that has none).
    """

    name: str

    def __call__(
        self,
        prompts: Sequence[str],
        generations: Sequence[str],
        references: Sequence[Sequence[str]],
    ) -> list[float]: ...


class References(list):
    """The reference strings of one item, with the sample's labelled fields (``fields``).

    A plain list to every reward that reads only the texts; a reward that needs a label of the
    reference, such as DailyDialog's dialogue act, reads it from ``fields`` (a copy of the sample's
    ``meta``). The envs hand each item's references to rewards in this form, so that the
    ``(prompts, generations, references)`` signature stays the same for every reward.

    Args:
        texts: The reference strings.
        fields: The sample's fields (``{"act": 2, "emotion": 0, ...}``).

    Example:
        >>> refs = References(["Why not? See."], {"act": 1})
        >>> refs == ["Why not? See."], refs.fields["act"]
        (True, 1)
    """

    def __init__(self, texts: Iterable[str] = (), fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(texts)
        self.fields: dict[str, Any] = dict(fields or {})

    def __repr__(self) -> str:
        return f"References({list(self)!r}, {self.fields!r})"


def sample_fields_needed(reward: object) -> set[str]:
    """The sample fields a reward (or any component of a weighted mix) reads from ``References.fields``.

    A reward declares them in a ``sample_fields`` attribute (a tuple of names); most need none.

    Example:
        >>> sample_fields_needed(lambda p, g, r: [0.0] * len(g))
        set()
    """
    parts = getattr(reward, "components", {"": reward}).values()
    return {name for part in parts for name in getattr(part, "sample_fields", ())}


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
