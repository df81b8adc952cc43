"""agents.A2C: stable-baselines3 A2C for language models on textgym envs."""

from __future__ import annotations

from typing import ClassVar

import torch as th
from stable_baselines3 import A2C as SB3A2C
from stable_baselines3.common.utils import explained_variance

from agents.base import TextAlgorithmMixin
from agents.config import A2CConfig
from agents.losses import a2c_loss
from agents.policies import TransformerPolicy
from agents.rollout import evaluate_episodes


class A2C(TextAlgorithmMixin, SB3A2C):
    """SB3's A2C with a KL penalty against the frozen initial policy.

    Same API as ``stable_baselines3.A2C`` plus the ``"TransformerPolicy"`` alias and the text
    arguments of :class:`agents.base.TextAlgorithmMixin`. With a TransformerPolicy, every
    hyperparameter not given defaults to :class:`agents.config.A2CConfig` (what ``textgym train``
    uses: ``learning_rate=1e-5``, ``n_steps=16``, ``gamma=1.0``, ``vf_coef=0.1``, ...) and the
    optimizer is the policy's AdamW (SB3's RMSprop default is for Atari).
    """

    config_class = A2CConfig
    policy_aliases: ClassVar[dict[str, type]] = {**SB3A2C.policy_aliases, "TransformerPolicy": TransformerPolicy}

    def __init__(self, *args, **kwargs) -> None:
        if self._is_text_policy_class(kwargs.get("policy", args[0] if args else None)):
            kwargs.setdefault("use_rms_prop", False)
        super().__init__(*args, **kwargs)

    def train_episodes(self) -> None:
        """One A2C gradient step over all episodes (one teacher-forced forward)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        batch = self.rollout_buffer.episodes
        log_probs, values, entropy = evaluate_episodes(self.policy, batch)
        parts = a2c_loss(log_probs.float(), batch.advantages, values.float(), batch.returns, entropy.float(),
                         batch.step_mask, ent_coef=self.ent_coef, vf_coef=self.vf_coef,
                         normalize_advantage=self.normalize_advantage)
        self.policy.optimizer.zero_grad()
        parts.loss.backward()
        th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()
        self.policy.entropy_sum -= float(parts.entropy_loss.detach()) * batch.num_steps
        self.policy.entropy_count += batch.num_steps
        self._n_updates += 1
        mask = batch.step_mask
        self.logger.record("train/explained_variance",
                           explained_variance(batch.values[mask].cpu().numpy(), batch.returns[mask].cpu().numpy()))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/policy_loss", float(parts.policy_loss.detach()))
        self.logger.record("train/value_loss", float(parts.value_loss.detach()))
        self.logger.record("train/entropy_loss", float(parts.entropy_loss.detach()))
