"""PPO and A2C losses over episode-packed steps (the fast path), written like SB3's."""

from __future__ import annotations

from dataclasses import dataclass

import torch as th


def masked_mean(x: th.Tensor, mask: th.Tensor) -> th.Tensor:
    """Mean of ``x`` over the steps where ``mask`` is 1 (both ``(E, T)``)."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def normalize(advantages: th.Tensor, mask: th.Tensor) -> th.Tensor:
    """Zero mean, unit std over the valid steps (SB3's per-minibatch advantage normalisation)."""
    mean = masked_mean(advantages, mask)
    var = masked_mean((advantages - mean) ** 2, mask) * mask.sum() / (mask.sum() - 1).clamp(min=1)  # unbiased, as th.std
    return (advantages - mean) / (var.sqrt() + 1e-8)


def k3_kl(log_probs: th.Tensor, ref_log_probs: th.Tensor, mask: th.Tensor) -> th.Tensor:
    """The KL to the reference as a loss term: the ``k3`` estimator ``exp(r) - r - 1``, ``r = ref - logp``,
    per sampled token, averaged over the valid steps (non-negative, unbiased, lower variance than ``-r``).

    >>> round(float(k3_kl(th.tensor([[-1.0, -2.0]]), th.tensor([[-1.0, -1.0]]), th.tensor([[1.0, 1.0]]))), 4)
    0.3591
    """
    to_ref = ref_log_probs - log_probs
    return masked_mean(th.exp(to_ref) - to_ref - 1, mask)


def _value_loss(values: th.Tensor | None, returns: th.Tensor, mask: th.Tensor) -> th.Tensor:
    """Mean squared error of the critic; 0 when no critic runs (a group-mean baseline)."""
    return th.zeros((), device=returns.device) if values is None else masked_mean((returns - values) ** 2, mask)


@dataclass
class LossParts:
    loss: th.Tensor
    policy_loss: th.Tensor
    value_loss: th.Tensor
    entropy_loss: th.Tensor
    approx_kl: th.Tensor
    clip_fraction: th.Tensor


def ppo_loss(log_probs, old_log_probs, advantages, values, old_values, returns, entropy, mask, *,
             clip_range: float, clip_range_vf: float | None, ent_coef: float, vf_coef: float,
             normalize_advantage: bool) -> LossParts:
    """SB3's PPO loss (clipped surrogate + value + entropy) averaged over valid steps. Inputs ``(E, T)``."""
    mask = mask.float()
    if normalize_advantage and mask.sum() > 1:
        advantages = normalize(advantages, mask)
    log_ratio = log_probs - old_log_probs
    ratio = th.exp(log_ratio)
    surrogate = th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range))
    policy_loss = -masked_mean(surrogate, mask)
    if clip_range_vf is not None and values is not None:
        values = old_values + th.clamp(values - old_values, -clip_range_vf, clip_range_vf)
    value_loss = _value_loss(values, returns, mask)
    entropy_loss = -masked_mean(entropy, mask)
    with th.no_grad():
        approx_kl = masked_mean((ratio - 1) - log_ratio, mask)
        clip_fraction = masked_mean(((ratio - 1).abs() > clip_range).float(), mask)
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    return LossParts(loss, policy_loss, value_loss, entropy_loss, approx_kl, clip_fraction)


def a2c_loss(log_probs, advantages, values, returns, entropy, mask, *, ent_coef: float, vf_coef: float,
             normalize_advantage: bool) -> LossParts:
    """SB3's A2C loss averaged over valid steps. Inputs ``(E, T)``."""
    mask = mask.float()
    if normalize_advantage and mask.sum() > 1:
        advantages = normalize(advantages, mask)
    policy_loss = -masked_mean(advantages * log_probs, mask)
    value_loss = _value_loss(values, returns, mask)
    entropy_loss = -masked_mean(entropy, mask)
    zero = th.zeros((), device=log_probs.device)
    return LossParts(policy_loss + ent_coef * entropy_loss + vf_coef * value_loss, policy_loss, value_loss,
                     entropy_loss, zero, zero)
