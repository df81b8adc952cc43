"""What agents.PPO and agents.A2C add to SB3: a frozen reference, the KL penalty, text metrics."""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.utils import obs_as_tensor

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from agents.buffers import EpisodeBatch, KLPenaltyRolloutBuffer, compute_gae
from agents.kl import make_kl_controller
from agents.policies import TransformerPolicy
from agents.rollout import evaluate_episodes, generate_episodes, reference_log_probs
from textgym.vector import TokenVecEnv


class LengthLimitIsTerminal(VecEnvWrapper):
    """Tell SB3 not to bootstrap a value when a text reaches ``max_new_tokens``.

    The score of the whole text is paid at that step, so nothing is left to earn after it;
    bootstrapping ``V(final text)`` on top would count the score twice and reward running long.
    """

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if info.get("TimeLimit.truncated"):
                info["TimeLimit.truncated"] = False
        return obs, rewards, dones, infos


def _is_text_env(env: Any) -> bool:
    space = getattr(env, "observation_space", None)
    return hasattr(space, "spaces") and "input_ids" in space.spaces


class KLStats:
    """Per-token KL values of one rollout, and their sums per finished episode."""

    def __init__(self, n_envs: int) -> None:
        self.running = np.zeros(n_envs)
        self.tokens: list[float] = []
        self.episodes: list[float] = []

    def add(self, kl: np.ndarray, episode_start: np.ndarray) -> None:
        for i in np.flatnonzero(episode_start):
            self.episodes.append(float(self.running[i]))
            self.running[i] = 0.0
        self.running += kl
        self.tokens.extend(kl.tolist())

    def pop(self) -> tuple[float | None, float | None]:
        """(mean per-token KL, mean per-episode KL) since the last pop; ``None`` where nothing was seen."""
        tok = float(np.mean(self.tokens)) if self.tokens else None
        ep = float(np.mean(self.episodes)) if self.episodes else None
        self.tokens, self.episodes = [], []
        return tok, ep


class TextAlgorithmMixin:
    """Mixed into SB3's PPO / A2C. Active only with a :class:`TransformerPolicy`.

    Adds: the policy's frozen reference, the initial LM (a frozen copy saved with the policy, or
    with LoRA the same LM with its adapters disabled), the
    per-token penalty ``-kl_coef * (log pi - log pi_ref)`` on every reward, a fixed or adaptive
    ``kl_coef``, and logs of ``kl``, ``kl_coef``, ``entropy``, skipped non-finite updates and the
    env's task metrics.
    """

    policy: Any
    episode_batch: EpisodeBatch | None = None

    def train_episodes(self, batch: EpisodeBatch) -> None:
        """The algorithm's update on episode-packed data (PPO and A2C define it)."""
        raise NotImplementedError

    def _init_text(self, kl_coef: float, kl_target: float | None, kl_horizon: int) -> None:
        self.kl_controller = make_kl_controller(kl_coef, kl_target, kl_horizon)
        self.metric_buffer: dict[str, deque] = defaultdict(lambda: deque(maxlen=100))

    @property
    def reference(self) -> th.nn.Module | None:
        """The frozen reference copy of the LM (``None`` with LoRA: see ``policy.reference()``)."""
        return getattr(getattr(self, "policy", None), "reference_lm", None)

    @property
    def kl_coef(self) -> float:
        return self.kl_controller.value

    def _is_text_policy(self) -> bool:
        return isinstance(self.policy_class, type) and issubclass(self.policy_class, TransformerPolicy)

    @staticmethod
    def _wrap_env(env: Any, verbose: int = 0, monitor_wrapper: bool = True) -> VecEnv:
        if isinstance(env, TokenVecEnv):
            return env  # it already reports episodes and never bootstraps on length
        env = BaseAlgorithm._wrap_env(env, verbose, monitor_wrapper)
        return LengthLimitIsTerminal(env) if _is_text_env(env) else env

    def uses_fast_path(self) -> bool:
        """Whole-episode KV-cache rollouts and one-pass updates: a TokenVecEnv and a TransformerPolicy."""
        return self._is_text_policy() and isinstance(getattr(self, "env", None), TokenVecEnv)

    def _setup_model(self) -> None:
        if self._is_text_policy() and self.rollout_buffer_class is None:
            self.rollout_buffer_class = KLPenaltyRolloutBuffer
        super()._setup_model()  # type: ignore[misc]
        if not self._is_text_policy():
            return
        self.policy.init_reference()  # the initial policy, frozen (with LoRA: adapters disabled)
        self.kl_stats = KLStats(self.n_envs)
        if isinstance(self.rollout_buffer, KLPenaltyRolloutBuffer):
            self.rollout_buffer.penalty = self._kl_penalty

    def _kl_penalty(self, obs: dict, actions: np.ndarray, log_prob: th.Tensor, episode_start: np.ndarray) -> np.ndarray:
        obs_t = obs_as_tensor(obs, self.device)
        ref = self.policy.reference_log_prob(obs_t, th.as_tensor(actions, device=self.device))
        kl = (log_prob.detach().float().flatten() - ref.float()).cpu().numpy()  # (n_envs,)
        self.kl_stats.add(kl, episode_start)
        return (self.kl_coef * kl).astype(np.float32)

    def collect_rollouts(self, env: Any, callback: Any, rollout_buffer: Any, n_rollout_steps: int) -> bool:
        if not self.uses_fast_path():
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)  # type: ignore[misc]
        self.policy.set_training_mode(False)
        callback.on_rollout_start()
        batches: list[EpisodeBatch] = []
        collected = 0
        while collected < n_rollout_steps * env.num_envs:  # whole episodes, at least n_steps per env
            batch = generate_episodes(self.policy, env)
            batches.append(batch)
            collected += batch.num_steps
            self.num_timesteps += batch.num_steps
            self._update_info_buffer(batch.infos)
            callback.update_locals(locals())
            if not callback.on_step():
                return False
        self.episode_batch = self._prepare_episodes(batches)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    @th.no_grad()
    def _prepare_episodes(self, batches: list[EpisodeBatch]) -> EpisodeBatch:
        """Old log-probs and values, reference log-probs, KL-penalised rewards and GAE, per episode batch."""
        batch = EpisodeBatch(*(th.cat([getattr(b, f) for b in batches]) for f in
                               ("prompt_ids", "prompt_mask", "tokens", "step_mask", "env_rewards")),
                             infos=[i for b in batches for i in b.infos])
        log_probs, values, refs = [], [], []
        for rows in self.episode_minibatches(batch, shuffle=False):
            lp, v, _ = evaluate_episodes(self.policy, batch, rows)
            log_probs.append(lp.float())
            values.append(v.float())
            refs.append(reference_log_probs(self.policy, batch, rows).float())
        batch.log_probs, batch.values, batch.ref_log_probs = th.cat(log_probs), th.cat(values), th.cat(refs)
        mask = batch.step_mask.float()
        kl = (batch.log_probs - batch.ref_log_probs) * mask  # (E, T)
        batch.rewards = batch.env_rewards - self.kl_coef * kl
        batch.advantages, batch.returns = compute_gae(batch.rewards, batch.values, batch.step_mask,
                                                      self.gamma, getattr(self, "gae_lambda", 1.0))
        self.kl_stats.tokens.extend(kl[batch.step_mask].tolist())
        self.kl_stats.episodes.extend(kl.sum(-1).tolist())
        for episode_return, length in zip(batch.env_rewards.sum(-1).tolist(), batch.step_mask.sum(-1).tolist()):
            self.ep_info_buffer.extend([{"r": episode_return, "l": length}])
        return batch

    def episode_minibatches(self, batch: EpisodeBatch, shuffle: bool = True, size: int | None = None):
        """Row indices of episode minibatches holding about ``batch_size`` steps each."""
        if size is None:
            steps_per_episode = max(1.0, batch.num_steps / batch.num_episodes)
            size = max(1, round(getattr(self, "batch_size", batch.num_steps) / steps_per_episode))
        order = th.randperm(batch.num_episodes, device=batch.tokens.device) if shuffle else \
            th.arange(batch.num_episodes, device=batch.tokens.device)
        for start in range(0, batch.num_episodes, size):
            yield order[start : start + size]

    def _update_info_buffer(self, infos: list[dict[str, Any]], dones: np.ndarray | None = None) -> None:
        super()._update_info_buffer(infos, dones)  # type: ignore[misc]
        for info in infos:
            for name, value in info.get("metrics", {}).items():
                self.metric_buffer[name].append(float(value))

    def train(self) -> None:
        if self._is_text_policy():
            tok_kl, ep_kl = self.kl_stats.pop()
            if tok_kl is not None:
                self.logger.record("rollout/kl_per_token", tok_kl)
            if ep_kl is not None:
                self.logger.record("rollout/kl", ep_kl)
                self.kl_controller.update(ep_kl, self.n_steps * self.n_envs)
            self.logger.record("train/kl_coef", self.kl_coef)
        for name, values in self.metric_buffer.items():
            if values:
                self.logger.record(f"rollout/{name}", float(np.mean(values)))
        if self.uses_fast_path():
            self.train_episodes(self.episode_batch)
        else:
            super().train()  # type: ignore[misc]
        if self._is_text_policy():
            entropy = self.policy.pop_mean_entropy()
            if entropy is not None:
                self.logger.record("train/entropy", entropy)
            self.logger.record("train/skipped_updates", self.policy.skipped_updates)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "kl_stats", "metric_buffer", "episode_batch"]  # type: ignore[misc]

    def save(self, path: Any, exclude: Any = None, include: Any = None) -> None:
        """SB3's ``save``, written atomically: a crash mid-write never leaves a half checkpoint."""
        if not isinstance(path, (str, os.PathLike)):
            return super().save(path, exclude=exclude, include=include)  # type: ignore[misc]
        final = Path(path)
        if final.suffix == "":
            final = final.with_suffix(".zip")  # SB3's own naming rule
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                super().save(handle, exclude=exclude, include=include)  # type: ignore[misc]
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
