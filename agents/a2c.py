"""agents.A2C: stable-baselines3 A2C for language models on textgym envs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch as th
from stable_baselines3 import A2C as SB3A2C

from agents.base import TextAlgorithm
from agents.buffers import EpisodeBatch
from agents.losses import a2c_loss
from agents.policies import TransformerPolicy
from agents.settings import BASELINES, OnPolicyConfig, chosen, ranged


@dataclass
class A2CConfig(OnPolicyConfig):
    """agents.A2C hyperparameters (SB3 names); ``baseline`` as in :class:`agents.ppo.PPOConfig`."""

    n_steps: int = ranged(16, 1)
    baseline: str = chosen("critic", BASELINES)
    group_size: int | None = ranged(None, 1)  # completions per prompt (>= 2 with the group-mean baseline)


class A2C(TextAlgorithm, SB3A2C):
    """SB3's A2C with a KL penalty against the frozen initial policy.

    Same API as ``stable_baselines3.A2C`` plus the ``"TransformerPolicy"`` alias and the text
    arguments of :class:`agents.base.TextAlgorithm`. Every hyperparameter not given defaults to
    :class:`A2CConfig` (what ``textgym train`` uses: ``learning_rate=1e-5``, ``n_steps=16``,
    ``gamma=1.0``, ``vf_coef=0.1``, ...) and the optimizer is the policy's AdamW (SB3's RMSprop
    default is for Atari). One gradient step per rollout, over all its episodes.
    """

    config_class = A2CConfig
    sb3_defaults: ClassVar[dict[str, Any]] = {"use_rms_prop": False}
    policy_aliases: ClassVar[dict[str, type]] = {**SB3A2C.policy_aliases, "TransformerPolicy": TransformerPolicy}

    def episode_loss(self, batch: EpisodeBatch, log_probs: th.Tensor, values: th.Tensor,
                     entropy: th.Tensor) -> tuple[th.Tensor, dict[str, Any]]:
        """SB3's A2C loss (policy gradient, value, entropy), averaged over the episodes' steps."""
        parts = a2c_loss(log_probs, batch.advantages, values, batch.returns, entropy, batch.step_mask,
                         ent_coef=self.ent_coef, vf_coef=self.vf_coef, normalize_advantage=self.normalize_advantage)
        logs = {"policy_loss": parts.policy_loss, "value_loss": parts.value_loss, "entropy_loss": parts.entropy_loss}
        return parts.loss, logs
