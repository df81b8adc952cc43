"""What the wrappers the fast path keeps would have recorded: episode statistics, Monitor files, reward scaling.

The fast path replaces a wrapped env (or VecEnv) by one :class:`~textgym.vector.TokenVecEnv`; the
wrappers that leave the MDP as it is (:data:`agents.envs.FAST_PATH_WRAPPERS`) are then never
stepped. Their bookkeeping is done here instead, with their own objects where they live in this
process (their counters and CSV files advance as if they had been stepped):

- :class:`MonitorRecord`: SB3's ``Monitor`` / ``VecMonitor``: ``info["episode"] = {"r", "l", "t"}``
  (plus ``info_keywords``), their episode lists and their results file.
- :class:`EpisodeStatisticsRecord`: Gymnasium's ``RecordEpisodeStatistics``: ``info[stats_key]``
  and its queues.
- :class:`RewardNormalizer`: SB3's ``VecNormalize(norm_obs=False)``: rewards scaled by the running
  statistics of the discounted return, updated as ``VecNormalize.step_wait`` updates them.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np


class MonitorRecord:
    """Writes episode ends as SB3's ``Monitor`` (one per env) or ``VecMonitor`` (one for all) would.

    Args:
        monitors: Per env, the wrapper object when it lives in this process (its lists, counters and
            results file are updated), else ``None``.
        t_starts: Per env, the wrapper's start time (``"t"`` counts from it).
        info_keywords: Per env, the info keys the wrapper copies into its episode entry.
        sees_scaled_rewards: The wrapper sits above a ``VecNormalize``: its returns are of the scaled rewards.
    """

    def __init__(self, monitors: Sequence[Any | None], t_starts: Sequence[float],
                 info_keywords: Sequence[Sequence[str]], sees_scaled_rewards: bool = False) -> None:
        self.monitors, self.t_starts, self.info_keywords = list(monitors), list(t_starts), list(info_keywords)
        self.sees_scaled_rewards = sees_scaled_rewards

    @classmethod
    def of(cls, monitor: Any, num_envs: int, sees_scaled_rewards: bool = False) -> "MonitorRecord":
        """For one in-process ``VecMonitor`` that watches all ``num_envs`` envs."""
        return cls([monitor] * num_envs, [monitor.t_start] * num_envs, [monitor.info_keywords] * num_envs,
                   sees_scaled_rewards)

    def __call__(self, i: int, info: dict[str, Any], episode_return: float, length: int) -> None:
        now, monitor = time.time(), self.monitors[i]
        vec = monitor is not None and hasattr(monitor, "venv")
        entry = {"r": episode_return if vec else round(episode_return, 6), "l": length,
                 "t": round(now - self.t_starts[i], 6)}
        for key in self.info_keywords[i]:
            entry[key] = info[key]
        if monitor is not None:
            if vec:
                monitor.episode_count += 1
            else:
                monitor.episode_returns.append(episode_return)
                monitor.episode_lengths.append(length)
                monitor.episode_times.append(now - self.t_starts[i])
                monitor.total_steps += length
            if monitor.results_writer:
                monitor.results_writer.write_row(entry)
        info["episode"] = entry


class EpisodeStatisticsRecord:
    """Writes episode ends as Gymnasium's ``RecordEpisodeStatistics`` would (``"t"``: seconds since the reset).

    Args:
        wrappers: Per env, the wrapper object when it lives in this process (its queues and
            ``episode_count`` are updated), else ``None``.
        stats_keys: Per env, the info key it writes (``"episode"`` by default).
        started: Returns the time (``time.perf_counter()``) at which env ``i``'s episode began.
    """

    def __init__(self, wrappers: Sequence[Any | None], stats_keys: Sequence[str], started: Any) -> None:
        self.wrappers, self.stats_keys, self.started = list(wrappers), list(stats_keys), started

    def __call__(self, i: int, info: dict[str, Any], episode_return: float, length: int) -> None:
        seconds = round(time.perf_counter() - self.started(i), 6)
        info[self.stats_keys[i]] = {"r": episode_return, "l": length, "t": seconds}
        wrapper = self.wrappers[i]
        if wrapper is not None:
            wrapper.time_queue.append(seconds)
            wrapper.return_queue.append(episode_return)
            wrapper.length_queue.append(length)
            wrapper.episode_count += 1


class RewardNormalizer:
    """SB3's ``VecNormalize`` reward scaling, applied to a whole lockstep rollout at once.

    At each step ``t`` the envs that acted update their discounted return ``R = gamma * R + r``,
    the ``VecNormalize``'s ``ret_rms`` is updated with those returns (when it is ``training``), and
    every reward of that step becomes ``clip(r / sqrt(ret_rms.var + epsilon), -clip_reward,
    clip_reward)`` (when ``norm_reward``): ``VecNormalize.step_wait``'s order. Envs that finished
    early and wait for the others take no step, so they add nothing to the statistics. With equal
    episode lengths this is exactly what ``VecNormalize`` computes step by step (tested).

    The statistics are those of the ``VecNormalize`` object itself, so ``VecNormalize.save``/``load``
    keep working; its ``get_original_reward()`` gives the raw rewards of the rollout's last step.

    Args:
        vec_normalize: An SB3 ``VecNormalize`` made with ``norm_obs=False``.
    """

    def __init__(self, vec_normalize: Any) -> None:
        self.vec_normalize = vec_normalize

    def __call__(self, rewards: np.ndarray, step_mask: np.ndarray) -> np.ndarray:
        """Scaled rewards ``(N, T)`` of raw ``rewards: (N, T)``; ``step_mask: (N, T)`` bool, which envs acted."""
        norm = self.vec_normalize
        scaled = np.zeros_like(rewards)  # (N, T)
        returns = np.zeros(rewards.shape[0])  # every rollout starts new episodes
        ends = step_mask.sum(1) - 1  # (N,) the step at which each episode ended
        for t in range(int(ends.max()) + 1 if len(ends) else 0):
            acted = step_mask[:, t]  # (N,)
            if norm.training:
                returns[acted] = returns[acted] * norm.gamma + rewards[acted, t]
                norm.ret_rms.update(returns[acted])
            scaled[:, t] = np.where(acted, norm.normalize_reward(rewards[:, t]), 0.0)
            returns[ends == t] = 0.0
        if rewards.shape[1]:
            norm.old_reward = rewards[np.arange(len(ends)), np.maximum(ends, 0)]
        norm.returns = np.zeros(norm.num_envs)
        return scaled.astype(rewards.dtype)
