"""What agents.PPO and agents.A2C add to SB3: a frozen reference, the KL penalty, text metrics."""

from __future__ import annotations

import copy
import os
import tempfile
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.utils import obs_as_tensor

from agents.buffers import KLPenaltyRolloutBuffer
from agents.kl import make_kl_controller
from agents.policies import TransformerPolicy


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

    Adds: a frozen reference copy of the initial LM (no gradients, saved with the agent), the
    per-token penalty ``-kl_coef * (log pi - log pi_ref)`` on every reward, a fixed or adaptive
    ``kl_coef``, and logs of ``kl``, ``kl_coef``, ``entropy``, skipped non-finite updates and the
    env's task metrics.
    """

    policy: Any
    reference: th.nn.Module | None = None

    def _init_text(self, kl_coef: float, kl_target: float | None, kl_horizon: int) -> None:
        self.kl_controller = make_kl_controller(kl_coef, kl_target, kl_horizon)
        self.metric_buffer: dict[str, deque] = defaultdict(lambda: deque(maxlen=100))

    @property
    def kl_coef(self) -> float:
        return self.kl_controller.value

    def _is_text_policy(self) -> bool:
        return isinstance(self.policy_class, type) and issubclass(self.policy_class, TransformerPolicy)

    def _setup_model(self) -> None:
        if self._is_text_policy() and self.rollout_buffer_class is None:
            self.rollout_buffer_class = KLPenaltyRolloutBuffer
        super()._setup_model()  # type: ignore[misc]
        if not self._is_text_policy():
            return
        # The reference is the initial policy: a frozen copy, not a second trainable model.
        self.reference = copy.deepcopy(self.policy.lm).eval().requires_grad_(False)
        self.kl_stats = KLStats(self.n_envs)
        if isinstance(self.rollout_buffer, KLPenaltyRolloutBuffer):
            self.rollout_buffer.penalty = self._kl_penalty

    def _kl_penalty(self, obs: dict, actions: np.ndarray, log_prob: th.Tensor, episode_start: np.ndarray) -> np.ndarray:
        obs_t = obs_as_tensor(obs, self.device)
        ref = self.policy.reference_log_prob(self.reference, obs_t, th.as_tensor(actions, device=self.device))
        kl = (log_prob.detach().float().flatten() - ref.float()).cpu().numpy()  # (n_envs,)
        self.kl_stats.add(kl, episode_start)
        return (self.kl_coef * kl).astype(np.float32)

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
        super().train()  # type: ignore[misc]
        if self._is_text_policy():
            entropy = self.policy.pop_mean_entropy()
            if entropy is not None:
                self.logger.record("train/entropy", entropy)
            self.logger.record("train/skipped_updates", self.policy.skipped_updates)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "reference", "kl_stats", "metric_buffer"]  # type: ignore[misc]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()  # type: ignore[misc]
        if self.reference is not None:
            state_dicts = [*state_dicts, "reference"]
        return state_dicts, variables

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
