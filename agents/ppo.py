"""agents.PPO: stable-baselines3 PPO for language models on textgym envs."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch as th
from stable_baselines3 import PPO as SB3PPO
from stable_baselines3.common.utils import explained_variance

from agents.base import TextAlgorithmMixin
from agents.config import PPOConfig
from agents.losses import ppo_loss
from agents.policies import TransformerPolicy
from agents.rollout import evaluate_episodes


class PPO(TextAlgorithmMixin, SB3PPO):
    """SB3's PPO with a KL penalty against the frozen initial policy.

    Same constructor, ``learn``, ``predict``, ``save``/``load``, callbacks and logger as
    ``stable_baselines3.PPO``; the policy alias ``"TransformerPolicy"`` is added, and so are the
    text arguments of :class:`agents.base.TextAlgorithmMixin` (``kl_coef``, ``kl_target``,
    ``kl_horizon``, ``n_envs``, ``env_kwargs``, ``fast_path``, ``threads``). With a
    TransformerPolicy, every hyperparameter not given defaults to :class:`agents.config.PPOConfig`
    (what ``textgym train`` uses: ``learning_rate=1e-5``, ``n_steps=8``, ``batch_size=128``,
    ``n_epochs=2``, ``gamma=1.0``, ``vf_coef=0.1``, ``kl_coef=0.05``, ...); with other policies,
    SB3's defaults.

    Example (the fast path: 16 episodes in lockstep with a KV cache)::

        model = PPO("TransformerPolicy", "textgym/CommonGen-v0", n_envs=16, env_kwargs=dict(reward="bleu"))
        model.learn(768, progress_bar=True)  # 2 rollouts of 16 envs x 24 tokens
    """

    config_class = PPOConfig
    policy_aliases: ClassVar[dict[str, type]] = {**SB3PPO.policy_aliases, "TransformerPolicy": TransformerPolicy}

    def train_episodes(self) -> None:
        """PPO epochs over episode minibatches: one teacher-forced forward per minibatch."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = None if self.clip_range_vf is None else self.clip_range_vf(self._current_progress_remaining)
        logs: dict[str, list[float]] = {k: [] for k in ("pg", "value", "entropy", "kl", "clip", "loss")}
        continue_training = True
        for _ in range(self.n_epochs):
            for batch in self.rollout_buffer.get(self.batch_size):
                log_probs, values, entropy = evaluate_episodes(self.policy, batch)
                parts = ppo_loss(
                    log_probs.float(), batch.log_probs, batch.advantages, values.float(), batch.values,
                    batch.returns, entropy.float(), batch.step_mask, clip_range=clip_range,
                    clip_range_vf=clip_range_vf, ent_coef=self.ent_coef, vf_coef=self.vf_coef,
                    normalize_advantage=self.normalize_advantage,
                )
                for key, value in zip(logs, (parts.policy_loss, parts.value_loss, parts.entropy_loss,
                                             parts.approx_kl, parts.clip_fraction, parts.loss)):
                    logs[key].append(float(value.detach()))
                if self.target_kl is not None and float(parts.approx_kl) > 1.5 * self.target_kl:
                    continue_training = False  # SB3's early stop on the update's own KL
                    break
                self.policy.optimizer.zero_grad()
                parts.loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                steps = int(batch.step_mask.sum())
                self.policy.entropy_sum -= float(parts.entropy_loss.detach()) * steps
                self.policy.entropy_count += steps
            self._n_updates += 1
            if not continue_training:
                break
        episodes = self.rollout_buffer.episodes
        mask = episodes.step_mask
        self.logger.record("train/explained_variance", explained_variance(
            episodes.values[mask].cpu().numpy(), episodes.returns[mask].cpu().numpy()))
        for key, name in (("pg", "policy_gradient_loss"), ("value", "value_loss"), ("entropy", "entropy_loss"),
                          ("kl", "approx_kl"), ("clip", "clip_fraction"), ("loss", "loss")):
            if logs[key]:
                self.logger.record(f"train/{name}", float(np.mean(logs[key])))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
