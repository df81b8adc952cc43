"""agents.PPO: stable-baselines3 PPO for language models on textgym envs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch as th
from stable_baselines3 import PPO as SB3PPO

from agents.base import TextAlgorithm
from agents.buffers import EpisodeBatch
from agents.losses import ppo_loss
from agents.policies import TransformerPolicy
from agents.settings import BASELINES, OnPolicyConfig, chosen, ranged


@dataclass
class ClippedUpdateConfig(OnPolicyConfig):
    """The clipped update's hyperparameters (SB3's PPO names), shared by PPO, GRPO and NLPO."""

    batch_size: int = ranged(128, 1)
    n_epochs: int = ranged(2, 1)
    clip_range: float = ranged(0.2, 0, low_open=True)
    target_kl: float | None = ranged(None, 0, low_open=True)


@dataclass
class PPOConfig(ClippedUpdateConfig):
    """agents.PPO hyperparameters (SB3 names); defaults sized for a few minutes on a 2-core CPU.

    ``baseline="group_mean"`` replaces the critic by the mean return of the prompt's other
    completions (with ``group_size >= 2``): see :data:`agents.settings.BASELINES`.
    """

    baseline: str = chosen("critic", BASELINES)
    group_size: int | None = ranged(None, 1)  # completions per prompt (>= 2 with the group-mean baseline)


class PPO(TextAlgorithm, SB3PPO):
    """SB3's PPO with a KL penalty against the frozen initial policy.

    Same constructor, ``learn``, ``predict``, ``save``/``load``, callbacks and logger as
    ``stable_baselines3.PPO``; the policy alias ``"TransformerPolicy"`` is added, and so are the
    text arguments of :class:`agents.base.TextAlgorithm` (``config``, ``kl_coef``, ``kl_target``,
    ``kl_horizon``, ``n_envs``, ``env_kwargs``, ``fast_path``, ``threads``). Every hyperparameter
    not given defaults to :class:`PPOConfig` (what ``textgym train`` uses: ``learning_rate=1e-5``,
    ``n_steps=8``, ``batch_size=128``, ``n_epochs=2``, ``gamma=1.0``, ``vf_coef=0.1``,
    ``kl_coef=0.05``, ...).

    Example (the fast path: 16 episodes in lockstep with a KV cache)::

        model = PPO("TransformerPolicy", "textgym/CommonGen-v0", n_envs=16, env_kwargs=dict(reward="bleu"))
        model.learn(768, progress_bar=True)  # 2 rollouts of 16 envs x 24 tokens
    """

    config_class = PPOConfig
    policy_aliases: ClassVar[dict[str, type]] = {**SB3PPO.policy_aliases, "TransformerPolicy": TransformerPolicy}

    def episode_loss(self, batch: EpisodeBatch, log_probs: th.Tensor, values: th.Tensor,
                     entropy: th.Tensor) -> tuple[th.Tensor, dict[str, Any]]:
        """SB3's clipped surrogate, value and entropy losses, averaged over the minibatch's steps."""
        progress = self._current_progress_remaining
        clip_range = self.clip_range(progress)
        clip_range_vf = None if self.clip_range_vf is None else self.clip_range_vf(progress)
        parts = ppo_loss(log_probs, batch.log_probs, batch.advantages, values, batch.values, batch.returns, entropy,
                         batch.step_mask, clip_range=clip_range, clip_range_vf=clip_range_vf, ent_coef=self.ent_coef,
                         vf_coef=self.vf_coef, normalize_advantage=self.normalize_advantage)
        logs = {"policy_gradient_loss": parts.policy_loss, "value_loss": parts.value_loss,
                "entropy_loss": parts.entropy_loss, "approx_kl": parts.approx_kl,
                "clip_fraction": parts.clip_fraction, "loss": parts.loss, "clip_range": clip_range}
        return parts.loss, logs

    def stop_update(self, logs: dict[str, Any]) -> bool:
        """SB3's early stop: the update's own KL went past ``1.5 * target_kl``."""
        return self.target_kl is not None and logs["approx_kl"] > 1.5 * self.target_kl
