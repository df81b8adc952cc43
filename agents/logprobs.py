"""Action log-probs and entropies from logits without keeping (E, T, V) softmax tensors for backward."""

from __future__ import annotations

import torch as th
from torch.autograd.function import once_differentiable


def action_log_probs(logits: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """``log softmax(logits)[actions]`` without materialising the log-softmax. ``(..., V), (...) -> (...)``."""
    return logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1) - th.logsumexp(logits, dim=-1)


def _probs(logits: th.Tensor, logsumexp: th.Tensor) -> th.Tensor:
    """Softmax from the saved logsumexp (0 where a logit is -inf). ``(..., V), (..., 1) -> (..., V)``."""
    return (logits - logsumexp).exp_()


def _zero_where_impossible(x: th.Tensor, probs: th.Tensor) -> th.Tensor:
    """Zero ``x`` in place where the probability is 0: there ``logit * p`` is 0 (not NaN for -inf logits)."""
    return x.masked_fill_(probs == 0, 0.0)


class _LogProbEntropy(th.autograd.Function):
    """Log-prob of the taken action and entropy of a categorical distribution given by logits.

    Autograd through ``log_softmax``, ``exp`` and their product keeps several ``(..., V)``
    tensors per pass (V = 49152 for SmolLM2); this keeps only the logits and the logsumexp and
    recomputes the softmax ``p`` in backward:
    ``d log p_a / dz = onehot(a) - p`` and ``d H / dz = -p * (z - E_p[z])``.
    """

    @staticmethod
    def forward(ctx, logits: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        logsumexp = th.logsumexp(logits, dim=-1, keepdim=True)  # (..., 1)
        probs = _probs(logits, logsumexp)
        mean_logit = _zero_where_impossible(probs * logits, probs).sum(-1)  # E_p[z], (...)
        del probs
        log_probs = logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1) - logsumexp.squeeze(-1)
        entropy = logsumexp.squeeze(-1) - mean_logit  # H = log Z - E_p[z]
        ctx.save_for_backward(logits, actions, logsumexp, mean_logit)
        return log_probs, entropy

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_log_probs: th.Tensor, grad_entropy: th.Tensor):
        logits, actions, logsumexp, mean_logit = ctx.saved_tensors
        probs = _probs(logits, logsumexp)
        # -p * (g_logp + g_H * (z - E_p[z])), built in one buffer; then + g_logp at the action.
        grad = _zero_where_impossible(logits - mean_logit.unsqueeze(-1), probs)
        grad.mul_(grad_entropy.unsqueeze(-1)).add_(grad_log_probs.unsqueeze(-1)).mul_(probs).neg_()
        del probs
        grad.scatter_add_(-1, actions.unsqueeze(-1), grad_log_probs.unsqueeze(-1).to(grad.dtype))
        return grad, None


def log_probs_and_entropy(logits: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """Log-probs of ``actions`` and entropies under ``softmax(logits)``. ``(..., V), (...) -> (...), (...)``.

    Logits may hold -inf (masked tokens: probability 0, no NaN in values or gradients).
    """
    return _LogProbEntropy.apply(logits, actions.long())


def sample_with_log_probs(logits: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """One token per row and its log-prob, without waiting for the device. ``(B, V) -> (B,), (B,)``.

    The same draw as ``Categorical(logits=logits).sample()``, hence the same tokens for the same
    seed: ``torch.multinomial``'s one-sample path is ``argmax(p / q)`` with ``q ~ Exp(1)`` (the
    Gumbel-max trick in exponential form), written out here without the argument checks that make
    ``Categorical`` and ``multinomial`` copy a flag to the host on every call. Logits may hold the
    lowest finite value (masked tokens, probability 0; never drawn: ``0 / q = 0``).
    """
    log_p = logits - th.logsumexp(logits, dim=-1, keepdim=True)  # (B, V), normalised as Categorical does
    probs = th.softmax(log_p, dim=-1)  # Categorical's probs
    actions = (probs / th.empty_like(probs).exponential_(1)).argmax(-1)  # (B,)
    return actions, log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
