"""Per-token terms against the frozen reference policy (the KL penalty, the fluency bonus) and the KL
coefficient controllers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch as th


def token_kl(log_probs, ref_log_probs, mask=None):
    """Per-token KL estimate ``log pi - log pi_ref`` of the sampled actions (zero where ``mask`` is 0).

    The one place the sign of the penalty is written: every reward subtracts ``kl_coef`` times this.
    Works on tensors of any matching shape (``(E, T)`` on the fast path, ``(n_envs,)`` per stock step).

    >>> token_kl(th.tensor([-1.0, -2.0]), th.tensor([-1.5, -1.0]), th.tensor([True, False])).tolist()
    [0.5, -0.0]
    """
    kl = log_probs.float() - ref_log_probs.float()
    return kl if mask is None else kl * mask.to(kl.dtype)


def fluency_bonus(ref_log_probs, step_mask, coef):
    """Per-token reward ``coef * log pi_ref(token) / n`` of episodes of ``n`` tokens: each episode's sum is ``coef``
    times its mean log-likelihood under the reference, i.e. ``-coef * log`` of its perplexity there.

    Unlike the KL penalty it has no entropy part (``-log pi``): it pays for text the reference finds likely,
    not for staying close to the reference's distribution. Divided by ``n`` so that it does not favour
    short outputs. ``ref_log_probs, step_mask`` are ``(E, T)``.

    >>> fluency_bonus(th.tensor([[-1.0, -3.0, 0.0]]), th.tensor([[1, 1, 0]]), 0.5).tolist()
    [[-0.25, -0.75, 0.0]]
    """
    mask = step_mask.to(th.float32)
    lengths = mask.sum(-1, keepdim=True).clamp(min=1.0)
    return coef * ref_log_probs.float() * mask / lengths


class KLStats:
    """Per-token KL values of one rollout, and their sums per finished episode (what ``rollout/kl*`` logs)."""

    def __init__(self, n_envs: int) -> None:
        self.running = np.zeros(n_envs)
        self.tokens: list[float] = []
        self.episodes: list[float] = []

    def add(self, kl: np.ndarray, episode_start: np.ndarray) -> None:
        """One stock-path step of the ``n_envs`` envs; an env whose episode starts closes its running sum."""
        for i in np.flatnonzero(episode_start):
            self.episodes.append(float(self.running[i]))
            self.running[i] = 0.0
        self.running += kl
        self.tokens.extend(kl.tolist())

    def add_episodes(self, kl: th.Tensor, step_mask: th.Tensor) -> None:
        """Whole episodes from the fast path: ``kl, step_mask`` are ``(E, T)``, ``kl`` zero off the mask."""
        self.tokens.extend(kl[step_mask.bool()].tolist())
        self.episodes.extend(kl.sum(-1).tolist())

    def pop(self) -> tuple[float | None, float | None]:
        """(mean per-token KL, mean per-episode KL) since the last pop; ``None`` where nothing was seen."""
        tok = float(np.mean(self.tokens)) if self.tokens else None
        ep = float(np.mean(self.episodes)) if self.episodes else None
        self.tokens, self.episodes = [], []
        return tok, ep


@dataclass
class FixedKLController:
    """A constant ``kl_coef``.

    >>> c = FixedKLController(0.1); c.update(kl=5.0, n_steps=100); c.value
    0.1
    """

    value: float

    def update(self, kl: float, n_steps: int) -> None:
        """Nothing to adapt."""


@dataclass
class AdaptiveKLController:
    """Move ``kl_coef`` so the per-episode KL tracks ``target`` (Ziegler et al. 2019, sec. 2.2).

    ``coef <- coef * (1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon)``.

    >>> c = AdaptiveKLController(0.1, target=6.0, horizon=1000)
    >>> c.update(kl=12.0, n_steps=500); round(c.value, 4)  # KL too high: the penalty grows
    0.11
    >>> c.update(kl=1.0, n_steps=500); round(c.value, 4)  # KL too low: it shrinks
    0.099
    """

    value: float
    target: float
    horizon: int = 10_000

    def __post_init__(self) -> None:
        if not self.target > 0 or not self.horizon > 0:
            raise ValueError(f"kl_target and kl_horizon must be > 0, got {self.target}, {self.horizon}")

    def update(self, kl: float, n_steps: int) -> None:
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def make_kl_controller(kl_coef: float, kl_target: float | None, kl_horizon: int):
    """Fixed when ``kl_target`` is None, else adaptive."""
    if not kl_coef >= 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    if kl_target is None:
        return FixedKLController(float(kl_coef))
    return AdaptiveKLController(float(kl_coef), float(kl_target), int(kl_horizon))
