"""LoRA policies (peft): one copy of the base weights, small optimizer state and saves, merged export."""

from __future__ import annotations

import json
import sys
import zipfile
from importlib.util import find_spec

import numpy as np
import pytest
import torch as th
from conftest import needs
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

from agents import PPO
from agents.agent_zip import state_dict_from_bytes
from agents.lora import check_lora
from agents.rollout import evaluate_episodes, generate_episodes, reference_log_probs
from textgym.vector import TokenVecEnv

needs(find_spec("peft") is not None, "peft", "pip install 'textgym[lora]'")

LORA = dict(r=4, alpha=8)


def make_agent(tiny_model: str, lora=LORA, n_envs: int = 8, **kwargs) -> PPO:
    venv = TokenVecEnv(tiny_env(tiny_tokenizer()), n_envs, device="cpu")
    venv.seed(0)
    kwargs = {"n_steps": 8, "batch_size": 64, "n_epochs": 2, "seed": 0, **kwargs}
    return PPO("TransformerPolicy", venv, policy_kwargs=dict(model_name=tiny_model, lora=lora), **kwargs)


def storage_ptrs(module: th.nn.Module) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in module.parameters()}


def test_reference_is_the_same_weights_with_adapters_disabled(tiny_model):
    lora, full = make_agent(tiny_model), make_agent(tiny_model, lora=None)
    assert lora.reference is None and full.reference is not None
    # One copy of the base weights: the policy holds the LM once (+ adapters + value head) ...
    base = sum(p.numel() for p in full.policy.lm.parameters())
    lora_total = sum(p.numel() for p in lora.policy.parameters())
    assert base < lora_total < 1.1 * base
    # ... while full fine-tuning keeps a second, frozen copy.
    assert sum(p.numel() for p in full.policy.parameters()) > 2 * base
    with lora.policy.reference() as ref:
        assert ref is lora.policy.lm and storage_ptrs(ref) == storage_ptrs(lora.policy.lm)


def test_kl_is_zero_at_start_and_the_reference_stays_the_base_model(tiny_model):
    model = make_agent(tiny_model, learning_rate=1e-2)
    th.manual_seed(0)
    batch = generate_episodes(model.policy, model.env)
    with th.no_grad():
        log_probs, _, _ = evaluate_episodes(model.policy, batch)
        ref = reference_log_probs(model.policy, batch)
    mask = batch.step_mask
    assert th.equal(log_probs[mask], ref[mask])  # LoRA's B starts at zero: KL exactly 0
    model.learn(64)
    with th.no_grad():
        moved, _, _ = evaluate_episodes(model.policy, batch)
        ref_after = reference_log_probs(model.policy, batch)
    assert (moved[mask] - ref_after[mask]).abs().max() > 1e-3  # the adapters learned something
    th.testing.assert_close(ref_after, ref)  # the reference (base weights) did not move


def test_optimizer_holds_only_adapters_and_value_head(tiny_model):
    model = make_agent(tiny_model)
    policy = model.policy
    in_optimizer = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    expected = {id(p) for name, p in policy.named_parameters() if "lora_" in name or name.startswith("value_head")}
    assert in_optimizer == expected and expected
    model.learn(32)
    assert {id(p) for p in policy.optimizer.state} <= expected and policy.optimizer.state
    assert all(not p.requires_grad for name, p in policy.lm.named_parameters() if "lora_" not in name)


def test_save_is_small_and_load_predicts_the_same(tiny_model, tmp_path):
    model = make_agent(tiny_model, learning_rate=1e-2)
    model.learn(64)
    full = make_agent(tiny_model, lora=None)
    model.save(tmp_path / "lora.zip")
    full.save(tmp_path / "full.zip")
    lora_size, full_size = (tmp_path / "lora.zip").stat().st_size, (tmp_path / "full.zip").stat().st_size
    print(f"agent.zip: LoRA {lora_size} bytes, full fine-tuning {full_size} bytes")
    # full: weights + Adam moments (the reference is rebuilt, not saved); on this tiny model the zip's
    # fixed overhead is a good part of the LoRA zip
    assert lora_size < full_size / 2
    with zipfile.ZipFile(tmp_path / "lora.zip") as archive:
        state = state_dict_from_bytes(archive.read("policy.safetensors"))
    assert state and all("lora_" in key or key.startswith("value_head") for key in state)
    loaded = PPO.load(tmp_path / "lora.zip", env=model.env)
    assert loaded.policy.lora == model.policy.lora
    th.manual_seed(1)
    batch = generate_episodes(model.policy, model.env)
    with th.no_grad():
        expected = evaluate_episodes(model.policy, batch)[:2] + (reference_log_probs(model.policy, batch),)
        got = evaluate_episodes(loaded.policy, batch)[:2] + (reference_log_probs(loaded.policy, batch),)
    for a, b in zip(expected, got):
        assert th.equal(a, b)


def test_export_is_merged_and_loads_with_plain_transformers(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    model = make_agent(tiny_model, learning_rate=1e-2)
    model.learn(64)
    model.policy.export_lm().save_pretrained(tmp_path / "final")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "final")
    assert not any("lora" in name for name, _ in plain.named_parameters())
    ids = th.tensor([[5, 6, 7, 3, 8, 9]])
    with th.no_grad():
        th.testing.assert_close(plain(input_ids=ids).logits, model.policy.lm(input_ids=ids).logits,
                                atol=1e-5, rtol=1e-4)
        with model.policy.reference() as ref:  # and the merge did not touch the policy's own weights
            base = AutoModelForCausalLM.from_pretrained(tiny_model)
            th.testing.assert_close(ref(input_ids=ids).logits, base(input_ids=ids).logits)


def test_lora_learns_like_full_fine_tuning():
    """On the tiny task both raise the reward (LoRA from a config-built model: its base weights are saved).

    The base model is initialised with larger weights than usual: with the default 0.02 the frozen
    tied embeddings are so short that no adapter can give any token more than ~0.1 probability.
    """
    tok = tiny_tokenizer()
    means = {}
    for name, lora, lr in (("full", None, 3e-3), ("lora", dict(r=8, alpha=16), 1e-2)):
        venv = TokenVecEnv(tiny_env(tok), 16, device="cpu")
        venv.seed(0)
        config = tiny_llama_config(len(tok), initializer_range=0.3)
        model = PPO("TransformerPolicy", venv, learning_rate=lr, seed=0, kl_coef=0.0, n_steps=16, batch_size=64,
                    n_epochs=4, policy_kwargs=dict(model_name=None, model_config=config, lora=lora))
        model.learn(256)
        first = np.mean([e["r"] for e in model.ep_info_buffer])
        model.learn(3000, reset_num_timesteps=False)
        last = np.mean([e["r"] for e in list(model.ep_info_buffer)[-32:]])
        means[name] = (first, last)
    print("reward first -> last:", {k: f"{a:.2f} -> {b:.2f}" for k, (a, b) in means.items()})
    for first, last in means.values():
        assert last > first + 0.3


def test_cli_lora_run_writes_a_merged_final_and_a_small_agent(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from textgym.cli import main

    out = tmp_path / "run"
    rc = main(["train", "--model", tiny_model, "--lora-r", "4", "--set", "policy.lora.target_modules=[q_proj, v_proj]",
               "--total-timesteps", "16", "--num-envs", "2", "--out", str(out), "--threads", "1", "--no-progress",
               "--set", "ppo.n_steps=4", "--set", "ppo.batch_size=8", "--set", "eval.n=2", "--set", "eval.before=false",
               "--set", "env.max_new_tokens=4", "--set", "checkpoint.save_agent=true"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["policy"]["lora"]["r"] == 4
    AutoModelForCausalLM.from_pretrained(out / "final")  # merged: plain transformers loads it
    agent = PPO.load(out / "final" / "agent.zip")
    assert agent.policy.lora["target_modules"] == ["q_proj", "v_proj"]


@pytest.mark.parametrize("lora, match", [
    (dict(rank=4), r"unknown lora key\(s\) \['rank'\]; allowed: \['r', 'alpha', 'target_modules', 'dropout'\]"),
    (dict(r=-1), "lora r must be an integer >= 0"),
    (dict(r=4, dropout=1.5), r"lora dropout must be in \[0, 1\)"),
    (dict(r=4, target_modules=[]), "lora target_modules must be None, a string"),
    ("yes", "lora must be a dict"),
])
def test_bad_lora_settings_are_clear_errors(lora, match):
    with pytest.raises((ValueError, TypeError), match=match):
        check_lora(lora)


def test_lora_with_separate_critic_and_missing_peft_are_clear_errors(tiny_model, monkeypatch):
    with pytest.raises(ValueError, match="lora and separate_critic cannot be combined"):
        PPO("TransformerPolicy", TokenVecEnv(tiny_env(tiny_tokenizer()), 2, device="cpu"),
            policy_kwargs=dict(model_name=tiny_model, lora=LORA, separate_critic=True))
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'textgym\[lora\]'"):
        make_agent(tiny_model)
