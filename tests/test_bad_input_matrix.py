"""The bad-input matrix, generated from the public surface rather than listed.

Enumerated here, not written case by case: every field of every config dataclass (built in Python,
and through YAML keys / ``--set``), every algorithm's constructor keywords, every typed CLI flag of
every ``textgym`` command, and the public functions' annotated parameters that have a cheap valid
call to vary. Wrong values come from each parameter's type (wrong type, wrong container, out of
range, NaN/inf, empty, huge, a bare string for a list). Every case must end in one error
(ValueError, TypeError or argparse's exit 2) whose message names the parameter as the user wrote
it; a silent success or a raw IndexError/AttributeError/KeyError fails. A parameter added later is
covered without a new case. The exceptions are listed once, in :data:`EXCEPTIONS`, with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from typing import Any, Iterator

import pytest

#: (where, parameter) -> why it is not checked here. The one list of exceptions.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("TrainConfig", "model"): "any string is a model name (alias, folder or hub id); it is resolved when loaded",
    ("TrainConfig", "init"): "a folder, checked by check_checkpoint when training starts (test_wrong_files)",
    ("TrainConfig", "out"): "any string is a folder name; check_writable_dir checks it before training",
    ("EnvConfig", "data_dir"): "a folder name, checked when the data is read",
    ("EnvConfig", "reward"): "Any: a reward spec (name, mapping or RewardFn), checked by make_reward",
    ("PolicyConfig", "precision"): "checked by the policy when built (test_precision)",
    ("RewardModelConfig", "encoder"): "informational: where the encoder came from",
    ("RewardModelConfig", "metrics"): "a training report, free-form",
    ("flag", "--help"): "argparse's own",
    ("gym.make(textgym/...)", "render_mode"): "gymnasium's make reads render_mode before the env's constructor runs "
                                              "(a non-string raises its AttributeError); TextEnv(render_mode=...) "
                                              "itself refuses it by type",
}

DATACLASS_MODULES = ("agents.config", "agents.ppo", "agents.a2c", "agents.rloo", "agents.grpo", "agents.sft",
                     "textgym.rewards.reward_model", "textgym.rlhf.train")
HUGE = 10**30


def config_classes() -> list[type]:
    """Every public config dataclass of the listed modules (found, not named)."""
    import importlib

    found: dict[str, type] = {}
    for module_name in DATACLASS_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", dir(module)):
            obj = getattr(module, name, None)
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and name.endswith(("Config", "Settings")):
                found[name] = obj
    return [found[k] for k in sorted(found)]


def bad_values(hint: Any, rng: Any = None) -> Iterator[tuple[str, Any]]:
    """(label, value) wrong for a field typed ``hint`` (with an optional ``Range``)."""
    options = set(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) else {hint}
    optional = type(None) in options
    options.discard(type(None))
    lists = [h for h in options if typing.get_origin(h) in (list, __import__("collections.abc").abc.Sequence)]
    if not optional:
        yield "None", None
    if int in options and float not in options:
        yield "fractional", 2.5
        yield "whole float", 4.0
        yield "numeric string", "8"
    if float in options:
        yield "quoted number", "3e-4"
        yield "nan", math.nan
        yield "inf", math.inf
    if int in options or float in options:
        yield "bool", True
        yield "word", "abc"
        yield "list", [1]
        if int in options and float not in options:
            yield "beyond int64", 2**63
        if rng is not None and rng.low is not None:
            yield "below range", rng.low - 1
        if rng is not None and rng.high is not None:
            yield "above range", rng.high + 1 if rng.high < HUGE else HUGE
            yield "huge", HUGE
    if bool in options:
        yield "string bool", "yes"
        yield "int bool", 2
    if str in options:
        yield "int for str", 3
        if not lists:
            yield "list for str", ["a"]
    if lists and str not in options:
        yield "bare string for list", "q_proj"
    if lists:
        yield "list of ints", [1, 2]
        yield "mapping for list", {"a": 1}
    if any(typing.get_origin(h) in (dict, __import__("collections.abc").abc.Mapping) for h in options):
        yield "string for mapping", "a"
        yield "list for mapping", ["a"]


def field_cases() -> list[tuple[type, str, str, Any]]:
    cases = []
    for cls in config_classes():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if (cls.__name__, f.name) in EXCEPTIONS or dataclasses.is_dataclass(hints[f.name]):
                continue
            for label, value in bad_values(hints[f.name], f.metadata.get("range")):
                cases.append((cls, f.name, label, value))
    return cases


FIELD_CASES = field_cases()


def _names_it(exc: BaseException, name: str) -> bool:
    return name in str(exc)


@pytest.mark.parametrize("cls, name, label, value", FIELD_CASES,
                         ids=[f"{c.__name__}.{n}={label}" for c, n, label, _ in FIELD_CASES])
def test_config_field_refuses_a_bad_value_naming_it(cls, name, label, value):
    with pytest.raises((ValueError, TypeError)) as err:
        cls(**{name: value})
    assert _names_it(err.value, name), str(err.value)


def _sections() -> dict[str, type]:
    from agents.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    out = {"": TrainConfig}
    for key, hint in hints.items():
        if dataclasses.is_dataclass(hint):
            out[key] = hint
            for sub, subhint in typing.get_type_hints(hint).items():
                if dataclasses.is_dataclass(subhint):
                    out[f"{key}.{sub}"] = subhint
    return out


def yaml_cases() -> list[tuple[str, Any]]:
    cases = []
    for section, cls in _sections().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if (cls.__name__, f.name) in EXCEPTIONS or dataclasses.is_dataclass(hints[f.name]):
                continue
            key = f"{section}.{f.name}" if section else f.name
            for label, value in bad_values(hints[f.name], f.metadata.get("range")):
                if label in ("quoted number", "numeric string"):
                    continue  # YAML gives these as text; the float case is converted on purpose (documented)
                cases.append((key, value))
    return cases


YAML_CASES = yaml_cases()


@pytest.mark.parametrize("key, value", YAML_CASES, ids=[f"{k}={v!r}" for k, v in YAML_CASES])
def test_yaml_key_and_set_refuse_a_bad_value_naming_the_key(key, value):
    """The YAML / ``--set`` route names the key as written (``ppo.n_steps``), never an internal name."""
    from agents.config import ConfigError, load_config, parse_set

    with pytest.raises(ConfigError) as err:
        load_config(overrides={key: value})
    assert key in str(err.value), str(err.value)
    if isinstance(value, (list, dict)) or value is None or value in ("yes",):
        return  # (YAML reads `yes` as true: the --set text route is then a bool on purpose)
    text = "nan" if isinstance(value, float) and math.isnan(value) else str(value).lower() if isinstance(value, bool) else str(value)
    with pytest.raises(ConfigError) as err:
        load_config(overrides=parse_set([f"{key}={text}"]))
    assert key in str(err.value), str(err.value)


# --- algorithm constructors -------------------------------------------------------------------------------
def algo_cases() -> list[tuple[str, str, Any]]:
    import agents

    cases = []
    for algo_name, algo in sorted(agents.ALGORITHMS.items()):
        cls = algo.config_class
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            for label, value in bad_values(hints[f.name], f.metadata.get("range")):
                if value is None or label in ("huge",):
                    continue  # None means "the config's default" for constructor keywords
                cases.append((algo_name, f.name, value))
    return cases


ALGO_CASES = algo_cases()


def _algo_call(algo: str, **overrides: Any):
    """A valid tiny construction of ``algo`` with ``overrides`` (the baseline the bad values vary)."""
    import agents
    from tiny import tiny_env, tiny_llama_config, tiny_tokenizer
    from textgym.vector import TokenVecEnv

    cls = agents.ALGORITHMS[algo]
    group = 1 if cls.uses_critic else 2
    env = TokenVecEnv(tiny_env(tiny_tokenizer(), max_new_tokens=2, group_size=group), 2, device="cpu")
    kwargs = {"n_steps": 2, "batch_size": 4} if "batch_size" in cls.config_class.__dataclass_fields__ else {"n_steps": 2}
    kwargs.update({"group_size": 2} if group > 1 else {})
    kwargs.update(overrides)
    return cls("TransformerPolicy", env, device="cpu",
               policy_kwargs=dict(model_config=tiny_llama_config(len(tiny_tokenizer()))), **kwargs)


@pytest.mark.parametrize("algo", ["a2c", "grpo", "ppo", "rloo"])
def test_algorithm_baseline_is_valid(algo):
    _algo_call(algo)


@pytest.mark.parametrize("algo, name, value", ALGO_CASES, ids=[f"{a}({n}={v!r})" for a, n, v in ALGO_CASES])
def test_algorithm_keyword_refuses_a_bad_value_naming_it(algo, name, value):
    with pytest.raises((ValueError, TypeError)) as err:
        _algo_call(algo, **{name: value})
    assert _names_it(err.value, name), str(err.value)


# --- CLI flags --------------------------------------------------------------------------------------------
def _parsers() -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    from agents.cli import build_train_parser
    from textgym.cli import build_parser

    def walk(prefix: list[str], parser: argparse.ArgumentParser):
        yield prefix, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk([*prefix, name], sub)

    yield from walk([], build_parser())
    yield ["train"], build_train_parser()


def bad_flag_text(action: argparse.Action) -> Iterator[str]:
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        yield "nonsense-choice"
    if action.type is not None:
        yield from ("abc", "1.5", "nan", "inf", "-1", "", "1e999", str(HUGE))


def cli_cases() -> list[tuple[list[str], argparse.ArgumentParser, str, str]]:
    cases = []
    for prefix, parser in _parsers():
        for action in parser._actions:
            if not action.option_strings or ("flag", action.option_strings[0]) in EXCEPTIONS:
                continue
            for text in bad_flag_text(action):
                cases.append((prefix, parser, action.option_strings[-1], text))
    return cases


CLI_CASES = cli_cases()


def _required_args(parser: argparse.ArgumentParser) -> list[str]:
    argv = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if not action.option_strings and action.nargs not in ("?", "*"):
            argv.append("x")
        elif action.required:
            argv += [action.option_strings[-1], "x"]
    return argv


@pytest.mark.parametrize("prefix, parser, flag, text", CLI_CASES,
                         ids=[f"{' '.join(p)} {f}={t!r}" for p, _, f, t in CLI_CASES])
def test_cli_flag_refuses_a_bad_value_naming_it(prefix, parser, flag, text, capsys):
    """Every typed flag: one ``error:`` line naming the flag, exit 2; or a value that is in fact allowed."""
    action = next(a for a in parser._actions if flag in a.option_strings)
    assert action.type not in (int, float), f"{flag} uses a bare {action.type.__name__}: use int_in/float_in (a range)"
    try:
        args = parser.parse_args([*_required_args(parser), f"{flag}={text}"])
    except SystemExit as exc:
        assert exc.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert flag in err and "error:" in err, err
        return
    value = getattr(args, next(a.dest for a in parser._actions if flag in a.option_strings))
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # accepted: must be a finite, in-range number
        assert math.isfinite(value), f"{flag}={text!r} accepted as {value!r}"
        assert not isinstance(value, int) or abs(value) < 2**63, f"{flag}={text!r} accepted as {value!r} (beyond int64)"
        assert text not in ("abc", "nan", "inf", "1e999"), f"{flag}={text!r} accepted as {value!r}"
        if text == "1.5":
            assert isinstance(value, float), f"{flag}=1.5 accepted as {value!r} (an int flag took a fraction)"
    else:
        assert text not in ("abc", "nonsense-choice", ""), f"{flag}={text!r} accepted as {value!r}"


def test_coverage_numbers(capsys):
    """Print how many cases each part of the matrix generates (for the issue note)."""
    with capsys.disabled():
        print(f"\nbad-input matrix: {len(FIELD_CASES)} dataclass-field cases over {len(config_classes())} classes, "
              f"{len(YAML_CASES)} YAML/--set cases, {len(ALGO_CASES)} algorithm-keyword cases, "
              f"{len(CLI_CASES)} CLI-flag cases; {len(EXCEPTIONS)} exceptions")


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
                             ("other batch", np.concatenate([good, good])), ("string", "abc")):
            if label in ("longer", "shorter", "other batch", "1-D", "3-D") and key == "attention_mask":
                pass
            yield f"{key} {label}", key, {**obs, key: value}
        yield f"{key} missing", key, {k: v for k, v in obs.items() if k != key}
    yield "mask all zeros", "attention_mask", {**obs, "attention_mask": obs["attention_mask"] * 0}


@pytest.fixture(scope="module")
def text_agent():
    import numpy as np

    agent = _algo_call("ppo")
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
        return policy.evaluate_actions(tensors, th.zeros(len(next(iter(obs.values())))))
    return getattr(policy, entry)(tensors)


def test_observations_that_do_not_fit_the_model_name_the_key(text_agent):
    """Every generated bad observation x every entry point: a ValueError naming the key (or SB3's own shape error)."""
    agent, obs = text_agent
    vocab = agent.policy.lm.get_input_embeddings().num_embeddings
    problems, count = [], 0
    for entry in ENTRY_POINTS:
        _call_entry(agent, entry, obs)  # the baseline fits
        for label, key, bad in bad_observations(obs, vocab):
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

    from textgym.vector import GymTokenVectorEnv, TokenVecEnv

    yield "TokenVecEnv", TokenVecEnv(tiny_env(tiny_tokenizer()), 2, device="cpu")
    yield "GymTokenVectorEnv", GymTokenVectorEnv(tiny_env(tiny_tokenizer()), 2, device="cpu")


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


def _function_targets() -> dict[str, tuple[Any, Any, tuple[str, ...]]]:
    """name -> (a valid call taking keyword overrides, the function whose annotations give the types, skipped)."""
    from agents.policies import TransformerPolicy
    from textgym.core import TextEnv
    from textgym.rewards import make_reward
    from textgym.vector import TokenVecEnv, make_vec

    return {
        "gym.make(textgym/...)": (_make_env, TextEnv.__init__, ("samples", "tokenizer", "reward")),
        "textgym.make_vec": (_make_vec, make_vec, ("env_id", "kwargs")),
        "TokenVecEnv": (_token_vec_env, TokenVecEnv.__init__, ("env",)),
        "TransformerPolicy (policy_kwargs)": (_policy, TransformerPolicy.__init__,
                                              ("observation_space", "action_space", "lr_schedule", "kwargs",
                                               "model_name", "tokenizer", "optimizer_class", "model_config")),
        "make_reward": (_reward, make_reward, ()),
    }


def function_cases() -> list[tuple[str, str, str, Any]]:
    cases = []
    for name, (_, fn, skipped) in _function_targets().items():
        hints = typing.get_type_hints(fn)
        for param in __import__("inspect").signature(fn).parameters:
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
