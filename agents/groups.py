"""Group baselines: advantages from the k completions of each prompt (RLOO, GRPO), no critic needed.

The fast path's episode rows come in blocks of the env's ``N`` envs, and the env gives each prompt
to ``k = group_size`` consecutive envs, so rows ``j*k .. j*k+k-1`` of a rollout are one prompt's group.
"""

from __future__ import annotations

import torch as th


def episode_returns(rewards: th.Tensor, step_mask: th.Tensor) -> th.Tensor:
    """Each episode's total reward. ``(E, T), (E, T) -> (E,)``."""
    return (rewards * step_mask.to(rewards.dtype)).sum(-1)


def grouped(values: th.Tensor, group_size: int) -> th.Tensor:
    """``(E,) -> (E / k, k)``: one row per prompt group.

    >>> grouped(th.arange(6.0), 3)
    tensor([[0., 1., 2.],
            [3., 4., 5.]])
    """
    if group_size < 2 or values.shape[0] % group_size:
        raise ValueError(f"a group baseline needs group_size >= 2 dividing the {values.shape[0]} episodes, "
                         f"got group_size={group_size}")
    return values.view(-1, group_size)


def leave_one_out_advantages(returns: th.Tensor, group_size: int) -> th.Tensor:
    """RLOO: each episode's return minus the mean of the other ``k - 1`` in its group. ``(E,) -> (E,)``.

    The baseline never uses the episode's own sample, so the gradient estimate stays unbiased.

    >>> leave_one_out_advantages(th.tensor([1.0, 0.0, 0.0, 2.0, 2.0, 2.0]), 3)
    tensor([ 1.0000, -0.5000, -0.5000,  0.0000,  0.0000,  0.0000])
    """
    groups = grouped(returns, group_size)  # (G, k)
    others = (groups.sum(-1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).reshape(-1)


def group_mean_advantages(returns: th.Tensor, group_size: int) -> th.Tensor:
    """PPO/A2C's ``baseline="group_mean"``: each return minus its group's mean. ``(E,) -> (E,)``.

    The leave-one-out advantage scaled by ``(k - 1) / k``: the same direction, no critic to fit.

    >>> group_mean_advantages(th.tensor([1.0, 0.0, 2.0, 2.0]), 2)
    tensor([ 0.5000, -0.5000,  0.0000,  0.0000])
    """
    groups = grouped(returns, group_size)  # (G, k)
    return (groups - groups.mean(-1, keepdim=True)).reshape(-1)


def group_normalized_advantages(returns: th.Tensor, group_size: int, eps: float = 1e-4) -> th.Tensor:
    """GRPO: each return standardised within its group, ``(r - mean) / (std + eps)``. ``(E,) -> (E,)``.

    A group whose completions all score the same gets advantage 0 (nothing to learn from it).

    >>> group_normalized_advantages(th.tensor([1.0, 0.0, 3.0, 3.0]), 2)
    tensor([ 0.7070, -0.7070,  0.0000,  0.0000])
    """
    groups = grouped(returns, group_size)  # (G, k)
    mean, std = groups.mean(-1, keepdim=True), groups.std(-1, keepdim=True)
    return ((groups - mean) / (std + eps)).reshape(-1)


def per_step(advantages: th.Tensor, step_mask: th.Tensor) -> th.Tensor:
    """An episode's advantage on each of its steps (0 after the end). ``(E,), (E, T) -> (E, T)``."""
    return advantages[:, None] * step_mask.to(advantages.dtype)
