"""Every registered textgym id, from the registry: checkers, determinism, pickling, reference replay."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

import textgym

# A split whose files are shipped in shared/data, per data set.
SHIPPED_SPLIT = {
    "builtin_generation": "train", "builtin_summarization": "train", "builtin_dialogue": "train",
    "commongen": "validation", "imdb": "train", "cnn_dailymail": "validation", "samsum": "validation",
    "dialogsum": "validation", "dailydialog": "validation",
}
IDS = [e.env_id for e in textgym.ENVS]
DATASET = {e.env_id: e.dataset for e in textgym.ENVS}


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """An empty textgym cache, as on a fresh install: no id may need a model trained first (IMDB-v0)."""
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path / "fresh-cache"))


def make(env_id, smollm_tokenizer, data_dir, **kwargs):
    kwargs.setdefault("split", SHIPPED_SPLIT[DATASET[env_id]])
    return gym.make(env_id, tokenizer=smollm_tokenizer, data_dir=str(data_dir), **kwargs)


def test_every_family_and_dataset_registered():
    assert {e.family for e in textgym.ENVS} == {"generation", "summarization", "dialogue"}
    assert set(SHIPPED_SPLIT) == {e.dataset for e in textgym.ENVS}
    for env_id in IDS:
        assert env_id in gym.registry and env_id.endswith("-v0")


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_and_sb3_checkers(env_id, smollm_tokenizer, data_dir):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = make(env_id, smollm_tokenizer, data_dir, render_mode="ansi")
    gym_check(env.unwrapped)
    sb3_check(env.unwrapped, warn=False)
    obs, info = env.reset(seed=0)
    length = env.unwrapped.max_prompt_length + env.unwrapped.max_new_tokens
    assert obs["input_ids"].shape == (length,) and obs["input_ids"].dtype == np.int64
    assert env.action_space.n == len(smollm_tokenizer)
    assert info["references"] and info["prompt_text"]
    assert isinstance(env.render(), str)


def _rollout(env, seed, n_steps=40):
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [obs["input_ids"].copy(), info["sample_id"]]
    for _ in range(n_steps):
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        trace += [obs["input_ids"].copy(), obs["attention_mask"].copy(), reward, term, trunc]
        if term or trunc:
            trace.append(info["generation"])
            obs, info = env.reset()
            trace.append(info["sample_id"])
    return trace


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_determinism_and_pickling(env_id, smollm_tokenizer, data_dir):
    env_a = make(env_id, smollm_tokenizer, data_dir, max_new_tokens=6, reward_mode="dense")
    env_b = make(env_id, smollm_tokenizer, data_dir, max_new_tokens=6, reward_mode="dense")
    trace = _rollout(env_a, seed=123)
    _same(trace, _rollout(env_b, seed=123))
    assert trace[1] != _rollout(env_b, seed=124)[1] or len(env_a.unwrapped.samples) == 1
    clone = pickle.loads(pickle.dumps(env_a))
    _same(_rollout(clone, seed=123), trace)


@pytest.mark.parametrize("env_id", IDS)
def test_reference_tokens_score_close_to_one(env_id, smollm_tokenizer, data_dir):
    """Replaying the reference's own tokens earns the top score under BLEU and ROUGE, on real files."""
    for reward in ("bleu", "rougeL"):
        probe = make(env_id, smollm_tokenizer, data_dir)
        n = len(probe.unwrapped.samples)
        for index in np.random.default_rng(0).choice(n, size=min(3, n), replace=False):
            ref = probe.unwrapped.samples[index].references[0]
            tokens = smollm_tokenizer(ref, add_special_tokens=False)["input_ids"]
            env = make(env_id, smollm_tokenizer, data_dir, reward=reward, max_new_tokens=len(tokens) + 1)
            env.reset(options={"sample_index": int(index)})
            rewards = [env.step(t)[1] for t in tokens]
            _, last, terminated, _, info = env.step(smollm_tokenizer.eos_token_id)
            assert terminated and sum(rewards) == 0.0
            assert last == pytest.approx(info["score"]) and last > 0.95, (env_id, reward, info["generation"])
            assert reward in info["metrics"]


def test_stock_sb3_ppo_learns_on_generation(smollm_tokenizer):
    from stable_baselines3 import PPO

    env = gym.make("textgym/Generation-v0", tokenizer=smollm_tokenizer, max_new_tokens=8)
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(256)
    assert model.num_timesteps >= 256
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
