"""TokenVecEnv: equivalence with N separate TextEnvs, SB3 / Gymnasium vector APIs, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import textgym
from textgym.vector import GymTokenVectorEnv, TokenVecEnv

N = 4


def _kwargs(tok, reward_mode):
    return dict(tokenizer=tok, max_new_tokens=6, reward_mode=reward_mode, reward={"bleu": 0.5, "rougeL": 1.0})


def _strip(info):
    return {k: v for k, v in info.items() if k not in ("terminal_observation", "TimeLimit.truncated")}


@pytest.mark.parametrize("reward_mode", ["terminal", "dense"])
def test_vec_env_equals_separate_text_envs(smollm_tokenizer, reward_mode):
    kwargs = _kwargs(smollm_tokenizer, reward_mode)
    vec = textgym.make_vec("textgym/Generation-v0", N, device="cpu", **kwargs)
    singles = [gym.make("textgym/Generation-v0", **kwargs).unwrapped for _ in range(N)]
    vec.seed(7)
    obs = vec.reset()
    for i, env in enumerate(singles):
        single_obs, info = env.reset(seed=7 + i)
        np.testing.assert_array_equal(obs["input_ids"][i], single_obs["input_ids"])
        np.testing.assert_array_equal(obs["attention_mask"][i], single_obs["attention_mask"])
        assert vec.reset_infos[i] == info
    # Actions: reference words (so rewards are not all zero), random tokens, and EOS now and then.
    pool = sorted({t for s in singles[0].samples[:50] for r in s.references
                   for t in smollm_tokenizer(r, add_special_tokens=False)["input_ids"]})
    rng = np.random.default_rng(0)
    episodes_ended, nonzero = 0, 0
    for _ in range(60):
        actions = rng.choice(pool, size=N)
        actions[rng.random(N) < 0.1] = smollm_tokenizer.eos_token_id
        actions[rng.random(N) < 0.1] = rng.integers(0, len(smollm_tokenizer))
        obs, rewards, dones, infos = vec.step(actions)
        for i, env in enumerate(singles):
            single_obs, reward, terminated, truncated, info = env.step(actions[i])
            assert rewards[i] == pytest.approx(reward, abs=1e-6)
            nonzero += reward != 0
            assert dones[i] == (terminated or truncated)
            if dones[i]:
                episodes_ended += 1
                assert _strip(infos[i]) == info
                assert infos[i]["TimeLimit.truncated"] == truncated
                np.testing.assert_array_equal(infos[i]["terminal_observation"]["input_ids"], single_obs["input_ids"])
                np.testing.assert_array_equal(infos[i]["terminal_observation"]["attention_mask"],
                                              single_obs["attention_mask"])
                single_obs, reset_info = env.reset()
                assert vec.reset_infos[i] == reset_info
            else:
                assert infos[i] == info == {}
            np.testing.assert_array_equal(obs["input_ids"][i], single_obs["input_ids"])
            np.testing.assert_array_equal(obs["attention_mask"][i], single_obs["attention_mask"])
    assert episodes_ended >= 2 * N and nonzero > 0


def test_sb3_algorithms_accept_the_vec_env(smollm_tokenizer):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecEnv

    vec = textgym.make_vec("textgym/Generation-v0", 2, device="cpu", tokenizer=smollm_tokenizer, max_new_tokens=4)
    assert isinstance(vec, VecEnv)
    model = PPO("MultiInputPolicy", vec, n_steps=8, batch_size=8, n_epochs=1, seed=0)
    model.learn(16)
    assert model.num_timesteps >= 16


def test_gymnasium_vector_api(smollm_tokenizer):
    vec = textgym.make_vec("textgym/Dialogue-v0", 3, device="cpu", api="gymnasium", tokenizer=smollm_tokenizer,
                           max_new_tokens=3)
    assert isinstance(vec, GymTokenVectorEnv) and isinstance(vec, gym.vector.VectorEnv)
    obs, infos = vec.reset(seed=1)
    assert obs["input_ids"].shape == (3, vec.single_observation_space["input_ids"].shape[0])
    for step in range(3):
        obs, rewards, terminated, truncated, infos = vec.step(np.array([100, 200, smollm_tokenizer.eos_token_id]))
        if step == 0:
            assert terminated.tolist() == [False, False, True] and infos["_final_info"].tolist() == [False, False, True]
            assert infos["final_info"][2]["generation"] == ""
    assert truncated[:2].all() and infos["final_info"][0]["num_tokens"] == 3


def test_bad_actions_and_misuse(smollm_tokenizer):
    vec = textgym.make_vec("textgym/Generation-v0", 2, device="cpu", tokenizer=smollm_tokenizer)
    with pytest.raises(gym.error.ResetNeeded):
        vec.step(np.array([1, 2]))
    vec.reset()
    with pytest.raises(ValueError, match="out of range"):
        vec.step(np.array([1, len(smollm_tokenizer)]))
    with pytest.raises(TypeError, match="integer"):
        vec.step(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="api"):
        textgym.make_vec("textgym/Generation-v0", 2, api="ray", tokenizer=smollm_tokenizer)
    with pytest.raises(ValueError, match="num_envs"):
        TokenVecEnv(vec.env, 0)
    with pytest.raises(TypeError, match="TextEnv"):
        TokenVecEnv(gym.make("CartPole-v1"), 2)
