"""Rollout buffers for text agents."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictRolloutBuffer

# (observations, actions, log_probs, episode_starts) -> per-env penalty to subtract from the reward
PenaltyFn = Callable[[dict[str, np.ndarray], np.ndarray, th.Tensor, np.ndarray], np.ndarray]


class KLPenaltyRolloutBuffer(DictRolloutBuffer):
    """SB3's DictRolloutBuffer that subtracts a per-token penalty from each reward as it is stored.

    The algorithm sets :attr:`penalty` to its KL term ``kl_coef * (log pi - log pi_ref)``; this keeps
    SB3's own ``collect_rollouts`` untouched (no fork) while every stored reward carries the penalty.
    """

    penalty: PenaltyFn | None = None

    def add(self, obs, action, reward, episode_start, value, log_prob) -> None:  # type: ignore[override]
        if self.penalty is not None:
            reward = np.asarray(reward, dtype=np.float32) - self.penalty(obs, action, log_prob, episode_start)
        super().add(obs, action, reward, episode_start, value, log_prob)
