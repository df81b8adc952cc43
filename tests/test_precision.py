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


@pytest.fixture(scope="module")
def bf16_model(tmp_path_factory) -> str:
    """A tiny llama saved in bf16, as most hub checkpoints are (SmolLM2's included)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = tiny_tokenizer()
    cfg = tiny_llama_config(len(tok))
    th.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    folder = tmp_path_factory.mktemp("models") / "tiny-bf16"
    model.to(th.bfloat16).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_bf16_checkpoint_trains_fp32_master_weights(bf16_model, precision):
    tok = tiny_tokenizer()
    venv = TokenVecEnv(tiny_env(tok), 4, device="cpu")
    venv.seed(0)
    model = PPO("TransformerPolicy", venv, n_steps=4, batch_size=64, n_epochs=1, learning_rate=1e-5, seed=0,
                policy_kwargs=dict(model_name=bf16_model, precision=precision))
    policy = model.policy
    assert {p.dtype for p in policy.parameters()} == {th.float32}  # LM, value head and the frozen reference
    before = [p.detach().clone() for p in policy.lm.parameters()]
    model.learn(4)  # one rollout, one gradient step
    assert model._n_updates == 1
    changed = sum(int((p.detach() != q).sum()) for p, q in zip(policy.lm.parameters(), before))
    total = sum(q.numel() for q in before)
    # In bf16, 1e-5 steps are below the weights' resolution: 15 % of them moved, the rest rounded away.
    assert changed / total > 0.99, f"{changed / total:.1%} of the weights changed"


def test_load_causal_lm_loads_fp32_unless_asked(bf16_model):
    from textgym.models import load_causal_lm

    assert load_causal_lm(bf16_model).dtype == th.float32
    assert load_causal_lm(bf16_model, dtype="bf16").dtype == th.bfloat16
    assert load_causal_lm(bf16_model, dtype="auto").dtype == th.bfloat16  # as stored
    with pytest.raises(ValueError, match=r"dtype must be one of \['fp32', 'bf16', 'fp16', 'auto'\]"):
        load_causal_lm("/no/such/folder", dtype="int8")  # refused before the folder is looked at


def test_bf16_detection_does_not_count_emulation(monkeypatch):
    import contextlib

    from textgym import devices

    assert not devices.supports_bf16("cpu")
    monkeypatch.setattr(th.cuda, "device", lambda index: contextlib.nullcontext())
    for fake, expected in ((lambda including_emulation=True: including_emulation, False),  # emulated only
                           (lambda including_emulation=True: True, True),  # native
                           (lambda: True, False)):  # a torch that cannot tell: fp32
        monkeypatch.setattr(th.cuda, "is_bf16_supported", fake)
        devices._cuda_bf16.cache_clear()
        assert devices._cuda_bf16(0) is expected
    devices._cuda_bf16.cache_clear()
