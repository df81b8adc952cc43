"""Shared by the bad-input matrices: the one list of exceptions, the generator of wrong values from a type,
and a valid tiny construction of each algorithm (the baseline the wrong values vary)."""

from __future__ import annotations

import collections.abc
import math
import types
import typing
from typing import Any, Iterator

HUGE = 10**30

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
    ("sb3", "rollout_buffer_class"): "refused whatever its value: the text algorithms choose their buffer",
    ("sb3", "_init_setup_model"): "SB3's internal switch (load), not a user argument",
    ("DummyVecEnv / SubprocVecEnv", "actions, seed, options"): "SB3's own classes: their step/seed/set_options index "
        "per env before any TextEnv code runs (a wrong length is SB3's IndexError); textgym's agents turn them into "
        "a TokenVecEnv, whose checks apply; the TextEnvs inside still check each seed and action",
    ("gym.make_vec(vectorization_mode='sync'/'async')", "actions, seed"): "Gymnasium's SyncVectorEnv/AsyncVectorEnv "
        "zip actions and seeds with the envs (a wrong length is its zip error); gym.make_vec's default for textgym "
        "ids is textgym's GymTokenVectorEnv, which checks both",
    ("TextEnv.step", "before reset"): "Gymnasium's OrderEnforcing wrapper raises its ResetNeeded, with a clear message",
    ("make_reward", "weights <= 0"): "negative weights are penalties and 0 reports a metric without rewarding it "
                                     "(documented in WeightedReward)",
    ("PPO.save", "path of a folder"): "SB3's rule: a path without a suffix gets .zip (FOLDER.zip is written beside it)",
    ("gym.make(textgym/...)", "render_mode"): "gymnasium's make reads render_mode before the env's constructor runs "
                                              "(a non-string raises its AttributeError); TextEnv(render_mode=...) "
                                              "itself refuses it by type",
}

def bad_values(hint: Any, rng: Any = None) -> Iterator[tuple[str, Any]]:
    """(label, value) wrong for a field typed ``hint`` (with an optional ``Range``)."""
    options = set(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, types.UnionType) else {hint}
    optional = type(None) in options
    options.discard(type(None))
    lists = [h for h in options if typing.get_origin(h) in (list, collections.abc.Sequence)]
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
    if any(typing.get_origin(h) in (dict, collections.abc.Mapping) for h in options):
        yield "string for mapping", "a"
        yield "list for mapping", ["a"]


def algo_call(algo: str, **overrides: Any):
    """A valid tiny construction of ``algo`` with ``overrides`` (the baseline the bad values vary)."""
    import agents
    from tiny import tiny_env, tiny_llama_config, tiny_tokenizer
    from textgym.vector import TokenVecEnv

    cls = agents.ALGORITHMS[algo]
    group = 1 if cls.uses_critic else 2
    env = TokenVecEnv(tiny_env(tiny_tokenizer(), max_new_tokens=2, group_size=group), 2, device="cpu")
    kwargs = {"n_steps": 2, "batch_size": 4} if "batch_size" in cls.config_class.__dataclass_fields__ else {"n_steps": 2}
    kwargs.update({"group_size": 2} if group > 1 else {})
    kwargs.update(device="cpu", policy_kwargs=dict(model_config=tiny_llama_config(len(tiny_tokenizer()))))
    kwargs.update(overrides)
    return cls("TransformerPolicy", env, **kwargs)


def sb3_constructor_params(algo: str) -> dict[str, Any]:
    """name -> resolved annotation of the keywords ``algo`` takes beyond its config's fields: SB3's own annotated
    constructor parameters (seed, verbose, policy_kwargs, ...) and the text algorithm's (n_envs, env_kwargs, ...)."""
    import dataclasses

    import agents
    from agents.base import TextAlgorithm
    from textgym.fieldtypes import resolved_hints

    cls = agents.ALGORITHMS[algo]
    sb3 = next(c for c in cls.__mro__ if c.__module__.startswith("stable_baselines3"))
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    params = {**resolved_hints(sb3.__init__), **resolved_hints(TextAlgorithm.__init__)}
    skipped = {"self", "return", "policy", "env", "config", "_init_setup_model", "rollout_buffer_class"}
    return {k: v for k, v in params.items() if k not in fields | skipped and v is not Any}
