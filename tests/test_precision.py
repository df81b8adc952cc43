"""The policy's precision setting: bf16 autocast where asked (or on CUDA by default), fp32 otherwise."""

from __future__ import annotations

import pytest
import torch as th
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

from agents import PPO
from agents.rollout import evaluate_episodes, generate_episodes
from textgym.vector import TokenVecEnv


def agent(precision: str) -> PPO:
    tok = tiny_tokenizer()
    venv = TokenVecEnv(tiny_env(tok), 4, device="cpu")
    venv.seed(0)
    return PPO("TransformerPolicy", venv, n_steps=4, batch_size=16, seed=0,
               policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(tok)), precision=precision))


def test_auto_is_fp32_on_cpu_and_bf16_runs_under_autocast():
    fp32, bf16 = agent("auto"), agent("bf16")
    assert not fp32.policy.uses_bf16() and bf16.policy.uses_bf16()
    bf16.policy.load_state_dict(fp32.policy.state_dict())
    th.manual_seed(0)
    batch = generate_episodes(fp32.policy, fp32.env)
    with th.no_grad():
        lp32, _, _ = evaluate_episodes(fp32.policy, batch)
        lp16, _, _ = evaluate_episodes(bf16.policy, batch)
        with bf16.policy.autocast():
            assert th.ones(2, 2).matmul(th.ones(2, 2)).dtype == th.bfloat16
    assert lp16.dtype == th.float32  # the log-softmax always runs in fp32
    assert not th.equal(lp16, lp32)  # bf16 really ran ...
    th.testing.assert_close(lp16, lp32, atol=0.1, rtol=0.05)  # ... and is close to fp32
    bf16.learn(8)  # the update runs under bf16 autocast too


def test_bad_precision_is_a_clear_error():
    with pytest.raises(ValueError, match=r"precision must be one of \['auto', 'fp32', 'bf16'\], got 'fp16'"):
        agent("fp16")
