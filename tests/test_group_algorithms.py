"""Group sampling (group_size) and the critic-free algorithms RLOO and GRPO."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

import textgym
from agents import A2C, ALGORITHMS, GRPO, PPO, RLOO
from agents.settings import ALGOS
from textgym.vector import TokenVecEnv


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def policy_kwargs(tok, **extra):
    return dict(model_name=None, model_config=tiny_llama_config(len(tok)), **extra)


class ReturnCurve(BaseCallback):
    def __init__(self):
        super().__init__()
        self.curve: list[float] = []

    def _on_rollout_end(self) -> None:
        self.curve.append(float(np.mean([e["r"] for e in self.model.ep_info_buffer])))

    def _on_step(self) -> bool:
        return True


def test_a_group_of_consecutive_envs_shares_each_prompt_and_seeds_replay(tok):
    venv = TokenVecEnv(tiny_env(tok, max_new_tokens=2, group_size=3), 6, device="cpu")
    rounds = []
    for seed in (7, None, 7):
        venv.reset_all(seed=seed)
        ids = [venv.reset_infos[i]["sample_id"] for i in range(6)]
        assert ids[0] == ids[1] == ids[2] and ids[3] == ids[4] == ids[5], ids
        assert [venv.reset_infos[i]["group"] for i in range(6)] == [0, 0, 0, 1, 1, 1]
        rounds.append(ids)
    assert rounds[0] == rounds[2]  # the same seed replays the same prompts
    # SB3's per-step API with auto-reset keeps the groups too: every env finishes after 2 tokens
    venv.seed(3)
    venv.reset()
    for _ in range(2):
        venv.step(np.full(6, tok.convert_tokens_to_ids("good")))
    ids = [venv.reset_infos[i]["sample_id"] for i in range(6)]
    assert ids[0] == ids[1] == ids[2] and ids[3] == ids[4] == ids[5]


def test_group_size_on_a_single_env_repeats_each_prompt(tok):
    env = tiny_env(tok, group_size=2)
    ids = [env.reset(seed=1 if k == 0 else None)[1]["sample_id"] for k in range(6)]
    assert ids[0::2] == ids[1::2]
    assert "group" not in tiny_env(tok).reset(seed=0)[1]  # group_size 1: infos as before


def test_group_sizes_that_do_not_fit_are_clear_errors(tok):
    with pytest.raises(ValueError, match=r"num_envs \(5\) must be a multiple of group_size \(2\)"):
        TokenVecEnv(tiny_env(tok, group_size=2), 5, device="cpu")
    with pytest.raises(ValueError, match="group_size must be an integer >= 1"):
        tiny_env(tok, group_size=0)
    with pytest.raises(ValueError, match="RLOO needs groups of completions: pass group_size=k"):
        RLOO("TransformerPolicy", TokenVecEnv(tiny_env(tok), 4, device="cpu"), policy_kwargs=policy_kwargs(tok))
    with pytest.raises(ValueError, match="GRPO: group_size=4, but the env was made with group_size=2"):
        GRPO("TransformerPolicy", TokenVecEnv(tiny_env(tok, group_size=2), 4, device="cpu"),
             policy_kwargs=policy_kwargs(tok))
    with pytest.raises(ValueError, match="RLOO compares the k completions of each prompt: it needs the fast path"):
        RLOO("TransformerPolicy", tiny_env(tok, group_size=4), fast_path=False, policy_kwargs=policy_kwargs(tok))
    with pytest.raises(ValueError, match="RLOO has no critic: separate_critic=True"):
        RLOO("TransformerPolicy", TokenVecEnv(tiny_env(tok, group_size=4), 4, device="cpu"),
             policy_kwargs=policy_kwargs(tok, separate_critic=True))


@pytest.mark.parametrize("algo, kwargs", [
    (RLOO, dict(n_steps=8, learning_rate=3e-3)),
    (GRPO, dict(n_steps=8, batch_size=32, n_epochs=4, learning_rate=3e-3)),
    (PPO, dict(n_steps=8, batch_size=32, n_epochs=4, learning_rate=3e-3, baseline="group_mean", group_size=4)),
    (A2C, dict(n_steps=8, learning_rate=3e-3, baseline="group_mean", group_size=4)),
])
def test_critic_free_algorithms_learn_an_easy_task_without_the_value_head(tok, algo, kwargs):
    curve = ReturnCurve()
    model = algo("TransformerPolicy", TokenVecEnv(tiny_env(tok, group_size=4), 8, device="cpu"), seed=0, kl_coef=0.0,
                 policy_kwargs=policy_kwargs(tok), **kwargs)
    head = [p.detach().clone() for p in model.policy.value_head.parameters()]
    model.learn(1500, callback=curve)
    assert curve.curve[0] < 0.15 and curve.curve[-1] > curve.curve[0] + 0.4, curve.curve
    assert all(th.equal(a, b) for a, b in zip(head, model.policy.value_head.parameters()))  # no critic trained
    assert "train/explained_variance" not in model.logger.name_to_value


@pytest.mark.parametrize("algo", [RLOO, GRPO])
def test_critic_free_save_load_and_sb3_callbacks(tok, algo, tmp_path):
    env = TokenVecEnv(tiny_env(tok, group_size=2), 4, device="cpu")
    model = algo("TransformerPolicy", env, n_steps=4, group_size=2, seed=0, policy_kwargs=policy_kwargs(tok))
    model.learn(32, callback=CheckpointCallback(4, str(tmp_path / "ckpt")), progress_bar=True)
    assert model.num_timesteps == 32 and sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    model.save(tmp_path / "agent")
    loaded = algo.load(tmp_path / "agent", env=env)
    obs = env.reset()
    th.manual_seed(0)
    a, _ = model.predict(obs, deterministic=True)
    b, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)
    loaded.learn(16, reset_num_timesteps=False)
    assert loaded.num_timesteps == 48


def test_an_env_id_gets_the_algorithms_group_size(tok, tmp_path):
    model = RLOO("TransformerPolicy", "textgym/Generation-v0", n_envs=8, n_steps=2, seed=0,
                 env_kwargs=dict(tokenizer=tok, max_new_tokens=2), policy_kwargs=policy_kwargs(tok))
    assert model.env.group_size == 4 and model.uses_fast_path()
    vec = gym.make("textgym/Generation-v0", tokenizer=tok, group_size=4).unwrapped
    assert vec.group_size == 4


def test_every_algorithm_of_the_cli_has_a_class_and_a_config_section():
    from agents.config import TrainConfig

    from benchmarks.leaderboard_suite import METHODS, RL_METHODS

    assert set(ALGOS) == {*ALGORITHMS, "sft"} and set(RL_METHODS) == set(ALGORITHMS)
    assert {"rloo", "grpo", "nlpo", "sft+grpo"} <= set(METHODS)
    for name, cls in ALGORITHMS.items():
        assert isinstance(getattr(TrainConfig(), name), cls.config_class)
    assert textgym.make_vec  # the vec helper the group tests rely on stays public
    assert PPO.uses_critic and not RLOO.uses_critic and not GRPO.uses_critic


def test_the_group_mean_baseline_is_each_return_minus_its_groups_mean(tok):
    model = PPO("TransformerPolicy", TokenVecEnv(tiny_env(tok, group_size=2), 4, device="cpu"), n_steps=2,
                baseline="group_mean", group_size=2, seed=0, policy_kwargs=policy_kwargs(tok))
    assert not model.uses_critic and PPO.uses_critic  # the instance's choice, not the class's
    model.learn(8)
    batch = model.rollout_buffer.episodes
    returns = batch.returns[:, 0]  # (E,): every step of an episode carries its return
    expected = returns - returns.view(-1, 2).mean(-1).repeat_interleave(2)
    th.testing.assert_close(batch.advantages[:, 0], expected)
    assert model.logger.name_to_value["train/value_loss"] == 0.0


def test_baseline_choices_are_checked_and_only_ppo_and_a2c_have_one(tok):
    env = TokenVecEnv(tiny_env(tok, group_size=2), 4, device="cpu")
    with pytest.raises(ValueError, match=r"baseline must be one of \['critic', 'group_mean'\], got 'group'"):
        PPO("TransformerPolicy", env, baseline="group", policy_kwargs=policy_kwargs(tok))
    with pytest.raises(TypeError, match="RLOO has no baseline option"):
        RLOO("TransformerPolicy", env, baseline="critic", group_size=2, policy_kwargs=policy_kwargs(tok))
    with pytest.raises(ValueError, match="A2C needs groups of completions: pass group_size=k"):
        A2C("TransformerPolicy", TokenVecEnv(tiny_env(tok), 4, device="cpu"), baseline="group_mean",
            policy_kwargs=policy_kwargs(tok))


@pytest.mark.parametrize("kl_penalty", ["reward", "loss"])
def test_rloo_charges_the_kl_in_the_return_or_in_the_loss(tok, kl_penalty, tmp_path):
    from agents.groups import episode_returns

    env = TokenVecEnv(tiny_env(tok, max_new_tokens=3, group_size=2), 4, device="cpu")
    model = RLOO("TransformerPolicy", env, n_steps=3, group_size=2, kl_coef=0.5, kl_penalty=kl_penalty,
                 learning_rate=3e-2, seed=0, policy_kwargs=policy_kwargs(tok))
    model.learn(24)  # two rollouts: the second samples from a policy that has left the reference
    batch = model.rollout_buffer.episodes
    scores, penalised = (episode_returns(r, batch.step_mask) for r in (batch.env_rewards, batch.rewards))
    assert not th.allclose(scores, penalised)  # the KL is there to charge
    th.testing.assert_close(batch.returns[:, 0], scores if kl_penalty == "loss" else penalised)
    logged = model.logger.name_to_value
    assert (logged["train/kl_to_reference"] > 0) if kl_penalty == "loss" else ("train/kl_to_reference" not in logged)
    model.save(tmp_path / "agent")
    assert RLOO.load(tmp_path / "agent", env=env).kl_penalty == kl_penalty


def test_rloo_kl_penalty_choices_are_checked(tok):
    env = TokenVecEnv(tiny_env(tok, group_size=2), 4, device="cpu")
    with pytest.raises(ValueError, match=r"kl_penalty must be one of \['reward', 'loss'\], got 'kl'"):
        RLOO("TransformerPolicy", env, group_size=2, kl_penalty="kl", policy_kwargs=policy_kwargs(tok))


@pytest.mark.parametrize("algo", [PPO, RLOO, GRPO])
def test_fluency_coef_adds_each_outputs_mean_reference_log_likelihood_to_its_reward(tok, algo, tmp_path):
    from agents.groups import episode_returns

    env = TokenVecEnv(tiny_env(tok, max_new_tokens=4, group_size=2), 4, device="cpu")
    extra = {"batch_size": 16} if algo is not RLOO else {}
    model = algo("TransformerPolicy", env, n_steps=4, group_size=2, fluency_coef=0.3, seed=0,
                 policy_kwargs=policy_kwargs(tok), **extra)
    class RolloutLogs(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            self.logged = dict(self.logger.name_to_value)

    logs = RolloutLogs()
    model.learn(16, callback=logs)
    batch = model.rollout_buffer.episodes
    mask = batch.step_mask.float()
    mean_log_likelihood = (batch.ref_log_probs * mask).sum(-1) / mask.sum(-1)  # (E,), < 0
    bonus = episode_returns(batch.env_rewards, batch.step_mask) - episode_returns(batch.raw_rewards, batch.step_mask)
    th.testing.assert_close(bonus, 0.3 * mean_log_likelihood)
    assert (bonus < 0).all()
    # what the env paid is still what rollout/score_mean reports; the bonus's own mean is logged beside it
    logged = logs.logged
    assert logged["rollout/score_mean"] == pytest.approx(float(episode_returns(batch.raw_rewards, batch.step_mask).mean()))
    assert logged["rollout/score_mean"] != pytest.approx(float(episode_returns(batch.env_rewards, batch.step_mask).mean()))
    assert logged["rollout/ref_log_likelihood"] == pytest.approx(float(mean_log_likelihood.mean()), rel=1e-5)
    model.save(tmp_path / "agent")
    assert algo.load(tmp_path / "agent", env=env).fluency_coef == 0.3


def test_fluency_coef_is_checked_and_needs_the_fast_path(tok):
    env = TokenVecEnv(tiny_env(tok), 2, device="cpu")
    with pytest.raises(ValueError, match="fluency_coef must be >= 0"):
        PPO("TransformerPolicy", env, fluency_coef=-0.1, policy_kwargs=policy_kwargs(tok))
    with pytest.raises(ValueError, match="fluency_coef=0.1 scores whole episodes: it needs the fast path"):
        PPO("TransformerPolicy", tiny_env(tok), fast_path=False, fluency_coef=0.1, policy_kwargs=policy_kwargs(tok))


def test_nlpo_samples_only_inside_the_mask_policys_nucleus_and_scores_the_same_distribution(tok):
    from agents import NLPO
    from agents.rollout import evaluate_episodes

    model = NLPO("TransformerPolicy", TokenVecEnv(tiny_env(tok, max_new_tokens=4), 4, device="cpu"), n_steps=4,
                 batch_size=16, top_mask=0.3, target_update_iterations=2, seed=0, policy_kwargs=policy_kwargs(tok))
    model.learn(16)  # one rollout, one update
    batch = model.rollout_buffer.episodes
    allowed, mask = batch.allowed, batch.step_mask  # (E, T, V), (E, T)
    assert allowed[mask].sum(-1).float().mean() < 0.5 * allowed.shape[-1]  # a nucleus, not the vocabulary
    assert allowed[mask].gather(-1, batch.tokens[mask][:, None]).all()  # every action from inside it
    with th.no_grad():
        log_probs, _, _ = evaluate_episodes(model.policy, batch, with_values=False)
    assert th.isfinite(log_probs).all()
    # the mask policy lags: synced after target_update_iterations updates, then equal to the policy
    lag = [th.equal(a, b) for a, b in zip(model.action_masker.lm.parameters(), model.policy.lm.parameters())]
    assert not all(lag) and model.logger.name_to_value["train/mask_policy_age"] == 1
    model.learn(16, reset_num_timesteps=False)
    assert all(th.equal(a, b) for a, b in zip(model.action_masker.lm.parameters(), model.policy.lm.parameters()))


def test_nlpo_saves_loads_and_needs_the_fast_path(tok, tmp_path):
    from agents import NLPO

    env = TokenVecEnv(tiny_env(tok, max_new_tokens=2), 4, device="cpu")
    model = NLPO("TransformerPolicy", env, n_steps=2, batch_size=8, seed=0, policy_kwargs=policy_kwargs(tok))
    model.learn(8, callback=CheckpointCallback(2, str(tmp_path / "ckpt")))
    model.save(tmp_path / "agent")
    loaded = NLPO.load(tmp_path / "agent", env=env)
    assert loaded.top_mask == 0.9 and loaded.target_update_iterations == 5
    assert all(th.equal(a, b) for a, b in zip(loaded.action_masker.lm.parameters(), loaded.policy.lm.parameters()))
    loaded.learn(8, reset_num_timesteps=False)
    assert loaded.num_timesteps == 16
    with pytest.raises(ValueError, match="NLPO masks each step with a lagged copy of the policy: it needs the fast path"):
        NLPO("TransformerPolicy", tiny_env(tok), fast_path=False, policy_kwargs=policy_kwargs(tok))
    with pytest.raises(ValueError, match=r"top_mask must be in \(0, 1\]"):
        NLPO("TransformerPolicy", env, top_mask=0.0, policy_kwargs=policy_kwargs(tok))


def test_a_group_encodes_its_prompt_once_with_the_same_samples(tok):
    from agents.policies import TransformerPolicy
    from agents.rollout import generate_episodes

    venv = TokenVecEnv(tiny_env(tok, max_new_tokens=5, group_size=4), 8, device="cpu")
    policy = TransformerPolicy(venv.observation_space, venv.action_space, lambda _: 1e-4, **policy_kwargs(tok))
    policy.set_training_mode(False)
    calls = []
    policy.lm.base_model.register_forward_hook(lambda module, args, kwargs, out: calls.append(kwargs["input_ids"].shape),
                                               with_kwargs=True)
    batches = []
    for share in (True, False):
        venv.reset_all(seed=11)  # the next reset (the rollout's) draws the same prompts both times
        th.manual_seed(0)
        calls.clear()
        batches.append(generate_episodes(policy, venv, share_prefill=share))
        assert calls[0][0] == (2 if share else 8)  # the prefill: one row per prompt, or one per env
    shared, full = batches
    assert th.equal(shared.tokens, full.tokens)
    th.testing.assert_close(shared.log_probs, full.log_probs)
