"""Resolve reward specs (names, ``{name: weight}`` mixes, prefixed specs) into RewardFns.

Specs arrive as ``gym.make`` keyword arguments, so plain JSON values must be enough: a name such
as ``"bleu"``, a mapping such as ``{"bleu": 1.0, "rougeL": 0.5}``, or a prefixed spec such as
``"rm:/path/to/model"`` resolved by a factory registered for the prefix (learned rewards plug in
here without this module knowing them).
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Mapping

from textgym.rewards import overlap, quality
from textgym.rewards.base import RewardFn
from textgym.rewards.combine import WeightedReward, _check_weight

__all__ = [
    "available_reward_prefixes",
    "available_rewards",
    "make_reward",
    "register_reward",
    "register_reward_prefix",
]

_NAMED: dict[str, Callable[[], RewardFn]] = {}
_PREFIXED: dict[str, Callable[[str], RewardFn]] = {}


def register_reward(name: str, factory: Callable[[], RewardFn], *, overwrite: bool = False) -> None:
    """Make ``make_reward(name)`` return ``factory()``.

    Args:
        name: A plain name without ``":"`` (prefixed specs use :func:`register_reward_prefix`).
        factory: Called without arguments at each ``make_reward``; returns a RewardFn.
        overwrite: Replace an existing registration instead of raising.

    Raises:
        ValueError: Bad name, or the name is taken and ``overwrite`` is false.
        TypeError: ``factory`` is not callable.
    """
    if not isinstance(name, str) or not name or ":" in name or name != name.strip():
        raise ValueError(f"reward names must be non-empty strings without ':' or surrounding "
                         f"spaces, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory for {name!r} must be callable, got {type(factory).__name__}")
    if name in _NAMED and not overwrite:
        raise ValueError(f"reward {name!r} is already registered; "
                         "pass overwrite=True to replace it")
    _NAMED[name] = factory


def register_reward_prefix(
    prefix: str, factory: Callable[[str], RewardFn], *, overwrite: bool = False
) -> None:
    """Make ``make_reward(f"{prefix}:{arg}")`` return ``factory(arg)``.

    Args:
        prefix: For example ``"rm"`` or ``"classifier"`` (a trailing ``":"`` is accepted).
        factory: Called with the text after the first ``":"``; returns a RewardFn.
        overwrite: Replace an existing registration instead of raising.

    Raises:
        ValueError: Bad prefix, or the prefix is taken and ``overwrite`` is false.
        TypeError: ``factory`` is not callable.

    Example:
        >>> from textgym.rewards.overlap import RougeReward
        >>> register_reward_prefix("doc-rouge", RougeReward)
        >>> make_reward("doc-rouge:rouge2").name
        'rouge2'
        >>> _ = _PREFIXED.pop("doc-rouge")  # (keep the doctest from leaking a registration)
    """
    if isinstance(prefix, str) and prefix.endswith(":"):
        prefix = prefix[:-1]
    if not isinstance(prefix, str) or not prefix or ":" in prefix or prefix != prefix.strip():
        raise ValueError(f"reward prefixes must be non-empty strings without ':' inside, "
                         f"got {prefix!r}")
    if not callable(factory):
        raise TypeError(f"factory for prefix {prefix!r} must be callable, "
                        f"got {type(factory).__name__}")
    if prefix in _PREFIXED and not overwrite:
        raise ValueError(f"reward prefix {prefix!r} is already registered; "
                         "pass overwrite=True to replace it")
    _PREFIXED[prefix] = factory


def available_rewards() -> list[str]:
    """The registered plain reward names, sorted.

    Example:
        >>> available_rewards()[:4]
        ['bleu', 'chrf', 'dialogue_act', 'dialogue_act_acc']
    """
    return sorted(_NAMED)


def available_reward_prefixes() -> list[str]:
    """The registered spec prefixes, as ``"prefix:"``, sorted."""
    return sorted(f"{p}:" for p in _PREFIXED)


def _allowed() -> str:
    prefixes = ", ".join(f"'{p}<arg>'" for p in available_reward_prefixes()) or "none registered"
    return f"available names: {available_rewards()}; prefixed specs: {prefixes}"


def _checked(fn: object, source: str) -> RewardFn:
    if not isinstance(fn, RewardFn):
        raise TypeError(f"{source} did not return a RewardFn (a callable with a `name`), "
                        f"got {type(fn).__name__}")
    return fn


def _from_name(spec: str) -> RewardFn:
    if spec in _NAMED:
        return _checked(_NAMED[spec](), f"the factory of reward {spec!r}")
    prefix, sep, arg = spec.partition(":")
    if sep and prefix in _PREFIXED:
        if not arg:
            raise ValueError(f"reward spec {spec!r} needs an argument after '{prefix}:'")
        return _checked(_PREFIXED[prefix](arg), f"the factory of prefix '{prefix}:'")
    close = difflib.get_close_matches(spec, available_rewards(), n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    raise ValueError(f"unknown reward {spec!r}{hint}; {_allowed()}")


def check_reward_spec(spec: Any, what: str = "reward") -> None:
    """Refuse a reward spec of the wrong shape without building it (no model is loaded): a name, a non-empty
    ``{name: finite weight}`` mapping with each name once, or a RewardFn. ``what`` names the argument (a config
    key such as ``env.reward``). :func:`make_reward` runs it first; a config checks its ``reward`` with it."""
    if isinstance(spec, str) or (isinstance(spec, RewardFn) and not isinstance(spec, Mapping)):
        return
    if not isinstance(spec, Mapping):
        raise TypeError(f"{what}: a reward spec must be a name (str), a {{name: weight}} mapping or a RewardFn "
                        f"(a callable with a `name`), got {type(spec).__name__} {spec!r}"[:300] + f"; {_allowed()}")
    if not spec:
        raise ValueError(f"{what}: a reward mapping needs at least one {{name: weight}} entry; {_allowed()}")
    seen: set[str] = set()
    for key, weight in spec.items():
        if not isinstance(key, str):
            raise TypeError(f"{what}: reward mapping keys must be reward names (str), got "
                            f"{type(key).__name__} {key!r}; {_allowed()}")
        if key.strip() in seen:  # " bleu" and "bleu": the same reward counted twice
            raise ValueError(f"{what}: the reward mapping names {key.strip()!r} twice; give each reward once, "
                             "with its total weight")
        seen.add(key.strip())
        try:
            _check_weight(key, weight)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{what}: {exc}") from None


def make_reward(spec: str | Mapping[str, float] | RewardFn) -> RewardFn:
    """Turn a reward spec into a RewardFn.

    Args:
        spec: A registered name (``"bleu"``), a prefixed spec (``"rm:/path/to/model"``), a
            non-empty mapping of such names to finite weights (a :class:`WeightedReward`), or
            an object that already is a RewardFn (returned as is).

    Returns:
        The reward.

    Raises:
        ValueError: Unknown name or prefix, empty mapping, or a weight that is not finite.
        TypeError: Any other kind of spec, or a weight that is not a number.

    Example:
        >>> make_reward("rougeL").name
        'rougeL'
        >>> make_reward({"bleu": 1.0, "rougeL": 0.5}).name
        '1.0*bleu+0.5*rougeL'
        >>> make_reward("blue")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown reward 'blue' (did you mean 'bleu'?); available names: [...]; ...
    """
    check_reward_spec(spec)
    if isinstance(spec, str):
        return _from_name(spec.strip())
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError(f"a reward mapping needs at least one {{name: weight}} entry; "
                             f"{_allowed()}")
        components: dict[str, RewardFn] = {}
        for key in spec:
            if not isinstance(key, str):
                raise TypeError(f"reward mapping keys must be reward names (str), got "
                                f"{type(key).__name__} {key!r}; {_allowed()}")
            components[key] = _from_name(key.strip())
        return WeightedReward(components, spec)
    if isinstance(spec, RewardFn):
        return spec
    raise TypeError(
        f"a reward spec must be a name (str), a {{name: weight}} mapping or a RewardFn (a callable "
        f"with a `name`), got {type(spec).__name__}; {_allowed()}")


for _metric in (overlap.bleu, overlap.chrf, overlap.rouge1, overlap.rouge2, overlap.rougeL,
                overlap.rougeLsum, quality.repetition):
    # Bind the instance now (a bare closure would see only the loop's last value).
    register_reward(_metric.name, (lambda m: lambda: m)(_metric))
del _metric


def _sentiment() -> RewardFn:
    """The packaged hashed n-gram sentiment model (NumPy only; loaded on first use)."""
    from textgym.rewards.sentiment import SentimentReward

    return SentimentReward()


register_reward("sentiment", _sentiment)


def _dialogue_act(accuracy: bool) -> Callable[[], RewardFn]:
    """The packaged dialogue-act model (NumPy only; loaded on first use): probability or 0/1 accuracy."""

    def factory() -> RewardFn:
        from textgym.rewards.dialogue_act import DialogueActReward

        return DialogueActReward(accuracy=accuracy)

    return factory


register_reward("dialogue_act", _dialogue_act(False))
register_reward("dialogue_act_acc", _dialogue_act(True))


def _learned(attr: str) -> Callable[[str], RewardFn]:
    """A prefix factory that imports :mod:`textgym.rewards.learned` (torch) only when used."""

    def factory(arg: str) -> RewardFn:
        from textgym.rewards import learned, reward_model

        return getattr(reward_model if attr == "load_reward_model" else learned, attr)(arg)

    factory.__name__ = f"learned_{attr}"
    return factory


# Learned rewards: "rm:<folder or name>", "classifier:<model>[#label]", "embedding:<model>".
for _prefix, _attr in (("rm", "load_reward_model"), ("classifier", "classifier_from_spec"),
                       ("embedding", "EmbeddingSimilarityReward")):
    register_reward_prefix(_prefix, _learned(_attr))
del _prefix, _attr
