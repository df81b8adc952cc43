"""The bad-input matrix, generated from the public surface rather than listed.

Enumerated here, not written case by case: every field of every config dataclass (built in Python,
and through YAML keys / ``--set``), every algorithm's constructor keywords, every typed CLI flag of
every ``textgym`` command (part 2, tests/test_bad_input_api.py: observations, spaces, per-env lists
and the public constructors' annotated parameters). Wrong values come from each parameter's type (wrong type, wrong container, out of
range, NaN/inf, empty, huge, a bare string for a list). Every case must end in one error
(ValueError, TypeError or argparse's exit 2) whose message names the parameter as the user wrote
it; a silent success or a raw IndexError/AttributeError/KeyError fails. A parameter added later is
covered without a new case. The exceptions are listed once, in ``badinputs.EXCEPTIONS``, with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from typing import Any, Iterator

import pytest
from badinputs import EXCEPTIONS, HUGE, algo_call, bad_values, sb3_constructor_params

DATACLASS_MODULES = ("agents.config", "agents.ppo", "agents.a2c", "agents.rloo", "agents.grpo", "agents.sft",
                     "textgym.rewards.reward_model", "textgym.rlhf.train")


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

    cases, seen_bases = [], set()
    for algo_name, algo in sorted(agents.ALGORITHMS.items()):
        cls = algo.config_class
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            for label, value in bad_values(hints[f.name], f.metadata.get("range")):
                if value is None or label in ("huge",):
                    continue  # None means "the config's default" for constructor keywords
                cases.append((algo_name, f.name, value))
        # the keywords beyond the config: SB3's own annotated parameters and the text algorithm's (found, not named);
        # one algorithm per SB3 base class (the others share its parameters and TextAlgorithm's one check of them)
        sb3_base = next(c for c in algo.__mro__ if c.__module__.startswith("stable_baselines3"))
        if sb3_base in seen_bases:
            continue
        seen_bases.add(sb3_base)
        for name, hint in sorted(sb3_constructor_params(algo_name).items()):
            if ("sb3", name) in EXCEPTIONS:
                continue
            for label, value in bad_values(hint):
                if value is not None:  # None: SB3's default
                    cases.append((algo_name, name, value))
    return cases


ALGO_CASES = algo_cases()


@pytest.mark.parametrize("algo", ["a2c", "grpo", "ppo", "rloo"])
def test_algorithm_baseline_is_valid(algo):
    algo_call(algo)


@pytest.mark.parametrize("algo, name, value", ALGO_CASES, ids=[f"{a}({n}={v!r})" for a, n, v in ALGO_CASES])
def test_algorithm_keyword_refuses_a_bad_value_naming_it(algo, name, value):
    with pytest.raises((ValueError, TypeError)) as err:
        algo_call(algo, **{name: value})
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
    elif action.choices is None and action.nargs != 0:  # a text value (file, folder, model, id): empty is refused
        yield from ("", " ")


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
        assert text not in ("abc", "nonsense-choice", "", " "), f"{flag}={text!r} accepted as {value!r}"


def test_coverage_numbers(capsys):
    """Print how many cases each part of the matrix generates (for the issue note)."""
    with capsys.disabled():
        print(f"\nbad-input matrix: {len(FIELD_CASES)} dataclass-field cases over {len(config_classes())} classes, "
              f"{len(YAML_CASES)} YAML/--set cases, {len(ALGO_CASES)} algorithm-keyword cases, "
              f"{len(CLI_CASES)} CLI-flag cases; {len(EXCEPTIONS)} exceptions")
