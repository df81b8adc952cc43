"""agents.logprobs: the memory-light log-prob + entropy Function against autograd on the plain formula."""

from __future__ import annotations

import pytest
import torch as th

from agents.logprobs import action_log_probs, log_probs_and_entropy
from agents.policies import sampling_logits


def plain(logits, actions):
    """The formula the Function replaces. Its backward turns -inf (or -3e38 times a gradient that
    overflows) into NaN rows (0 * inf), so masked logits become -1e4 first: the same distribution
    (exp underflows to 0), and gradient 0 there."""
    logits = logits.clamp(min=-1e4)
    log_softmax = th.log_softmax(logits, dim=-1)
    entropy = -(log_softmax.exp() * log_softmax).sum(-1)
    return log_softmax.gather(-1, actions.unsqueeze(-1)).squeeze(-1), entropy


def masked_logits(shape, dtype, masked: str | None):
    """Random logits; some entries -inf (masked="-inf") or top-k's finite floor (masked="top_k")."""
    g = th.Generator().manual_seed(0)
    logits = 3 * th.randn(shape, generator=g, dtype=dtype)
    if masked == "-inf":
        drop = th.rand(shape, generator=g) < 0.4
        drop[..., 0] = False  # every row keeps a token
        logits = logits.masked_fill(drop, float("-inf"))
    elif masked == "top_k":
        logits = sampling_logits(logits, temperature=0.8, top_k=3, top_p=None).to(dtype)
    return logits


def kept_actions(logits, g_seed=1):
    """Actions sampled from the distribution (never a probability-0 token)."""
    g = th.Generator().manual_seed(g_seed)
    probs = th.softmax(logits.double(), -1).reshape(-1, logits.shape[-1])
    return th.multinomial(probs, 1, generator=g).view(logits.shape[:-1])


@pytest.mark.parametrize("masked", [None, "-inf", "top_k"])
def test_gradcheck_float64(masked):
    logits = masked_logits((2, 3, 7), th.float64, masked)
    actions = kept_actions(logits)
    finite = th.isfinite(logits)
    base = th.where(finite, logits, th.zeros_like(logits)).requires_grad_(True)

    def f(z):  # perturb only the kept entries; the masked ones stay where top-k / -inf put them
        return log_probs_and_entropy(th.where(finite, z, logits), actions)

    assert th.autograd.gradcheck(f, (base,))


@pytest.mark.parametrize("masked", [None, "-inf", "top_k"])
def test_values_and_gradients_match_the_plain_formula(masked):
    logits = masked_logits((3, 5, 50), th.float32, masked)
    actions = kept_actions(logits)
    weights = th.randn(2, 3, 5, generator=th.Generator().manual_seed(2))  # arbitrary upstream gradients
    grads, outs = [], []
    for fn in (log_probs_and_entropy, plain):
        z = logits.clone().requires_grad_(True)
        log_probs, entropy = fn(z, actions)
        (weights[0] * log_probs + weights[1] * entropy).sum().backward()
        outs.append((log_probs, entropy))
        grads.append(z.grad)
    for new, old in zip(outs[0], outs[1]):
        assert th.isfinite(new).all()
        th.testing.assert_close(new, old, atol=1e-5, rtol=1e-5)
    assert not grads[0].isnan().any()
    th.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-5)
    th.testing.assert_close(action_log_probs(logits, actions), outs[1][0], atol=1e-5, rtol=1e-5)


def test_only_one_output_used():
    """A loss without the entropy term (or without the log-probs) still gets the right gradient."""
    logits = masked_logits((4, 9), th.float64, None)
    actions = kept_actions(logits)
    for pick in (0, 1):
        z1, z2 = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
        log_probs_and_entropy(z1, actions)[pick].sum().backward()
        plain(z2, actions)[pick].sum().backward()
        th.testing.assert_close(z1.grad, z2.grad)
