"""Rewards: pure batched callables ``(prompts, generations, references) -> list[float]``.

Metric rewards (BLEU, chrF, ROUGE) live in :mod:`textgym.rewards.overlap`, the repetition penalty
(``"repetition"``, mix it in with a negative weight) in :mod:`textgym.rewards.quality`, the packaged
NumPy-only models (``"sentiment"``, ``"dialogue_act"``) in :mod:`textgym.rewards.sentiment` and
:mod:`textgym.rewards.dialogue_act`, weighted mixes in
:mod:`textgym.rewards.combine`, and spec resolution (``"bleu"``, ``{"bleu": 1.0, "rougeL": 0.5}``,
``"rm:/path"``) in :mod:`textgym.rewards.registry`. Importing this package is cheap: sacrebleu and
rouge-score are imported at the first score.
"""

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

__all__ = [
    "BLEUReward",
    "CHRFReward",
    "References",
    "RepetitionPenalty",
    "RewardFn",
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
