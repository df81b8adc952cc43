"""Weighted sums of rewards, and per-metric scores for an env's ``info``."""

from __future__ import annotations

import math
import numbers
from typing import Mapping, Sequence

from textgym.rewards.base import RewardFn, check_scores

__all__ = ["WeightedReward", "score_and_components", "score_components"]


def _check_weight(key: str, weight: object) -> float:
    # bool is an int subclass, but True as a weight is almost surely a mistake.
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        raise TypeError(f"reward weight of {key!r} must be a finite number, got {type(weight).__name__} "
                        f"{weight!r}")
    value = float(weight)
    if not math.isfinite(value):
        raise ValueError(f"reward weight of {key!r} must be a finite number, got {value!r}")
    return value


def _format_name(weights: Mapping[str, float]) -> str:
    parts = []
    for i, (key, w) in enumerate(weights.items()):
        sign = "-" if w < 0 or (w == 0 and math.copysign(1.0, w) < 0) else ("+" if i else "")
        parts.append(f"{sign}{abs(w)!r}*{key}")
    return "".join(parts)


class WeightedReward:
    """A weighted sum of rewards, itself a :class:`~textgym.rewards.base.RewardFn`.

    Args:
        components: Rewards by key; the key names the component in :attr:`name` and in
            :meth:`score_components` (usually the reward's own name).
        weights: One finite weight per key of ``components`` (negative weights are penalties,
            zero weights report a metric without rewarding it).

    Raises:
        ValueError: No components, keys of the two mappings differ, or a weight is not finite.
        TypeError: A component is not a RewardFn or a weight is not a number.

    Example:
        >>> from textgym.rewards.overlap import bleu, rouge1
        >>> mix = WeightedReward({"bleu": bleu, "rouge1": rouge1}, {"bleu": 0.5, "rouge1": 2})
        >>> mix.name
        '0.5*bleu+2.0*rouge1'
        >>> mix(["p"], ["the cat sat"], [["the cat sat"]])
        [2.5]
        >>> parts = mix.score_components(["p"], ["the cat"], [["the cat sat"]])
        >>> {k: [round(v, 4) for v in vs] for k, vs in parts.items()}  # BLEU: BP = exp(1 - 3/2)
        {'bleu': [0.6065], 'rouge1': [0.8]}
    """

    def __init__(self, components: Mapping[str, RewardFn], weights: Mapping[str, float]) -> None:
        if not isinstance(components, Mapping) or not isinstance(weights, Mapping):
            raise TypeError("components and weights must be mappings keyed by component name, got "
                            f"{type(components).__name__} and {type(weights).__name__}")
        if not components:
            raise ValueError("WeightedReward needs at least one component")
        if set(components) != set(weights):
            missing = sorted(set(components) - set(weights))
            extra = sorted(set(weights) - set(components))
            raise ValueError(f"weights must have exactly the keys of components "
                             f"{list(components)}; missing weights for {missing}, weights "
                             f"without component {extra}")
        for key, fn in components.items():
            if not isinstance(key, str):
                raise TypeError(f"component keys must be str, got {type(key).__name__} {key!r}")
            if not isinstance(fn, RewardFn):
                raise TypeError(f"component {key!r} is not a RewardFn (a callable with a `name`), "
                                f"got {type(fn).__name__}")
        # Own copies, in the components' order: later edits to the caller's dicts change nothing.
        self.components: dict[str, RewardFn] = dict(components)
        self.weights: dict[str, float] = {k: _check_weight(k, weights[k]) for k in components}
        self.name: str = _format_name(self.weights)

    def score_components(
        self,
        prompts: Sequence[str],
        generations: Sequence[str],
        references: Sequence[Sequence[str]],
    ) -> dict[str, list[float]]:
        """Each component's scores, keyed as in ``components`` (unweighted)."""
        out: dict[str, list[float]] = {}
        for key, fn in self.components.items():
            out[key] = check_scores(key, fn(prompts, generations, references), len(generations))
        return out

    def combine(self, component_scores: Mapping[str, Sequence[float]]) -> list[float]:
        """The weighted sum of scores as returned by :meth:`score_components`.

        Example:
            >>> from textgym.rewards.overlap import bleu, chrf
            >>> WeightedReward({"bleu": bleu, "chrf": chrf}, {"bleu": 1, "chrf": -0.5}).combine(
            ...     {"bleu": [1.0, 0.5], "chrf": [1.0, 0.0]})
            [0.5, 0.5]
        """
        keys = list(self.weights)
        columns = zip(*(component_scores[k] for k in keys))
        return [sum(self.weights[k] * s for k, s in zip(keys, col)) for col in columns]

    def __call__(
        self,
        prompts: Sequence[str],
        generations: Sequence[str],
        references: Sequence[Sequence[str]],
    ) -> list[float]:
        """The weighted sum of the components' scores, one float per item."""
        return self.combine(self.score_components(prompts, generations, references))

    def __repr__(self) -> str:
        return f"<WeightedReward {self.name!r}>"


def score_and_components(
    reward: RewardFn,
    prompts: Sequence[str],
    generations: Sequence[str],
    references: Sequence[Sequence[str]],
) -> tuple[list[float], dict[str, list[float]]]:
    """The reward and every metric it is made of, each metric computed once.

    Args:
        reward: Any RewardFn; a :class:`WeightedReward` is split into its components.
        prompts: One prompt per item.
        generations: One generated text per item.
        references: One non-empty list of reference strings per item.

    Returns:
        ``(total, components)``: the reward's scores, and the scores by component key
        (``{reward.name: total}`` for a single reward).

    Example:
        >>> from textgym.rewards.overlap import rouge1
        >>> score_and_components(rouge1, ["p"], ["a b"], [["a b c d"]])
        ([0.6666666666666666], {'rouge1': [0.6666666666666666]})
    """
    if isinstance(reward, WeightedReward):
        parts = reward.score_components(prompts, generations, references)
        return reward.combine(parts), parts
    total = check_scores(reward.name, reward(prompts, generations, references), len(generations))
    return total, {reward.name: list(total)}


def score_components(
    reward: RewardFn,
    prompts: Sequence[str],
    generations: Sequence[str],
    references: Sequence[Sequence[str]],
) -> dict[str, list[float]]:
    """Scores by metric for any reward: a WeightedReward's components, or ``{reward.name: ...}``.

    Example:
        >>> from textgym.rewards.overlap import bleu
        >>> score_components(bleu, ["p", "p"], ["a cat", ""], [["a cat"], ["a cat"]])
        {'bleu': [1.0, 0.0]}
    """
    return score_and_components(reward, prompts, generations, references)[1]
