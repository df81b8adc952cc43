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


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_ppo_ratio_starts_at_one(precision):
    """At learning_rate=0 the update's log-probs equal the rollout's old ones on every token: |ratio - 1| < 1e-3.

    Under bf16 the KV-cache decode and the teacher-forced pass disagree by up to a bf16 step, so the
    old log-probs come from a teacher-forced pass (recompute_log_probs, automatic under bf16) whose
    padding columns are dropped in aligned blocks, so that every minibatch computes a row alike.
    The weights are scaled up so that bf16 rounding shows (1 % without the recompute).
    """
    from tiny import tiny_llama_config, tiny_tokenizer, uneven_env

    from agents import PPO
    from agents.rollout import evaluate_episodes
    from textgym.vector import TokenVecEnv

    tok = tiny_tokenizer()
    venv = TokenVecEnv(uneven_env(tok, 8), 8, device="cpu")
    venv.seed(0)
    model = PPO("TransformerPolicy", venv, n_steps=8, batch_size=24, n_epochs=1, learning_rate=0.0, seed=0,
                policy_kwargs=dict(model_name=None, precision=precision,
                                   model_config=tiny_llama_config(len(tok), hidden_size=64, intermediate_size=128)))
    assert model.policy.recomputes_log_probs() == (precision == "bf16")
    for p in model.policy.lm.parameters():
        if p.dim() > 1:
            th.nn.init.normal_(p, std=0.1)
    model.learn(8)
    worst = 0.0
    with th.no_grad():
        for batch in model.rollout_buffer.get(24):  # the update's shuffled minibatches
            with model.policy.autocast():
                assert model.policy.logits_from_hidden(th.zeros(1, 64)).dtype == th.float32
            log_probs, _, _ = evaluate_episodes(model.policy, batch)
            ratio = (log_probs - batch.log_probs).exp()
            worst = max(worst, float((ratio - 1).abs()[batch.step_mask].max()))
    print(f"{precision}: max |ratio - 1| = {worst:.2e}")
    assert worst < 1e-3
