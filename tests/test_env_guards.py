"""The env guards: one step logic in both envs, checked reward outputs, action dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import tiny_env, tiny_tokenizer

from textgym.rewards.base import check_scores
from textgym.vector import TokenVecEnv


def _reward(out):
    def fn(prompts, generations, references):
        return out(len(generations)) if callable(out) else out

    fn.name = "custom"
    return fn


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


# --- 3: dense NaN is refused by both envs alike -------------------------------------------------
def test_dense_nan_reward_raises_in_the_vector_env_as_in_the_single_env(tok):
    nan = _reward(lambda n: [float("nan")] * n)
    single = tiny_env(tok, reward=nan, reward_mode="dense")
    single.reset(seed=0)
    with pytest.raises(FloatingPointError, match="custom"):
        single.step(5)
    vec = TokenVecEnv(tiny_env(tok, reward=nan, reward_mode="dense"), 2, device="cpu")
    vec.reset()
    vec.step_async(np.array([5, 6]))
    with pytest.raises(FloatingPointError, match="custom"):
        vec.step_wait()


# --- 4: a reward must return one finite number per text -------------------------------------------
@pytest.mark.parametrize("out, error, match", [
    (lambda n: [1.0] * (n + 1), ValueError, "returned 2 scores for 1"),
    ([], ValueError, "returned 0 scores"),
    (None, TypeError, "must return a list"),
    (1.0, TypeError, "must return a list"),
    (lambda n: ["abc"] * n, TypeError, "real numbers"),
    (lambda n: [float("inf")] * n, FloatingPointError, "finite"),
    (lambda n: np.ones((n, 2)), TypeError, "shape"),
])
def test_bad_reward_outputs_are_named_in_both_envs(tok, out, error, match):
    for mode in ("terminal", "dense"):
        env = tiny_env(tok, reward=_reward(out), reward_mode=mode, max_new_tokens=1)
        env.reset(seed=0)
        with pytest.raises(error, match=match):
            env.step(5)
        vec = TokenVecEnv(tiny_env(tok, reward=_reward(out), reward_mode=mode, max_new_tokens=1), 1, device="cpu")
        vec.reset()
        vec.step_async(np.array([5]))
        with pytest.raises(error, match=match):
            vec.step_wait()


def test_check_scores_accepts_numpy_and_torch_scalars():
    assert check_scores("r", np.array([0.5, 1.0]), 2) == [0.5, 1.0]
    assert check_scores("r", [torch.tensor(0.25)], 1) == [0.25]
    with pytest.raises(TypeError):
        check_scores("r", [True], 1)


# --- 14 and its class: action dtypes ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64])
def test_vector_env_accepts_every_integer_dtype(tok, dtype):
    vec = TokenVecEnv(tiny_env(tok), 3, device="cpu")
    vec.reset()
    vec.step_async(np.array([5, 6, 7], dtype=dtype))
    obs, *_ = vec.step_wait()
    assert obs["input_ids"][:, vec.prompt_length].tolist() == [5, 6, 7]
    vec.step_async(torch.tensor([5, 6, 7], dtype=torch.uint8))
    vec.step_wait()


@pytest.mark.parametrize("actions, match", [
    ("abc", "strings"), (np.array(["1", "2", "3"]), "strings"), (np.array([1, 2, None], dtype=object), "objects"),
    (np.array([1.5, 2.0, 3.0]), "floats"), (np.array([1.0, 2.0, 3.0]), "floats"), (np.array([True, False, True]), "booleans"),
    ([[1, 2], [3]], "ragged"), (torch.tensor([1.0, 2.0, 3.0]), "dtype"),
])
def test_vector_env_refuses_non_integer_actions_with_a_clear_message(tok, actions, match):
    vec = TokenVecEnv(tiny_env(tok), 3, device="cpu")
    vec.reset()
    with pytest.raises(TypeError, match=match):
        vec.step_async(actions)


def test_vector_env_out_of_range_uint_actions_are_reported(tok):
    vec = TokenVecEnv(tiny_env(tok), 2, device="cpu")
    vec.reset()
    with pytest.raises(ValueError, match="out of range"):
        vec.step_async(np.array([1, 2**63 + 5], dtype=np.uint64))
    with pytest.raises(ValueError, match="hold 2"):
        vec.step_async(np.array([1, 2, 3]))
