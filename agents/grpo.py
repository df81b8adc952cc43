"""agents.GRPO: group-normalised advantages, a clipped ratio and a KL term to the reference (Shao et al. 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch as th
from stable_baselines3 import PPO as SB3PPO

from agents.base import TextAlgorithm
from agents.buffers import EpisodeBatch
from agents.groups import episode_returns, group_normalized_advantages, per_step
from agents.losses import k3_kl, masked_mean
from agents.policies import TransformerPolicy
from agents.ppo import ClippedUpdateConfig
from agents.settings import ranged


@dataclass
class GRPOConfig(ClippedUpdateConfig):
    """agents.GRPO hyperparameters; ``gamma``, ``gae_lambda`` and ``vf_coef`` are unused (no critic).

    ``kl_coef`` weighs the KL term of the loss (not a reward penalty, as in PPO).
    """

    n_steps: int = ranged(16, 1)
    n_epochs: int = ranged(2, 1)
    group_size: int = ranged(4, 2)


class GRPO(TextAlgorithm, SB3PPO):
    """PPO's clipped surrogate with group-normalised advantages instead of a critic.

    Each episode's advantage, the same for all its tokens, is its task score standardised within the
    ``k`` completions of its prompt. The KL to the reference is a loss term (the ``k3`` estimator,
    ``exp(ref - logp) - (ref - logp) - 1``, per token), not a reward penalty. Several epochs over
    minibatches per rollout, as PPO. Use it when the reward's scale varies between prompts (the
    standardisation equalises them) and you want several updates per sample.

    Same constructor, ``learn``, ``predict``, ``save``/``load``, callbacks and logger as
    :class:`agents.PPO`; hyperparameters default to :class:`GRPOConfig`. Needs the fast path.
    """

    config_class = GRPOConfig
    uses_critic = False
    sb3_defaults: ClassVar[dict[str, Any]] = {"normalize_advantage": False}
    policy_aliases: ClassVar[dict[str, type]] = {**SB3PPO.policy_aliases, "TransformerPolicy": TransformerPolicy}

    def episode_advantages(self, batch: EpisodeBatch) -> tuple[th.Tensor, th.Tensor]:
        scores = episode_returns(batch.env_rewards, batch.step_mask)  # (E,): the KL is in the loss, not here
        advantages = group_normalized_advantages(scores, self.env.group_size)
        return per_step(advantages, batch.step_mask), per_step(scores, batch.step_mask)

    def episode_loss(self, batch: EpisodeBatch, log_probs: th.Tensor, values: th.Tensor | None,
                     entropy: th.Tensor) -> tuple[th.Tensor, dict[str, Any]]:
        """Clipped surrogate + ``kl_coef`` * KL to the reference - ``ent_coef`` * entropy, averaged over tokens."""
        mask, clip = batch.step_mask.float(), self.clip_range(self._current_progress_remaining)
        log_ratio = log_probs - batch.log_probs
        ratio = th.exp(log_ratio)
        surrogate = th.min(batch.advantages * ratio, batch.advantages * th.clamp(ratio, 1 - clip, 1 + clip))
        policy_loss = -masked_mean(surrogate, mask)
        kl = k3_kl(log_probs, batch.ref_log_probs, mask)
        entropy_loss = -masked_mean(entropy, mask)
        loss = policy_loss + self.kl_coef * kl + self.ent_coef * entropy_loss
        with th.no_grad():
            approx_kl = masked_mean((ratio - 1) - log_ratio, mask)
            clip_fraction = masked_mean(((ratio - 1).abs() > clip).float(), mask)
        return loss, {"policy_gradient_loss": policy_loss, "kl_to_reference": kl, "entropy_loss": entropy_loss,
                      "approx_kl": approx_kl, "clip_fraction": clip_fraction, "loss": loss, "clip_range": clip}

    def stop_update(self, logs: dict[str, Any]) -> bool:
        """SB3's early stop: the update's own KL went past ``1.5 * target_kl``."""
        return self.target_kl is not None and logs["approx_kl"] > 1.5 * self.target_kl
