"""Checks that need a CUDA device: run by benchmarks/gpu_check.py (``pytest -m gpu``); skipped elsewhere."""

from __future__ import annotations

import warnings

import pytest
import torch as th
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer, uneven_env

from agents import PPO
from agents.rollout import evaluate_episodes, generate_episodes
from textgym.devices import supports_bf16
from textgym.vector import TokenVecEnv

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")]


def agent(venv, tok, **kwargs) -> PPO:
    policy_kwargs = dict(model_name=None, model_config=tiny_llama_config(len(tok), hidden_size=64, intermediate_size=128),
                         **kwargs.pop("policy_kwargs", {}))
    kwargs = {"n_steps": 8, "batch_size": 24, "n_epochs": 1, "learning_rate": 0.0, "seed": 0, **kwargs}
    return PPO("TransformerPolicy", venv, device="cuda", policy_kwargs=policy_kwargs, **kwargs)


def test_precision_auto_is_native_bf16_with_fp32_weights():
    tok = tiny_tokenizer()
    model = agent(TokenVecEnv(tiny_env(tok), 4, device="cuda"), tok)
    assert model.policy.uses_bf16() == supports_bf16("cuda")
    assert {p.dtype for p in model.policy.parameters()} == {th.float32}
    assert {p.device.type for p in model.policy.parameters()} == {"cuda"}


def test_rollout_syncs_do_not_grow_with_its_length():
    """CUDA's sync debug mode warns at every synchronizing call: their number must not depend on the length."""
    tok = tiny_tokenizer()
    counts = {}
    for horizon in (8, 32):
        venv = TokenVecEnv(uneven_env(tok, horizon), 64, device="cuda")
        venv.eos_token_id = -1  # every rollout runs all `horizon` steps
        model = agent(venv, tok)
        generate_episodes(model.policy, venv)  # warm-up
        th.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                generate_episodes(model.policy, venv, lambda loc: True)
        finally:
            th.cuda.set_sync_debug_mode("default")
        counts[horizon] = sum("synchroniz" in str(w.message) for w in caught)
    print(f"synchronizing calls per rollout of 8 and 32 tokens, 64 envs: {counts}")
    assert counts[8] == counts[32] <= 30


def test_the_same_seed_gives_the_same_rollouts():
    """The end of a rollout is read late on a GPU; the random state is set back, so samples stay reproducible."""
    tok = tiny_tokenizer()
    runs = []
    for _ in range(2):
        venv = TokenVecEnv(tiny_env(tok, max_new_tokens=12), 2, device="cuda")
        venv.seed(0)
        model = agent(venv, tok)
        venv.reset()
        th.manual_seed(0)
        runs.append(([generate_episodes(model.policy, venv).tokens.cpu() for _ in range(8)], th.cuda.get_rng_state()))
    assert all(th.equal(a, b) for a, b in zip(runs[0][0], runs[1][0]))
    assert th.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_the_ppo_ratio_starts_at_one(precision):
    """|ratio - 1| < 1e-3 at learning_rate=0 (under bf16 the old log-probs come from a teacher-forced pass)."""
    tok = tiny_tokenizer()
    venv = TokenVecEnv(uneven_env(tok, 8), 16, device="cuda")
    venv.seed(0)
    model = agent(venv, tok, policy_kwargs=dict(precision=precision))
    for p in model.policy.lm.parameters():
        if p.dim() > 1:
            th.nn.init.normal_(p, std=0.1)
    model.learn(8)
    worst = 0.0
    with th.no_grad():
        for batch in model.rollout_buffer.get(24):
            log_probs, _, _ = evaluate_episodes(model.policy, batch)
            worst = max(worst, float(((log_probs - batch.log_probs).exp() - 1).abs()[batch.step_mask].max()))
    print(f"{precision} (bf16: {model.policy.uses_bf16()}): max |ratio - 1| = {worst:.2e}")
    assert worst < 1e-3
