"""Property-based tests: TextEnv and TokenVecEnv under random actions, dtypes, shapes, seeds and
reset options. Observations stay in the space, only documented exceptions are raised, and the
single env and the vector env agree step for step."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest
from conftest import needs
from gymnasium.error import ResetNeeded

needs(find_spec("hypothesis") is not None, "hypothesis", "pip install -e '.[dev]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tiny import tiny_env, tiny_tokenizer

from textgym.vector import TokenVecEnv  # noqa: E402

TOK = tiny_tokenizer()
V = len(TOK)
EOS = TOK.eos_token_id
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64, np.uint64]

# Documented: TypeError for a non-integer action, ValueError for a wrong size or an id out of range.
DOCUMENTED = (TypeError, ValueError)

tokens = st.integers(0, V - 1) | st.just(EOS)
weird_actions = st.one_of(
    st.integers(-5, V + 5), st.floats(allow_nan=True), st.text(max_size=3), st.booleans(), st.none(),
    st.lists(st.integers(-1, V), max_size=3),
    st.sampled_from(INT_DTYPES).flatmap(lambda d: st.integers(0, min(np.iinfo(d).max, V + 3)).map(d)),
)


def _in_space(env, obs) -> bool:
    return env.observation_space.contains({k: np.asarray(v) for k, v in obs.items()})


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), actions=st.lists(weird_actions, min_size=1, max_size=12),
       mode=st.sampled_from(["terminal", "dense"]), index=st.none() | st.integers(-2, 5))
def test_text_env_obs_in_space_and_only_documented_errors(seed, actions, mode, index):
    env = tiny_env(TOK, reward_mode=mode)
    options = None if index is None else {"sample_index": index}
    try:
        obs, _ = env.reset(seed=seed, options=options)
    except ValueError:
        assert index is not None and not 0 <= index < 4
        return
    assert _in_space(env, obs)
    done = False
    for action in actions:
        if done:
            with pytest.raises(ResetNeeded):
                env.step(1)
            obs, _ = env.reset()
            done = False
        try:
            obs, reward, terminated, truncated, info = env.step(action)
        except DOCUMENTED:
            continue
        assert _in_space(env, obs) and np.isfinite(reward)
        done = terminated or truncated
        assert not done or "generation" in info


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), mode=st.sampled_from(["terminal", "dense"]),
       steps=st.lists(st.tuples(st.lists(tokens, min_size=4, max_size=4), st.sampled_from(INT_DTYPES)),
                      min_size=1, max_size=14))
def test_single_and_vector_env_agree_step_for_step(seed, n, mode, steps):
    vec = TokenVecEnv(tiny_env(TOK, reward_mode=mode), n, device="cpu")
    singles = [tiny_env(TOK, reward_mode=mode) for _ in range(n)]
    vec.seed(seed)
    vec_obs = vec.reset()
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    for i in range(n):
        assert (vec_obs["input_ids"][i] == single_obs[i]["input_ids"]).all()
    for row, dtype in steps:
        actions = np.array(row[:n], dtype=dtype)
        vec.step_async(actions)
        obs, rewards, dones, infos = vec.step_wait()
        assert vec.observation_space.contains({k: v[0] for k, v in obs.items()})
        for i, env in enumerate(singles):
            s_obs, s_rew, term, trunc, s_info = env.step(actions[i])
            assert np.isclose(rewards[i], s_rew, atol=1e-6)
            assert dones[i] == (term or trunc)
            if dones[i]:
                assert infos[i]["generation"] == s_info["generation"] and infos[i]["score"] == s_info["score"]
                assert (infos[i]["terminal_observation"]["input_ids"] == s_obs["input_ids"]).all()
                s_obs, _ = env.reset()
            assert (obs["input_ids"][i] == s_obs["input_ids"]).all()
            assert (obs["attention_mask"][i] == s_obs["attention_mask"]).all()


@SETTINGS
@given(n=st.integers(1, 4), shape=st.lists(st.integers(0, 5), max_size=3), dtype=st.sampled_from(
    [*INT_DTYPES, np.float32, np.float64, np.bool_, object, np.str_]))
def test_vector_env_actions_of_any_shape_and_dtype(n, shape, dtype):
    vec = TokenVecEnv(tiny_env(TOK), n, device="cpu")
    vec.reset()
    try:
        actions = np.ones(shape, dtype=dtype)
    except (TypeError, ValueError):
        return
    try:
        vec.step_async(actions)
    except TypeError:
        assert np.dtype(dtype).kind not in "iu"
        return
    except ValueError:
        assert np.dtype(dtype).kind in "iu" and actions.size != n
        return
    assert np.dtype(dtype).kind in "iu" and actions.size == n
    obs, *_ = vec.step_wait()
    assert vec.observation_space.contains({k: v[0] for k, v in obs.items()})
