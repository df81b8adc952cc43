"""Rewards: pure batched callables ``(prompts, generations, references) -> list[float]``.

Metric rewards (BLEU, chrF, ROUGE) live in :mod:`textgym.rewards.overlap`, the repetition penalty
(``"repetition"``, mix it in with a negative weight) in :mod:`textgym.rewards.quality`, the packaged
NumPy-only models (``"sentiment"``, ``"dialogue_act"``) in :mod:`textgym.rewards.sentiment` and
:mod:`textgym.rewards.dialogue_act`, weighted mixes in
:mod:`textgym.rewards.combine`, and spec resolution (``"bleu"``, ``{"bleu": 1.0, "rougeL": 0.5}``,
``"rm:/path"``) in :mod:`textgym.rewards.registry`. The learned rewards (:class:`ClassifierReward`,
:class:`EmbeddingSimilarityReward` in :mod:`textgym.rewards.learned`, :class:`RewardModel` in
:mod:`textgym.rewards.reward_model`) are exported here too. Importing this package is cheap: sacrebleu
and rouge-score are imported at the first score, the learned rewards' modules at their first use.
"""

from typing import Any

from textgym.rewards.base import References, RewardFn
from textgym.rewards.combine import WeightedReward, score_and_components, score_components
from textgym.rewards.overlap import (
    BLEUReward,
    CHRFReward,
    RougeReward,
    bleu,
    chrf,
    rouge1,
    rouge2,
    rougeL,
    rougeLsum,
)
from textgym.rewards.quality import RepetitionPenalty, repetition_rate
from textgym.rewards.registry import (
    available_reward_prefixes,
    available_rewards,
    make_reward,
    register_reward,
    register_reward_prefix,
)

def __getattr__(name: str) -> Any:
    # The learned rewards' modules are imported on first use (keeps `import textgym.rewards` cheap).
    if name in ("ClassifierReward", "EmbeddingSimilarityReward"):
        from textgym.rewards import learned

        return getattr(learned, name)
    if name == "RewardModel":
        from textgym.rewards.reward_model import RewardModel

        return RewardModel
    raise AttributeError(f"module 'textgym.rewards' has no attribute {name!r}")


__all__ = [
    "BLEUReward",
    "CHRFReward",
    "ClassifierReward",
    "EmbeddingSimilarityReward",
    "References",
    "RepetitionPenalty",
    "RewardFn",
    "RewardModel",
    "RougeReward",
    "WeightedReward",
    "available_reward_prefixes",
    "available_rewards",
    "bleu",
    "chrf",
    "make_reward",
    "register_reward",
    "register_reward_prefix",
    "repetition_rate",
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "score_and_components",
    "score_components",
]
