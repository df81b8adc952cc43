"""Every way SB3 and Gymnasium users build vector envs reaches the fast path, with make_vec's samples and log-probs."""

from __future__ import annotations

import csv
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium.utils.env_checker import data_equivalence
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor, VecNormalize
from tiny import WORDS, tiny_llama_config, tiny_tokenizer

import textgym
from agents import PPO
from agents.bookkeeping import RewardNormalizer
from textgym.catalogue import find_task
from textgym.data.base import Sample
from textgym.gym_vector import GymTokenVectorEnv
from textgym.vector import TokenVecEnv

ENV_ID, N = "textgym/Generation-v0", 3
TOK = tiny_tokenizer()
# ROUGE-1 against "good good good good": random texts of the tiny vocabulary often score above 0.
KW = dict(tokenizer=TOK, samples=[Sample(f"s{i}", f"say {w}", ("good good good good",)) for i, w in enumerate(WORDS[:5])],
          reward="rouge1", max_prompt_length=24, max_new_tokens=3)
SUBPROC = dict(vec_env_cls=SubprocVecEnv, vec_env_kwargs=dict(start_method="fork"))


class Record(BaseCallback):
    """What SB3's callback contract shows: sample ids of finished episodes, per-step log-probs, rewards, infos."""

    def __init__(self) -> None:
        super().__init__()
        self.samples, self.log_probs, self.rewards, self.infos = [], [], [], []

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        self.samples += [i["sample_id"] for i in infos if i]
        self.infos += [i for i in infos if i]
        self.log_probs.append(th.as_tensor(self.locals["log_probs"]).clone())
        self.rewards.append(np.array(self.locals["rewards"]))
        return True


def run(env, steps: int = 3 * N * 2):
    """One PPO iteration (n_steps=2 rollouts of N envs' 3-token episodes) on the fast path."""
    model = PPO("TransformerPolicy", env, seed=3, n_steps=steps // N, batch_size=8, learning_rate=1e-3,
                policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(TOK))))
    assert model.uses_fast_path() and isinstance(model.env, TokenVecEnv)
    record = Record()
    model.learn(steps, callback=record)
    return model, record


@pytest.fixture(scope="module")
def expected():
    return run(textgym.make_vec(ENV_ID, N, device="cpu", **KW))[1]


def same_rollout(record: Record, expected: Record) -> None:
    assert record.samples == expected.samples and len(expected.samples) >= N
    assert len(record.log_probs) == len(expected.log_probs)
    for a, b in zip(record.log_probs, expected.log_probs):
        assert th.equal(a, b)


def _sb3_env(**extra):
    return make_vec_env(ENV_ID, n_envs=N, env_kwargs={**KW, "render_mode": None}, **extra)


@pytest.mark.parametrize("build", [
    pytest.param(lambda tmp: gym.make_vec(ENV_ID, num_envs=N, device="cpu", **KW), id="gym.make_vec"),
    pytest.param(lambda tmp: _sb3_env(), id="make_vec_env-DummyVecEnv"),
    pytest.param(lambda tmp: _sb3_env(**SUBPROC), id="make_vec_env-SubprocVecEnv"),
    pytest.param(lambda tmp: SubprocVecEnv([partial(gym.make, ENV_ID, **KW)] * N, start_method="fork"),
                 id="SubprocVecEnv"),
    pytest.param(lambda tmp: VecMonitor(SubprocVecEnv([partial(gym.make, ENV_ID, **KW)] * N, start_method="fork"),
                                        str(tmp / "vec")), id="VecMonitor-SubprocVecEnv"),
    pytest.param(lambda tmp: VecMonitor(DummyVecEnv([partial(gym.make, ENV_ID, **KW)] * N), str(tmp / "vec")),
                 id="VecMonitor-DummyVecEnv"),
    pytest.param(lambda tmp: DummyVecEnv([lambda i=i: Monitor(gym.wrappers.RecordEpisodeStatistics(
        gym.make(ENV_ID, **KW)), str(tmp / f"env{i}")) for i in range(N)]), id="Monitor-RecordEpisodeStatistics"),
])
def test_each_construction_runs_on_the_fast_path_like_make_vec(build, expected, tmp_path):
    env = build(tmp_path)
    model, record = run(env)
    same_rollout(record, expected)
    for info in record.infos:  # the wrappers' episode entries: raw returns, lengths, and times
        assert set(info["episode"]) >= {"r", "l"} and info["episode"]["l"] >= 1
    files = list(tmp_path.glob("*.monitor.csv"))
    if files:  # every episode that ended is a row, as the Monitor / VecMonitor writes it
        env.close()
        rows = [row for f in files for row in csv.DictReader(f.read_text().splitlines()[1:])]
        assert len(rows) == len(record.infos) and {"r", "l", "t"} <= set(rows[0])
        assert sorted(float(r["r"]) for r in rows) == pytest.approx(sorted(i["episode"]["r"] for i in record.infos),
                                                                    abs=1e-5)


def test_subprocesses_are_closed_and_wrappers_keep_their_counts(tmp_path):
    sub = SubprocVecEnv([partial(gym.make, ENV_ID, **KW)] * N, start_method="fork")
    run(sub)
    assert sub.closed and not any(p.is_alive() for p in sub.processes)
    wrapped = [gym.wrappers.RecordEpisodeStatistics(gym.make(ENV_ID, **KW)) for _ in range(N)]
    _, record = run(DummyVecEnv([lambda w=w: w for w in wrapped]))
    assert sum(w.episode_count for w in wrapped) == len(record.infos) == sum(len(w.return_queue) for w in wrapped)
    assert all("t" in info["episode"] for info in record.infos)


def test_other_wrappers_keep_the_stock_path_with_a_warning():
    kwargs = dict(policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(TOK))))
    short = lambda: gym.wrappers.TimeLimit(gym.make(ENV_ID, **KW), 2)  # noqa: E731  cuts episodes short

    class Doubled(Monitor):  # a subclass of an allowed wrapper may change what it wraps
        def step(self, action):
            obs, reward, terminated, truncated, info = super().step(action)
            return obs, 2 * reward, terminated, truncated, info

    for env in (DummyVecEnv([short] * 2), _sb3_env(wrapper_class=gym.wrappers.TransformReward,
                                                   wrapper_kwargs=dict(func=lambda r: 2 * r)),
                DummyVecEnv([lambda: Doubled(gym.make(ENV_ID, **KW))])):
        with pytest.warns(UserWarning, match="SB3's per-step path"):
            assert not PPO("TransformerPolicy", env, **kwargs).uses_fast_path()
    long_enough = DummyVecEnv([lambda: gym.make(ENV_ID, max_episode_steps=3, **KW)])
    assert PPO("TransformerPolicy", long_enough, **kwargs).uses_fast_path()


def test_wrapper_order_decides_which_returns_a_vec_monitor_records():
    """As on SB3's path: a VecMonitor inside VecNormalize records raw returns, one outside it the scaled ones."""
    inside = VecNormalize(VecMonitor(DummyVecEnv([partial(gym.make, ENV_ID, **KW)] * N)), norm_obs=False)
    outside = VecMonitor(VecNormalize(DummyVecEnv([partial(gym.make, ENV_ID, **KW)] * N), norm_obs=False))
    (_, raw), (_, scaled) = run(inside), run(outside)
    returns = [i["episode"]["r"] for i in raw.infos]
    assert any(returns) and returns == pytest.approx([i["score"] for i in raw.infos], abs=1e-6)
    paid = np.stack(scaled.rewards)  # (steps, N): each env's episodes are 3 steps long here
    per_episode = [paid[t - 2 : t + 1, i].sum() for t in range(2, len(paid), 3) for i in range(N)]
    assert sorted(i["episode"]["r"] for i in scaled.infos) == pytest.approx(sorted(per_episode), abs=1e-5)


def test_vec_normalize_scales_rewards_as_sb3_does(expected, tmp_path):
    """Same samples and log-probs; callbacks see scaled rewards, infos raw ones; the statistics save and load."""
    norm = VecNormalize(_sb3_env(**SUBPROC), norm_obs=False, norm_reward=True, gamma=0.9)
    model, record = run(norm)
    assert model.get_vec_normalize_env() is norm and norm.ret_rms.count > 1
    assert record.samples == expected.samples
    for a, b in zip(record.log_probs[:3], expected.log_probs[:3]):  # the first rollout: before any update
        assert th.equal(a, b)
    raw = np.array([i["episode"]["r"] for i in record.infos])
    assert raw.tolist() == pytest.approx([i["episode"]["r"] for i in expected.infos], abs=1e-6)  # Monitor rounds
    episodes = model.rollout_buffer.episodes  # the last rollout: trained on scaled rewards, scores from raw ones
    assert episodes.raw_rewards is not None and not th.equal(episodes.raw_rewards, episodes.env_rewards)
    assert raw.any()
    paid = np.concatenate(record.rewards)  # what callbacks saw: scaled, so the sums differ from the raw returns
    assert not np.isclose(paid.sum(), raw.sum())
    norm.save(str(tmp_path / "stats.pkl"))
    loaded = VecNormalize.load(str(tmp_path / "stats.pkl"), _sb3_env())
    assert loaded.ret_rms.count == norm.ret_rms.count and np.allclose(loaded.ret_rms.var, norm.ret_rms.var)
    model2, _ = run(loaded)
    assert model2.get_vec_normalize_env() is loaded and loaded.ret_rms.count > norm.ret_rms.count


def test_the_normalizer_matches_vec_normalize_step_by_step():
    """Episodes of equal length: exactly VecNormalize.step_wait's scaled rewards and statistics."""
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(4, 5)).astype(np.float32)  # (N, T)
    mask = np.ones((4, 5), dtype=bool)

    class Stub(DummyVecEnv):  # pays the given rewards, all envs ending at the last step
        t = 0

        def step_wait(self):
            obs, _, dones, infos = super().step_wait()
            self.t += 1
            return obs, rewards[:, self.t - 1], np.full(4, self.t == 5), infos

    reference = VecNormalize(Stub([lambda: gym.make("CartPole-v1")] * 4), norm_obs=False, gamma=0.9, clip_reward=2.0)
    reference.reset()
    expected = [reference.step(np.zeros(4, dtype=int))[1] for _ in range(5)]
    mine = VecNormalize(Stub([lambda: gym.make("CartPole-v1")] * 4), norm_obs=False, gamma=0.9, clip_reward=2.0)
    scaled = RewardNormalizer(mine)(rewards, mask)
    np.testing.assert_allclose(scaled, np.stack(expected, 1), rtol=1e-6)
    np.testing.assert_allclose(mine.ret_rms.var, reference.ret_rms.var)
    assert mine.ret_rms.count == reference.ret_rms.count


def test_norm_obs_on_token_ids_is_refused():
    kwargs = dict(policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(TOK))))
    for fast_path in (True, False):
        with pytest.raises(ValueError, match=r"norm_obs=True\) would rescale token ids"):
            PPO("TransformerPolicy", VecNormalize(_sb3_env()), fast_path=fast_path, **kwargs)


def same_as_sync(env_id: str, actions_from: np.ndarray, **kwargs) -> GymTokenVectorEnv:
    """``gym.make_vec(env_id)`` is the batched env and steps, resets and reports exactly as Gymnasium's
    ``SyncVectorEnv`` of single envs (same-step auto-reset): Gymnasium's own checks on the spaces and data."""
    fast = gym.make_vec(env_id, num_envs=N, device="cpu", **kwargs)
    sync = gym.make_vec(env_id, num_envs=N, vectorization_mode="sync",
                        vector_kwargs=dict(autoreset_mode=gym.vector.AutoresetMode.SAME_STEP), **kwargs)
    assert isinstance(fast, GymTokenVectorEnv) and isinstance(sync, gym.vector.SyncVectorEnv)
    assert fast.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    assert fast.observation_space == sync.observation_space and fast.action_space == sync.action_space
    assert fast.spec.id == env_id and fast.spec.kwargs["num_envs"] == N
    eos = fast.engine.eos_token_id
    rng = np.random.default_rng(0)
    for seed in (0, 7):
        (obs, info), (obs2, info2) = fast.reset(seed=seed), sync.reset(seed=seed)
        assert fast.observation_space.contains(obs)
        assert data_equivalence((obs, info), (obs2, info2))
        for t in range(8):
            actions = rng.choice(actions_from, N)
            actions[t % N] = eos
            got, want = fast.step(actions), sync.step(actions)
            assert fast.observation_space.contains(got[0])
            assert data_equivalence(got, want), (t, got, want)
    fast.close()
    sync.close()
    assert fast.closed
    return fast


def test_gym_make_vec_gives_the_batched_env_and_matches_sync():
    same_as_sync(ENV_ID, np.arange(len(TOK)), **KW)
    assert isinstance(gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="async", **KW), gym.vector.AsyncVectorEnv)


@pytest.mark.parametrize("env_id", [e.env_id for e in textgym.ENVS])
def test_every_id_makes_the_batched_env(env_id, smollm_tokenizer, data_dir):
    """From the registry, with each id's own data and reward (a shipped split)."""
    split = find_task(env_id).shipped[0]
    same_as_sync(env_id, np.arange(200, 5000), tokenizer=smollm_tokenizer, data_dir=str(data_dir), split=split,
                 max_new_tokens=3)
