"""The bad-input matrix, part 2: observations, observation spaces, per-env lists and public constructors.

Generated like part 1 (tests/test_bad_input_matrix.py): bad observations from a good one, key by key, fed
to every policy entry point; non-text spaces to every text algorithm; per-env lists of the wrong length to
every textgym vector env; and wrong values, from the annotations, for the public constructors' parameters.
Exceptions live in ``badinputs.EXCEPTIONS``.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, Iterator

import pytest
from badinputs import EXCEPTIONS, algo_call, bad_values


# --- observations, spaces and per-env lists (classes 6, 7, 8) ----------------------------------------------
def bad_observations(obs: dict[str, Any], vocab: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(label, key named in the error, observation) generated from a good observation of each key."""
    import numpy as np

    for key, good in obs.items():
        high = vocab if key == "input_ids" else 2
        batch, length = good.shape
        for label, value in (("longer", np.zeros((batch, length + 3), good.dtype)),
                             ("shorter", good[:, :-1]), ("1-D", good[0]), ("3-D", good[None]),
                             ("fractional float", good.astype(np.float32) + 0.5), ("negative", good * 0 - 1),
                             ("above range", good * 0 + high), ("huge", good * 0 + 2**40),
                             ("other batch", np.concatenate([good, good])), ("string", "abc"),
                             ("object dtype", good.astype(object))):
            yield f"{key} {label}", key, {**obs, key: value}
        yield f"{key} missing", key, {k: v for k, v in obs.items() if k != key}
    yield "mask all zeros", "attention_mask", {**obs, "attention_mask": obs["attention_mask"] * 0}
    yield "empty batch", "empty batch", {k: v[:0] for k, v in obs.items()}
    yield "extra key", "extra", {**obs, "extra": next(iter(obs.values()))}


# What only ``agent.predict`` reads as given (the tensor entry points take tensors, and read the two keys they need).
PREDICT_ONLY = ("object dtype", "extra key")


@pytest.fixture(scope="module")
def text_agent():
    import numpy as np

    agent = algo_call("ppo")
    obs = {k: np.asarray(v) for k, v in agent.env.reset().items()}
    return agent, obs


ENTRY_POINTS = ("policy(obs)", "evaluate_actions", "predict_values", "get_distribution", "agent.predict")


def _call_entry(agent: Any, entry: str, obs: dict[str, Any]):
    import torch as th

    if entry == "agent.predict":
        return agent.predict(obs)
    tensors = {k: th.as_tensor(v) if not isinstance(v, str) else v for k, v in obs.items()}
    policy = agent.policy
    if entry == "policy(obs)":
        return policy(tensors)
    if entry == "evaluate_actions":
        return policy.evaluate_actions(tensors, th.zeros(len(next(iter(obs.values()))), dtype=th.long))
    return getattr(policy, entry)(tensors)


def test_observations_that_do_not_fit_the_model_name_the_key(text_agent):
    """Every generated bad observation x every entry point: a ValueError naming the key (or SB3's own shape error)."""
    agent, obs = text_agent
    vocab = agent.policy.lm.get_input_embeddings().num_embeddings
    problems, count = [], 0
    for entry in ENTRY_POINTS:
        _call_entry(agent, entry, obs)  # the baseline fits
        for label, key, bad in bad_observations(obs, vocab):
            if entry != "agent.predict" and label.endswith(PREDICT_ONLY):
                continue
            count += 1
            try:
                _call_entry(agent, entry, bad)
                problems.append(f"{entry} / {label}: accepted")
            except ValueError as exc:
                if key not in str(exc) and "observation" not in str(exc).lower():
                    problems.append(f"{entry} / {label}: does not name {key}: {exc}")
            except Exception as exc:  # noqa: BLE001: a raw error type is a finding
                problems.append(f"{entry} / {label}: raw {type(exc).__name__}: {str(exc)[:120]}")
    assert count >= 100 and not problems, "\n".join(problems)


def test_actions_that_do_not_fit_the_model_are_named(text_agent):
    """evaluate_actions: actions of another length, beyond the vocabulary, negative, fractional or boolean."""
    import torch as th

    agent, obs = text_agent
    tensors = {k: th.as_tensor(v) for k, v in obs.items()}
    vocab, batch = agent.policy.lm.get_input_embeddings().num_embeddings, len(obs["input_ids"])
    agent.policy.evaluate_actions(tensors, th.zeros(batch, dtype=th.long))  # the baseline fits
    agent.policy.evaluate_actions(tensors, th.zeros((batch, 1)))  # SB3's buffers: (B, 1) floats
    for label, actions in (("longer", th.zeros(batch + 3)), ("shorter", th.zeros(batch - 1)), ("beyond vocab",
                           th.full((batch,), vocab)), ("negative", th.full((batch,), -1)), ("fractional",
                           th.full((batch,), 1.5)), ("bool", th.ones(batch, dtype=th.bool)), ("list", [0] * batch)):
        with pytest.raises(ValueError, match="actions") as err:
            agent.policy.evaluate_actions(tensors, actions)
        assert "actions" in str(err.value), (label, str(err.value))


def non_text_spaces() -> Iterator[tuple[str, Any]]:
    import numpy as np
    from gymnasium import spaces

    ids = spaces.Box(0, 16, (12,), np.int64)
    yield "Box", spaces.Box(0, 1, (4,))
    yield "Discrete", spaces.Discrete(3)
    yield "Dict without input_ids", spaces.Dict(a=spaces.Box(0, 1, (4,)))
    yield "Dict without attention_mask", spaces.Dict(input_ids=ids)
    yield "float input_ids", spaces.Dict(input_ids=spaces.Box(0, 16, (12,)), attention_mask=ids)
    yield "2-D input_ids", spaces.Dict(input_ids=spaces.Box(0, 16, (2, 6), np.int64), attention_mask=ids)
    yield "lengths differ", spaces.Dict(input_ids=ids, attention_mask=spaces.Box(0, 1, (5,), np.int64))
    yield "Discrete input_ids", spaces.Dict(input_ids=spaces.Discrete(5), attention_mask=ids)


class _SpaceEnv:
    """A minimal gymnasium env with a given observation space (never stepped)."""

    def __init__(self, space: Any) -> None:
        import gymnasium as gym

        self.env = type("E", (gym.Env,), {"reset": lambda s, *, seed=None, options=None: (space.sample(), {}),
                                          "step": lambda s, a: (space.sample(), 0.0, True, False, {})})()
        self.env.observation_space, self.env.action_space = space, gym.spaces.Discrete(17)


SPACE_CASES = list(non_text_spaces())


@pytest.mark.parametrize("label, space", SPACE_CASES, ids=[label for label, _ in SPACE_CASES])
@pytest.mark.parametrize("user", ["PPO", "A2C", "RLOO", "GRPO", "sb3.PPO(TransformerPolicy)"])
def test_a_text_policy_on_a_non_text_env_names_the_expected_space(label, space, user):
    import stable_baselines3 as sb3
    from tiny import tiny_llama_config, tiny_tokenizer

    import agents
    from agents.observations import EXPECTED_SPACE

    env = _SpaceEnv(space).env
    kwargs = dict(device="cpu", policy_kwargs=dict(model_config=tiny_llama_config(len(tiny_tokenizer()))))
    with pytest.raises(ValueError) as err:
        if user.startswith("sb3"):
            sb3.PPO(agents.TransformerPolicy, env, **kwargs)
        else:
            getattr(agents, user)("TransformerPolicy", env, **kwargs)
    assert EXPECTED_SPACE in str(err.value), str(err.value)


def _vec_envs():
    from tiny import tiny_env, tiny_tokenizer

    from textgym.gym_vector import GymTokenVectorEnv
    from textgym.vector import TokenVecEnv

    yield "TokenVecEnv", TokenVecEnv(tiny_env(tiny_tokenizer()), 2, device="cpu")
    yield "GymTokenVectorEnv", GymTokenVectorEnv(tiny_env(tiny_tokenizer()), 2, device="cpu")


def _seed_users():
    """Every way a user seeds a textgym env: TextEnv.reset, each vector env's seed/reset, and SB3's wrapper."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import VecMonitor
    from tiny import tiny_env, tiny_tokenizer

    from textgym.vector import TokenVecEnv

    yield "TextEnv.reset", lambda seed: gym.make(ENV_ID, tokenizer=tiny_tokenizer()).reset(seed=seed)
    for name, venv in _vec_envs():
        yield f"{name}.seed", (lambda v: lambda seed: v.seed(seed) if hasattr(v, "seed") else v.reset(seed=seed))(venv)
    yield "GymTokenVectorEnv.reset", lambda seed: dict(_vec_envs())["GymTokenVectorEnv"].reset(seed=seed)
    yield "gym.make_vec.reset", lambda seed: gym.make_vec(ENV_ID, num_envs=2, tokenizer=tiny_tokenizer(),
                                                          device="cpu").reset(seed=seed)
    yield "VecMonitor(TokenVecEnv).seed", lambda seed: VecMonitor(TokenVecEnv(tiny_env(tiny_tokenizer()), 2,
                                                                               device="cpu")).seed(seed)


def seed_values() -> list[tuple[str, Any]]:
    from badinputs import bad_values

    return [(label, value) for label, value in bad_values(int | None) if label != "list"] + [("negative", -1)]


@pytest.mark.parametrize("label, seed", seed_values(), ids=[label for label, _ in seed_values()])
def test_every_seed_user_refuses_a_bad_seed_naming_it(label, seed):
    for name, use in _seed_users():
        with pytest.raises((ValueError, TypeError)) as err:
            use(seed)
        assert "seed" in str(err.value), (name, str(err.value))


@pytest.mark.parametrize("length", [1, 3])
@pytest.mark.parametrize("what", ["seed", "options"])
def test_per_env_lists_of_the_wrong_length_name_both_lengths(what, length):
    for name, venv in _vec_envs():
        values = list(range(length)) if what == "seed" else [{}] * length
        with pytest.raises((ValueError, TypeError), match=what) as err:
            if name == "TokenVecEnv":
                venv.seed(values) if what == "seed" else venv.set_options(values)
            else:
                venv.reset(**{what: values})
        if isinstance(err.value, ValueError):
            assert f"got {length} for 2 envs" in str(err.value), (name, str(err.value))


# --- public functions and constructors ----------------------------------------------------------------------
ENV_ID = "textgym/Generation-v0"


def _tok():
    from tiny import tiny_tokenizer

    return tiny_tokenizer()


def _make_env(**kw: Any):
    import gymnasium as gym

    return gym.make(ENV_ID, tokenizer=_tok(), **kw)


def _make_vec(**kw: Any):
    import textgym

    return textgym.make_vec(ENV_ID, **{"num_envs": 2, "device": "cpu", "tokenizer": _tok(), **kw})


def _token_vec_env(**kw: Any):
    from tiny import tiny_env

    from textgym.vector import TokenVecEnv

    return TokenVecEnv(**{"env": tiny_env(_tok()), "num_envs": 2, "device": "cpu", **kw})


def _policy(**kw: Any):
    from tiny import tiny_llama_config

    import agents
    from tiny import tiny_env

    from textgym.vector import TokenVecEnv

    env = TokenVecEnv(tiny_env(_tok(), max_new_tokens=2), 2, device="cpu")
    return agents.A2C("TransformerPolicy", env, n_steps=2, device="cpu",
                      policy_kwargs={"model_config": tiny_llama_config(len(_tok())), **kw})


def _reward(**kw: Any):
    from textgym.rewards import make_reward

    return make_reward(**{"spec": "bleu", **kw})


_LEARNER: list[Any] = []


def _learn(**kw: Any):
    if not _LEARNER:
        _LEARNER.append(algo_call("a2c"))
    return _LEARNER[0].learn(**{"total_timesteps": 2, **kw})


def _evaluate(**kw: Any):
    from tiny import tiny_llama_config
    from transformers import AutoConfig, AutoModelForCausalLM

    from textgym.evaluation import evaluate

    config = tiny_llama_config(len(_tok()))
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    return evaluate(**{"env_id": ENV_ID, "model": model, "n": 2, "batch_size": 2, "device": "cpu", "progress": False,
                       "perplexity": False, "tokenizer": _tok(), "max_new_tokens": 2, **kw})


def _eval_metrics(**kw: Any):
    from textgym.evaluation import eval_metrics

    return eval_metrics(**{"env_id": ENV_ID, "extra": ["chrf"], **kw})


def _distinct_n(**kw: Any):
    from textgym.evaluation import distinct_n

    return distinct_n(**{"texts": ["a b a b"], "n": 2, **kw})


def _function_targets() -> dict[str, tuple[Any, Any, tuple[str, ...]]]:
    """name -> (a valid call taking keyword overrides, the function whose annotations give the types, skipped)."""
    import agents
    from agents.policies import TransformerPolicy
    from textgym.evaluation import distinct_n, eval_metrics, evaluate
    from textgym.core import TextEnv
    from textgym.rewards import make_reward
    from textgym.gym_vector import make_vec
    from textgym.vector import TokenVecEnv

    return {
        "gym.make(textgym/...)": (_make_env, TextEnv.__init__, ("samples", "tokenizer", "reward")),
        "textgym.make_vec": (_make_vec, make_vec, ("env_id", "kwargs")),
        "TokenVecEnv": (_token_vec_env, TokenVecEnv.__init__, ("env",)),
        "TransformerPolicy (policy_kwargs)": (_policy, TransformerPolicy.__init__,
                                              ("observation_space", "action_space", "lr_schedule", "kwargs",
                                               "model_name", "tokenizer", "optimizer_class", "model_config")),
        "make_reward": (_reward, make_reward, ()),
        # SB3's learn, by SB3's own annotations (every text algorithm's learn passes them through one check)
        "A2C.learn": (_learn, agents.A2C.learn.__wrapped__ if hasattr(agents.A2C.learn, "__wrapped__")
                      else next(c.learn for c in agents.A2C.__mro__ if c.__module__.startswith("stable_baselines3")),
                      ()),
        "evaluate": (_evaluate, evaluate, ("model", "base_model", "device", "env_kwargs")),
        "eval_metrics": (_eval_metrics, eval_metrics, ()),
        "distinct_n": (_distinct_n, distinct_n, ()),
    }


def function_cases() -> list[tuple[str, str, str, Any]]:
    from textgym.fieldtypes import resolved_hints

    cases = []
    for name, (_, fn, skipped) in _function_targets().items():
        hints = resolved_hints(fn)  # SB3's too (names it imports only for type checkers resolved)
        for param in inspect.signature(fn).parameters:
            if param in ("self", "return", *skipped) or (name, param) in EXCEPTIONS or param not in hints:
                continue
            for label, value in bad_values(hints[param]):
                cases.append((name, param, label, value))
    return cases


FUNCTION_CASES = function_cases()


@pytest.mark.parametrize("target", sorted(_function_targets()))
def test_function_baseline_is_valid(target):
    _function_targets()[target][0]()


@pytest.mark.parametrize("target, param, label, value", FUNCTION_CASES,
                         ids=[f"{t}({p}={label})" for t, p, label, _ in FUNCTION_CASES])
def test_public_function_refuses_a_bad_value_naming_it(target, param, label, value):
    call = _function_targets()[target][0]
    with pytest.raises((ValueError, TypeError)) as err:
        call(**{param: value})
    assert param in str(err.value), str(err.value)


@pytest.mark.parametrize("path", [5, None, b"agent.zip", ["agent.zip"], 2.5], ids=["int", "None", "bytes", "list", "float"])
def test_save_load_and_set_parameters_refuse_a_path_that_is_no_path(text_agent, path):
    """Not zipfile's AttributeError on .write/.seek: a TypeError naming path, whichever of the three was called
    (a dict is set_parameters' other form: parameters by name)."""
    import agents

    agent, _ = text_agent
    for call in (agent.save, lambda p: agents.PPO.load(p, device="cpu"), agent.set_parameters):
        with pytest.raises(TypeError, match="path"):
            call(path)


@pytest.mark.parametrize("reward", [["bleu"], {"bleu": float("nan")}, {"bleu": "1"}, {"bleu": 1, " bleu": 1}, {}, 3],
                         ids=["list", "nan weight", "string weight", "same reward twice", "empty mapping", "int"])
def test_a_reward_of_the_wrong_shape_is_refused_where_it_is_written(reward):
    """In a config (env.reward, YAML or --set) when the config is built, and in gym.make(reward=...), naming reward."""
    from agents.config import EnvConfig

    with pytest.raises((TypeError, ValueError), match="reward"):
        EnvConfig(reward=reward)
    with pytest.raises((TypeError, ValueError), match="reward"):
        _make_env(reward=reward)


def test_an_empty_split_slice_names_the_split():
    with pytest.raises(ValueError, match=r"split 'train\[:0\]'"):
        _make_env(split="train[:0]")
