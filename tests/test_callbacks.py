"""SB3's callback contract on the fast path, checked against the stock per-step path."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.callbacks import (BaseCallback, CallbackList, CheckpointCallback, EvalCallback,
                                                ProgressBarCallback, StopTrainingOnMaxEpisodes,
                                                StopTrainingOnRewardThreshold)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

from agents import PPO

N = 4
PATHS = pytest.mark.parametrize("fast", [True, False], ids=["fast", "stock"])


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def agent(tok, fast: bool, **kwargs):
    env = make_vec_env(lambda: tiny_env(tok), n_envs=N, seed=0)
    kwargs = {"n_steps": 6, "batch_size": 12, "n_epochs": 1, "learning_rate": 1e-3, "seed": 0, **kwargs}
    model = PPO("TransformerPolicy", env, fast_path=fast,
                policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(tok))), **kwargs)
    assert model.uses_fast_path() == fast
    return model


class Recorder(BaseCallback):
    """Everything a callback can see, per call; stops after ``stop_after`` calls when set."""

    def __init__(self, stop_after: int | None = None):
        super().__init__()
        self.stop_after = stop_after
        self.timesteps: list[int] = []
        self.rollouts = [0, 0]
        self.dones = 0
        self.episodes: list[dict] = []

    def _on_rollout_start(self) -> None:
        self.rollouts[0] += 1

    def _on_rollout_end(self) -> None:
        self.rollouts[1] += 1

    def _on_step(self) -> bool:
        loc = self.locals
        obs, rewards, dones, infos = loc["new_obs"], loc["rewards"], loc["dones"], loc["infos"]
        length = self.training_env.observation_space["input_ids"].shape[0]
        assert obs["input_ids"].shape == obs["attention_mask"].shape == (N, length)
        assert rewards.shape == (N,) and dones.shape == (N,) and dones.dtype == bool and len(infos) == N
        for done, info in zip(dones, infos):
            assert bool(done) == ("episode" in info)  # SB3's Monitor reports exactly the ended episodes
            if done:
                assert {"generation", "score", "terminal_observation"} <= info.keys()
                self.episodes.append(info["episode"])
        self.dones += int(dones.sum())
        self.timesteps.append(self.num_timesteps)
        return self.stop_after is None or self.n_calls < self.stop_after


@PATHS
def test_on_step_per_env_step_with_sb3_locals(tok, fast):
    rec = Recorder()
    model = agent(tok, fast).learn(60, callback=rec)
    assert np.all(np.diff(rec.timesteps) == N) and rec.timesteps[0] == N  # num_envs per on_step call
    assert model.num_timesteps == rec.n_calls * N >= 60
    assert rec.rollouts[0] == rec.rollouts[1] >= 2  # on_rollout_start/end pair up, once per iteration
    assert rec.dones == len(rec.episodes) > 0
    recent = [e["r"] for e in model.ep_info_buffer]
    assert recent == pytest.approx([e["r"] for e in rec.episodes][-len(recent):])


@PATHS
def test_progress_bar_counts_exactly(tok, fast):
    bar, rec = ProgressBarCallback(), Recorder()
    model = agent(tok, fast).learn(50, callback=CallbackList([bar, rec]))
    assert bar.pbar.n == model.num_timesteps == rec.n_calls * N
    assert bar.pbar.total == 50


@PATHS
def test_returning_false_stops_learn(tok, fast):
    rec = Recorder(stop_after=3)
    model = agent(tok, fast).learn(1000, callback=rec)
    assert rec.n_calls == 3 and model.num_timesteps == 3 * N


@PATHS
def test_stop_on_max_episodes(tok, fast):
    stop, rec = StopTrainingOnMaxEpisodes(max_episodes=2), Recorder()
    model = agent(tok, fast).learn(10_000, callback=[rec, stop])
    assert 2 * N <= rec.dones < 2 * N + N  # stopped at the step that completed the 2 * N-th episode
    assert model.num_timesteps < 10_000


@PATHS
def test_eval_callback_and_reward_threshold(tok, fast, tmp_path):
    eval_env = Monitor(tiny_env(tok))
    stop = StopTrainingOnRewardThreshold(reward_threshold=-1.0)  # any evaluation reaches it
    evaluate = EvalCallback(eval_env, callback_on_new_best=stop, eval_freq=5, n_eval_episodes=2,
                            best_model_save_path=str(tmp_path), log_path=str(tmp_path), warn=False)
    model = agent(tok, fast).learn(10_000, callback=evaluate)
    assert model.num_timesteps == 5 * N  # stopped by the first evaluation
    assert len(evaluate.evaluations_results) == 1 and len(evaluate.evaluations_results[0]) == 2
    assert (tmp_path / "best_model.zip").is_file() and (tmp_path / "evaluations.npz").is_file()


@PATHS
def test_checkpoint_callback(tok, fast, tmp_path):
    save = CheckpointCallback(save_freq=4, save_path=str(tmp_path), name_prefix="ppo")
    model = agent(tok, fast).learn(40, callback=save)
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == [f"ppo_{k * 4 * N}_steps.zip" for k in range(1, model.num_timesteps // (4 * N) + 1)]
    loaded = PPO.load(tmp_path / saved[-1])
    assert loaded.num_timesteps == 4 * N * len(saved)


def test_verbose_prints_sb3_table_on_fast_path(tok, capsys):
    agent(tok, True, verbose=1).learn(60)  # two iterations: the second table also shows the first update
    out = capsys.readouterr().out
    rows = {line.strip("| ").split()[0] for line in out.splitlines() if line.startswith("|")}
    for key in ("rollout/", "ep_rew_mean", "ep_len_mean", "kl", "kl_per_token", "rouge1", "time/", "fps",
                "total_timesteps", "train/", "kl_coef", "approx_kl", "entropy", "explained_variance"):
        assert key in rows, key
    assert out.count("total_timesteps") == 2
