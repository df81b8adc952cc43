"""Rollout buffers for text agents: SB3's per-step buffer with a KL penalty, and the episode buffer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer


# (observations, actions, log_probs, episode_starts) -> per-env penalty to subtract from the reward
PenaltyFn = Callable[[dict[str, np.ndarray], np.ndarray, th.Tensor, np.ndarray], np.ndarray]

_TENSORS = ("prompt_ids", "prompt_mask", "tokens", "step_mask", "env_rewards", "log_probs", "values",
            "ref_log_probs", "rewards", "advantages", "returns", "raw_rewards", "allowed")


class KLPenaltyRolloutBuffer(DictRolloutBuffer):
    """SB3's DictRolloutBuffer that subtracts a per-token penalty from each reward as it is stored.

    The algorithm sets :attr:`penalty` to its KL term ``kl_coef * (log pi - log pi_ref)``; this keeps
    SB3's own ``collect_rollouts`` untouched (no fork) while every stored reward carries the penalty.
    Used on the stock (one transition per step) path.
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
    tensors ``(E, T)``: ``env_rewards``, ``log_probs`` and ``values`` (old policy, recorded while
    sampling), ``ref_log_probs``, ``rewards`` (env reward minus the KL penalty), ``advantages``,
    ``returns``; ``raw_rewards``: the env's own rewards when ``env_rewards`` were rescaled (a
    ``VecNormalize``) or given the fluency bonus (``fluency_coef``), else None.
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
    raw_rewards: th.Tensor | None = None
    allowed: th.Tensor | None = None  # (E, T, V) bool: the tokens each step could sample (NLPO's masks)
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

    def select(self, rows: th.Tensor | slice) -> "EpisodeBatch":
        """The episodes ``rows`` (every tensor field indexed alike; infos are not carried)."""
        return EpisodeBatch(**{name: None if getattr(self, name) is None else getattr(self, name)[rows]
                               for name in _TENSORS})

    @staticmethod
    def concat(batches: list["EpisodeBatch"]) -> "EpisodeBatch":
        """Stack the episodes of several batches (same prompt and horizon widths)."""
        merged = {name: None if getattr(batches[0], name) is None else th.cat([getattr(b, name) for b in batches])
                  for name in _TENSORS}
        return EpisodeBatch(**merged, infos=[i for b in batches for i in b.infos])



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


class EpisodeRolloutBuffer(RolloutBuffer):
    """SB3's RolloutBuffer for the fast path: whole episodes as token tensors, not per-step arrays.

    The rollout adds lockstep batches of episodes (:meth:`add_episodes`, with the log-probs and
    values recorded while sampling); the algorithm adds the reference log-probs, the KL-penalised
    rewards and its advantages (GAE over the token axis for PPO/A2C, group baselines for RLOO/GRPO); :meth:`get` yields shuffled episode minibatches of about ``batch_size``
    steps each, so the update evaluates each episode in one teacher-forced forward.
    """

    def reset(self) -> None:
        self.batches: list[EpisodeBatch] = []
        self.episodes: EpisodeBatch | None = None
        self.pos, self.full, self.generator_ready = 0, False, False

    def add(self, *args, **kwargs) -> None:
        raise TypeError("EpisodeRolloutBuffer holds whole episodes: use add_episodes(batch)")

    def add_episodes(self, batch: EpisodeBatch) -> None:
        """Store one batch of finished episodes; :attr:`episodes` packs everything stored so far."""
        self.batches.append(batch)
        self.episodes = batch if len(self.batches) == 1 else EpisodeBatch.concat(self.batches)
        self.full = True

    @property
    def num_transitions(self) -> int:
        """Actions actually taken (the steps of every episode, EOS included)."""
        return 0 if self.episodes is None else self.episodes.num_steps

    def compute_returns_and_advantage(self, last_values: th.Tensor | None = None,
                                      dones: np.ndarray | None = None) -> None:  # type: ignore[override]
        """Not here: the algorithm scores the episodes (KL-penalised rewards, its own advantages: see
        ``TextAlgorithm._score_episodes``), since RLOO and GRPO do not use GAE."""
        raise TypeError("EpisodeRolloutBuffer's rewards and advantages are set by the algorithm "
                        "(TextAlgorithm._score_episodes), not by compute_returns_and_advantage")

    def row_chunks(self, batch_size: int, shuffle: bool = False) -> Iterator[th.Tensor]:
        """Row indices of episode groups holding about ``batch_size`` steps each."""
        batch = self.episodes
        steps_per_episode = max(1.0, batch.num_steps / max(1, batch.num_episodes))
        size = max(1, round(batch_size / steps_per_episode))
        device = batch.tokens.device
        order = th.randperm(batch.num_episodes, device=device) if shuffle else th.arange(batch.num_episodes, device=device)
        for start in range(0, batch.num_episodes, size):
            yield order[start : start + size]

    def get(self, batch_size: int | None = None) -> Iterator[EpisodeBatch]:  # type: ignore[override]
        """Shuffled episode minibatches of about ``batch_size`` steps (all episodes at once when ``None``)."""
        if batch_size is None:
            yield self.episodes
            return
        for rows in self.row_chunks(batch_size, shuffle=True):
            yield self.episodes.select(rows)
