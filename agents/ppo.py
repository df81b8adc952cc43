"""agents.PPO: stable-baselines3 PPO for language models on textgym envs."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3 import PPO as SB3PPO
from stable_baselines3.common.utils import explained_variance

from agents.base import TextAlgorithmMixin
from agents.buffers import EpisodeBatch
from agents.losses import ppo_loss
from agents.policies import TransformerPolicy
from agents.rollout import evaluate_episodes


class PPO(TextAlgorithmMixin, SB3PPO):
    """SB3's PPO with a KL penalty against the frozen initial policy.

    Same constructor, ``learn``, ``predict``, ``save``/``load``, callbacks and logger as
    ``stable_baselines3.PPO``; the policy alias ``"TransformerPolicy"`` is added. Defaults suit
    language models rather than control: ``learning_rate=1e-5``, ``n_steps=256``, ``batch_size=64``,
    ``n_epochs=4``, ``gamma=1.0`` (episodes are short texts), ``ent_coef=0``.

    Args:
        kl_coef: Weight of the per-token penalty ``log pi - log pi_ref`` subtracted from rewards.
        kl_target: If set, ``kl_coef`` adapts so the per-episode KL tracks this value (Ziegler et
            al. 2019). Not SB3's ``target_kl``, which still stops an update's epochs early.
        kl_horizon: Horizon of the adaptive controller, in environment steps.
        **kwargs: Everything ``stable_baselines3.PPO`` accepts.
    """

    policy_aliases: ClassVar[dict[str, type]] = {**SB3PPO.policy_aliases, "TransformerPolicy": TransformerPolicy}

    def __init__(
        self,
        policy: Any,
        env: Any,
        learning_rate: Any = 1e-5,
        n_steps: int = 256,
        batch_size: int = 64,
        n_epochs: int = 4,
        gamma: float = 1.0,
        *,
        kl_coef: float = 0.05,
        kl_target: float | None = None,
        kl_horizon: int = 10_000,
        **kwargs: Any,
    ) -> None:
        self._init_text(kl_coef, kl_target, kl_horizon)
        super().__init__(policy, env, learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size,
                         n_epochs=n_epochs, gamma=gamma, **kwargs)

    def train_episodes(self, batch: EpisodeBatch) -> None:
        """PPO epochs over episode minibatches: one teacher-forced forward per minibatch."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = None if self.clip_range_vf is None else self.clip_range_vf(self._current_progress_remaining)
        logs: dict[str, list[float]] = {k: [] for k in ("pg", "value", "entropy", "kl", "clip", "loss")}
        continue_training = True
        for _ in range(self.n_epochs):
            for rows in self.episode_minibatches(batch):
                log_probs, values, entropy = evaluate_episodes(self.policy, batch, rows)
                parts = ppo_loss(
                    log_probs.float(), batch.log_probs[rows], batch.advantages[rows], values.float(),
                    batch.values[rows], batch.returns[rows], entropy.float(), batch.step_mask[rows],
                    clip_range=clip_range, clip_range_vf=clip_range_vf, ent_coef=self.ent_coef,
                    vf_coef=self.vf_coef, normalize_advantage=self.normalize_advantage,
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
                self.policy.entropy_sum -= float(parts.entropy_loss.detach()) * float(batch.step_mask[rows].sum())
                self.policy.entropy_count += int(batch.step_mask[rows].sum())
            self._n_updates += 1
            if not continue_training:
                break
        mask = batch.step_mask
        self.logger.record("train/explained_variance",
                           explained_variance(batch.values[mask].cpu().numpy(), batch.returns[mask].cpu().numpy()))
        for key, name in (("pg", "policy_gradient_loss"), ("value", "value_loss"), ("entropy", "entropy_loss"),
                          ("kl", "approx_kl"), ("clip", "clip_fraction"), ("loss", "loss")):
            if logs[key]:
                self.logger.record(f"train/{name}", float(np.mean(logs[key])))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
