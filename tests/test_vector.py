"""TokenVecEnv: equivalence with N separate TextEnvs, SB3 / Gymnasium vector APIs, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import textgym
from textgym.gym_vector import GymTokenVectorEnv
from textgym.vector import TokenVecEnv

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
            assert infos["final_info"]["generation"][2] == ""
    assert truncated[:2].all() and infos["final_info"]["num_tokens"][0] == 3


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


@pytest.mark.parametrize("reward_mode", ["terminal", "dense"])
def test_a_rollout_scored_after_it_ended_pays_what_the_steps_pay(smollm_tokenizer, reward_mode):
    """apply_actions (device only) then score_rollout: the rewards and final infos advance() pays step by step."""
    import torch

    kwargs = _kwargs(smollm_tokenizer, reward_mode)
    by_step, deferred = (textgym.make_vec("textgym/Generation-v0", N, device="cpu", **kwargs) for _ in range(2))
    rng = np.random.default_rng(1)
    for seed in range(3):
        by_step.reset_all(seed=seed)
        deferred.reset_all(seed=seed)
        reference_ids = [smollm_tokenizer(info["references"][0], add_special_tokens=False)["input_ids"]
                         for info in by_step.reset_infos]  # each env says its reference, with errors
        horizon = by_step.max_new_tokens
        rewards, finals, mask = np.zeros((N, horizon), dtype=np.float32), [], np.zeros((N, horizon), dtype=bool)
        for t in range(horizon):
            actions = np.array([ids[t % len(ids)] for ids in reference_ids])
            actions[rng.random(N) < 0.3] = rng.integers(0, len(smollm_tokenizer))
            actions[rng.random(N) < 0.15] = smollm_tokenizer.eos_token_id
            actions = torch.as_tensor(actions)
            mask[:, t] = (~by_step.finished).numpy()
            rewards[:, t], _, _, final_infos = by_step.advance(actions)
            finals.append(final_infos)
            deferred.apply_actions(actions)
        got_rewards, got_finals = deferred.score_rollout(mask)
        np.testing.assert_allclose(got_rewards, rewards, atol=1e-6)
        assert got_finals == finals
        assert (rewards != 0).any()


def test_public_seeding_and_prompts(smollm_tokenizer):
    vec = textgym.make_vec("textgym/Generation-v0", 2, device="cpu", tokenizer=smollm_tokenizer)
    single = gym.make("textgym/Generation-v0", tokenizer=smollm_tokenizer).unwrapped
    vec.seed_next_reset([5, None], [None, {"sample_index": 3}])
    obs = vec.reset()
    single_obs, info = single.reset(seed=5)
    np.testing.assert_array_equal(obs["input_ids"][0], single_obs["input_ids"])
    assert vec.reset_infos[1]["sample_id"] == vec.env.samples[3].id
    ids, text = vec.prompt(3)
    assert text == vec.reset_infos[1]["prompt_text"] and ids.tolist() == obs["input_ids"][1][obs["attention_mask"][1][
        : vec.prompt_length].astype(bool).nonzero()[0]].tolist()
    with pytest.raises(ValueError, match="one seed and one options entry per env"):
        vec.seed_next_reset([1])
    with pytest.raises(ValueError, match="sample_index"):
        vec.prompt(len(vec.env.samples))


def test_the_fast_paths_reset_takes_the_seeds_and_options_left_for_the_next_reset(smollm_tokenizer):
    """``seed()``/``set_options()`` hold what the next reset uses, in SB3; ``reset_all`` (each fast-path
    rollout's reset) takes them as ``reset`` does, so its prompts do not depend on the global random state."""
    import random

    import torch

    def ids(vec):
        return [info["sample_id"] for info in vec.reset_infos]

    draws = []
    for noise in range(3):
        random.seed(noise), np.random.seed(noise), torch.manual_seed(noise)
        vec = textgym.make_vec("textgym/Generation-v0", N, device="cpu", tokenizer=smollm_tokenizer)
        vec.seed(7)
        vec.reset_all()
        first = ids(vec)
        vec.reset_all()  # the seeds were used up: the draws go on from them
        draws.append((first, ids(vec)))
    assert draws[0] == draws[1] == draws[2] and draws[0][0] != draws[0][1]
    vec.seed(7)
    vec.reset()
    assert ids(vec) == draws[0][0]
    vec.set_options({"sample_index": 3})
    vec.reset_all()
    assert ids(vec) == [vec.env.samples[3].id] * N
    vec.reset_all()  # the options were used up too
    assert ids(vec) != [vec.env.samples[3].id] * N
