"""Rollout buffers for text agents."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class EpisodeBatch:
    """Whole episodes packed as token tensors (one row per episode), on the policy's device.

    Shapes: ``prompt_ids, prompt_mask: (E, P)`` (left-padded), ``tokens, step_mask: (E, T)`` (the
    actions taken; ``step_mask`` is 1 for steps that happened, EOS included). Per-step float
    tensors ``(E, T)``: ``env_rewards``, ``log_probs`` and ``values`` (old policy),
    ``ref_log_probs``, ``rewards`` (env reward minus the KL penalty), ``advantages``, ``returns``.
    """

    prompt_ids: th.Tensor
    prompt_mask: th.Tensor
    tokens: th.Tensor
    step_mask: th.Tensor
    env_rewards: th.Tensor
    log_probs: th.Tensor | None = None
    values: th.Tensor | None = None
    ref_log_probs: th.Tensor | None = None
    rewards: th.Tensor | None = None
    advantages: th.Tensor | None = None
    returns: th.Tensor | None = None
    infos: list[dict] = field(default_factory=list)

    @property
    def num_episodes(self) -> int:
        return self.tokens.shape[0]

    @property
    def num_steps(self) -> int:
        return int(self.step_mask.sum())

    def sequences(self, rows: th.Tensor | slice = slice(None)) -> tuple[th.Tensor, th.Tensor]:
        """Prompt + actions and their attention mask, ``(e, P + T)``, for teacher-forced passes."""
        ids = th.cat([self.prompt_ids[rows], self.tokens[rows]], dim=1)
        mask = th.cat([self.prompt_mask[rows], self.step_mask[rows].long()], dim=1)
        return ids, mask


def compute_gae(rewards: th.Tensor, values: th.Tensor, step_mask: th.Tensor, gamma: float,
                gae_lambda: float) -> tuple[th.Tensor, th.Tensor]:
    """GAE over the token axis of whole episodes. All ``(E, T)``; returns ``(advantages, returns)``.

    Each episode ends after its last valid step with nothing left to earn (the score of the whole
    text is paid at that step), so the value after it is 0, as in ``TokenVecEnv``'s episodes.
    """
    mask = step_mask.float()
    advantages = th.zeros_like(rewards)
    next_value = th.zeros_like(rewards[:, 0])
    running = th.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * gae_lambda * running) * mask[:, t]
        advantages[:, t] = running
        next_value = values[:, t] * mask[:, t]
    return advantages, (advantages + values) * mask
