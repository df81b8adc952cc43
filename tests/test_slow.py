"""End-to-end runs on the real offline SmolLM2-135M-Instruct and real data (``pytest -m slow``)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import textgym  # noqa: F401

pytestmark = pytest.mark.slow


def test_ppo_on_samsum_with_smollm2(data_dir, tmp_path):
    from agents import PPO

    torch.set_num_threads(2)
    env = gym.make("textgym/SAMSum-v0", split="validation", data_dir=str(data_dir), max_prompt_length=192,
                   max_new_tokens=16)
    model = PPO("TransformerPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0,
                policy_kwargs=dict(model_name="smollm2-135m"))
    assert model.policy.n_actions == 49152
    model.learn(64)
    assert model.num_timesteps == 64 and model.kl_coef == 0.05
    assert np.isfinite([e["r"] for e in model.ep_info_buffer]).all()
    model.save(tmp_path / "agent")
    loaded = PPO.load(tmp_path / "agent", env=env)
    obs, _ = env.reset(seed=1)
    assert model.predict(obs, deterministic=True)[0] == loaded.predict(obs, deterministic=True)[0]


def test_default_tokenizer_and_eval_on_builtin():
    from textgym.evaluation import evaluate

    result = evaluate("textgym/Generation-v0", "smollm2-135m", n=4, progress=False)
    assert len(result.records) == 4 and 0.0 <= result.metrics["bleu"] <= 1.0
    assert all(r["generation"] for r in result.records)
