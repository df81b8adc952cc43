"""Config fields that carry their allowed range, and the on-policy hyperparameters every text algorithm shares.

A field declared with :func:`ranged` is checked when its dataclass is created (type and range, the
field named in the error), and the same metadata checks an algorithm's constructor arguments
(:func:`check_algo_args`), so ``PPO(n_steps=0)`` and ``ppo: {n_steps: 0}`` in a YAML file fail alike.
Each algorithm's config lives beside it (``agents.ppo.PPOConfig``, ``agents.a2c.A2CConfig``, ...).
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from textgym.argtypes import INT_MAX
from textgym.fieldtypes import check_field_types, type_problem


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric field: ``low``/``high`` (None: unbounded), each closed unless ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def text(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"

    def check(self, name: str, value: Any, integer: bool = False, owner: str = "") -> None:
        """Raise ValueError naming ``name`` unless ``value`` is a finite number in range (a whole one if ``integer``)."""
        prefix, kind = (f"{owner}: " if owner else ""), ("an integer" if integer else "a finite number")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{prefix}{name} must be {kind} {self.text()}, got {value!r}")
        if integer and not isinstance(value, int):
            raise ValueError(f"{prefix}{name} must be {kind} {self.text()}, got {value!r} (a fractional number)")
        if integer and abs(value) > INT_MAX:
            raise ValueError(f"{prefix}{name} must be {kind} {self.text()} that fits int64, got {value!r}")
        low_bad = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        high_bad = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if low_bad or high_bad:
            raise ValueError(f"{prefix}{name} must be {self.text()}, got {value!r}")


def ranged(default: Any = MISSING, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False) -> Any:
    """A dataclass field whose value must lie in ``[low, high]`` (ends open where asked); None passes when typed so."""
    return field(default=default, metadata={"range": Range(low, high, low_open, high_open)})


def chosen(default: str, choices: tuple[str, ...]) -> Any:
    """A dataclass field whose value must be one of ``choices``."""
    return field(default=default, metadata={"choices": choices})


def _is_integer_field(hint: Any) -> bool:
    """``int`` or ``int | None``: whole numbers only."""
    options = typing.get_args(hint) or (hint,)
    return int in options and float not in options


def check_ranges(obj: Any, owner: str = "", values: dict[str, Any] | None = None) -> None:
    """Raise ValueError naming the first :func:`ranged` field of dataclass ``obj`` with a bad value.

    Args:
        obj: A dataclass instance, or the class when ``values`` are given.
        owner: Prefix for the message (e.g. the algorithm's name).
        values: Check these values (by field name) instead of ``obj``'s attributes; absent names,
            None and callables (SB3 schedules) are skipped.

    >>> from agents.ppo import PPOConfig
    >>> check_ranges(PPOConfig, values={"n_steps": 0})
    Traceback (most recent call last):
    ...
    ValueError: n_steps must be >= 1, got 0
    """
    cls = obj if isinstance(obj, type) else type(obj)
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        rng, choices = f.metadata.get("range"), f.metadata.get("choices")
        value = (values or {}).get(f.name) if values is not None else getattr(obj, f.name)
        if value is None or callable(value) or (values is not None and f.name not in values):
            continue
        if choices is not None and value not in choices:
            raise ValueError(f"{f'{owner}: ' if owner else ''}{f.name} must be one of {list(choices)}, got {value!r}")
        if rng is None:  # no range: the annotation's type is the whole check
            problem = type_problem(f.name, value, hints[f.name])
            if problem:
                raise TypeError(f"{owner}: {problem}" if owner else problem)
            continue
        rng.check(f.name, value, _is_integer_field(hints[f.name]), owner)


class Checked:
    """Mixin for config dataclasses: the :func:`ranged` fields are checked on creation."""

    def __post_init__(self) -> None:
        check_field_types(self)  # types from the annotations, then the ranged fields' ranges
        check_ranges(self)


@dataclass
class OnPolicyConfig(Checked):
    """Hyperparameters every on-policy text algorithm shares (SB3's names, plus the KL penalty).

    ``kl_coef`` weighs the per-token penalty ``log pi - log pi_ref`` subtracted from the rewards;
    with ``kl_target`` set, ``kl_coef`` adapts so the per-episode KL tracks it. ``fluency_coef`` adds that
    many times each output's mean log-likelihood under the reference to its reward (fast path only).
    """

    learning_rate: float = ranged(1e-5, 0)  # 0 is allowed, as in SB3: the weights stay (evaluation, tests)
    n_steps: int = ranged(8, 1)
    gamma: float = ranged(1.0, 0, 1)
    gae_lambda: float = ranged(0.95, 0, 1)
    ent_coef: float = ranged(0.0, 0)
    vf_coef: float = ranged(0.1, 0)  # the value loss also trains the shared trunk: 0.5 let it swamp the policy gradient
    max_grad_norm: float = ranged(0.5, 0, low_open=True)
    kl_coef: float = ranged(0.05, 0)
    kl_target: float | None = ranged(None, 0, low_open=True)
    fluency_coef: float = ranged(0.0, 0)


# ``textgym train --algo`` choices: the RL algorithms of ``agents.ALGORITHMS`` (kept here, where importing is
# cheap, for the CLI's parser; a test checks the two agree) and supervised fine-tuning.
ALGOS = ("ppo", "a2c", "rloo", "grpo", "nlpo", "sft")

# Config fields that are not SB3 constructor arguments: the text algorithm's own.
TEXT_ARGS = ("kl_coef", "kl_target", "fluency_coef", "group_size", "baseline")

# What PPO and A2C subtract from a return to make an advantage: the value head's estimate (GAE), or the
# mean return of the other completions of the same prompt (needs ``group_size >= 2``; no critic is run).
BASELINES = ("critic", "group_mean")


def check_algo_args(algo: Any) -> None:
    """Check an algorithm's hyperparameters against the ranges of its config class's fields.

    Used by every text algorithm at set-up, so ``A2C(n_steps=0)`` or ``PPO(n_steps=8.5)`` fails at once.
    """
    values = {f.name: getattr(algo, f.name, None) for f in fields(algo.config_class) if f.name not in TEXT_ARGS}
    check_ranges(algo.config_class, type(algo).__name__, values)


def check_algo_kwargs(cls: type, owner: str, kwargs: dict[str, Any]) -> None:
    """Check constructor keywords named like ``cls``'s fields before SB3 sees them (its own asserts compare with
    ``>`` and fail on a string with a raw TypeError); the message names the keyword as given."""
    names = {f.name for f in fields(cls)} - set(TEXT_ARGS)
    check_ranges(cls, owner, {k: v for k, v in kwargs.items() if k in names})


def check_text_args(cls: type, owner: str, **values: Any) -> None:
    """Check the text arguments (``kl_coef``, ``kl_target``) against ``cls``'s field ranges, before they are used."""
    check_ranges(cls, owner, values)
