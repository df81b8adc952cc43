"""End-to-end runs on the real offline SmolLM2-135M-Instruct and real data (``pytest -m slow``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import textgym  # noqa: F401

pytestmark = pytest.mark.slow


def test_ppo_on_samsum_with_smollm2(data_dir, tmp_path):
    """A few PPO iterations of the real model on real SAMSum dialogues, on the fast path."""
    from agents import PPO

    venv = textgym.make_vec("textgym/SAMSum-v0", num_envs=4, split="validation", data_dir=str(data_dir),
                            max_prompt_length=256, max_new_tokens=16)
    model = PPO("TransformerPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0,
                policy_kwargs=dict(model_name="smollm2-135m"))
    assert model.policy.n_actions == 49152 and model.uses_fast_path()
    reference = [p.detach().clone() for p in model.reference.parameters()]
    model.learn(128)
    assert model.num_timesteps >= 128
    returns = [e["r"] for e in model.ep_info_buffer]
    assert returns and np.isfinite(returns).all() and all(0.0 <= r <= 1.0 for r in returns)
    assert all(torch.equal(a, b) for a, b in zip(reference, model.reference.parameters()))
    model.save(tmp_path / "agent")
    loaded = PPO.load(tmp_path / "agent", env=venv)
    obs = venv.reset()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_default_tokenizer_and_eval_on_builtin():
    from textgym.evaluation import evaluate

    result = evaluate("textgym/Generation-v0", "smollm2-135m", n=4, progress=False)
    assert len(result.records) == 4 and 0.0 <= result.metrics["bleu"] <= 1.0
    assert all(r["generation"] for r in result.records)
