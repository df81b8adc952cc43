"""Typed training configuration: the dataclasses are the source of truth, YAML only fills them in.

A YAML file (or a plain dict) is loaded into :class:`TrainConfig`; a key that is not a field is an
error naming the allowed keys, and a value of the wrong type is an error naming the expected type.
Command-line flags and ``--set section.key=value`` overrides are applied on top of the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Union

from agents.a2c import A2CConfig
from agents.grpo import GRPOConfig
from agents.nlpo import NLPOConfig
from agents.lora import check_lora
from agents.ppo import PPOConfig
from agents.rloo import RLOOConfig
from agents.settings import ALGOS, Checked, ranged
from agents.sft import SFTConfig
from textgym.fieldtypes import check_field_types
from textgym.catalogue import MAX_TOKENS, REWARD_MODES
from textgym.models import default_model

__all__ = ["A2CConfig", "GRPOConfig", "NLPOConfig", "RLOOConfig", "ConfigError", "EnvConfig", "EvalConfig", "LoraSettings", "PPOConfig", "PolicyConfig",
           "SFTConfig", "TrainConfig", "CheckpointConfig", "load_config", "merge", "parse_set", "to_dict", "config_hash"]

SPLITS = ("train", "validation", "test")


def check_split(spec: Any, what: str) -> None:
    """Raise ValueError unless ``spec`` is a split name, optionally sliced (``"train[:90%]"``).

    >>> check_split("validation[:600]", "train_split")
    >>> check_split("dev", "split")
    Traceback (most recent call last):
    ...
    ValueError: split must be one of ['train', 'validation', 'test'], optionally sliced as in 'train[:90%]', got 'dev'
    """
    from textgym.data.splits import parse_split

    if not isinstance(spec, str) or parse_split(spec).name not in SPLITS:
        raise ValueError(f"{what} must be one of {list(SPLITS)}, optionally sliced as in 'train[:90%]', got {spec!r}")


@dataclass
class EnvConfig(Checked):
    """Which environment to train on and its keyword arguments (``None``: the id's preset).

    ``train_split``: the split (or slice, e.g. ``"validation[:600]"``) that PPO/A2C/SFT train on.
    """

    id: str = "textgym/Generation-v0"
    train_split: str = "train"
    data_dir: str | None = None
    reward: Any = None
    reward_mode: str | None = None
    max_prompt_length: int | None = ranged(None, 1, MAX_TOKENS)
    max_new_tokens: int | None = ranged(16, 1, MAX_TOKENS)

    def __post_init__(self) -> None:
        super().__post_init__()
        from textgym import check_env_id

        check_env_id(self.id)
        check_split(self.train_split, "train_split")
        if self.reward is not None:
            from textgym.rewards.registry import check_reward_spec

            check_reward_spec(self.reward, "reward")  # its shape now (a list, a NaN weight); names when the env is made
        if self.reward_mode is not None and self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {list(REWARD_MODES)} or null, got {self.reward_mode!r}")


@dataclass
class LoraSettings:
    """LoRA adapters (``pip install 'textgym[lora]'``); ``r = 0`` trains the whole model instead.

    ``alpha`` defaults to ``2 * r``; ``target_modules`` (names such as ``[q_proj, v_proj]``, a regex
    or ``all-linear``) defaults to peft's choice for the architecture. The rules are
    :func:`agents.lora.check_lora`'s, the one place LoRA settings are checked.
    """

    r: int = 0
    alpha: float | None = None
    target_modules: list[str] | str | None = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_field_types(self)
        check_lora(asdict(self), prefix="")

    def policy_kwarg(self) -> dict[str, Any] | None:
        """The ``lora`` policy keyword: ``None`` when ``r == 0``."""
        return None if self.r == 0 else asdict(self)


@dataclass
class PolicyConfig(Checked):
    """``policy_kwargs`` of the TransformerPolicy (sampling controls apply to the action distribution)."""

    temperature: float = ranged(1.0, 0, low_open=True)
    top_k: int | None = ranged(None, 1)
    top_p: float | None = ranged(None, 0, 1, low_open=True)
    separate_critic: bool = False
    precision: str = "auto"
    lora: LoraSettings = field(default_factory=LoraSettings)

    def policy_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the TransformerPolicy."""
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "lora"},
                "lora": self.lora.policy_kwarg()}


@dataclass
class EvalConfig(Checked):
    """Evaluation on held-out items before and after training (greedy decoding)."""

    split: str = "validation"
    n: int | None = ranged(16, 1)
    batch_size: int = ranged(16, 1)
    show: int = ranged(3, 0)
    before: bool = True
    after: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_split(self.split, "split")


@dataclass
class CheckpointConfig(Checked):
    """``every``: env steps between periodic checkpoints (0: final only); ``keep``: periodic ones kept;
    ``save_agent``: also write ``agent.zip`` (what resuming needs: the weights and AdamW's two moments, about 3x
    the model's fp32 weights; the frozen reference is rebuilt, not saved)."""

    every: int = ranged(500, 0)
    keep: int = ranged(1, 1)
    save_agent: bool = False


@dataclass
class TrainConfig(Checked):
    """Everything one ``textgym train`` run needs.

    Args:
        algo: ``"ppo"``, ``"a2c"``, ``"rloo"``, ``"grpo"``, ``"nlpo"`` or ``"sft"``.
        model: Base model alias, folder or hub id; the KL reference and the perplexity judge.
        init: Checkpoint folder to start from instead of ``model`` (e.g. an SFT run's ``final``).
        total_timesteps: Environment steps (generated tokens) for PPO/A2C; unused by SFT.
        num_envs: Parallel episodes.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        threads: CPU threads for torch; ``None``: left as they are (``textgym train``: all cores or ``$OMP_NUM_THREADS``).
        out: Output folder (``None``: ``runs/<algo>-<env>-seed<seed>``).
    """

    env: EnvConfig = field(default_factory=EnvConfig)
    algo: str = "ppo"
    model: str = field(default_factory=default_model)  # $TEXTGYM_DEFAULT_MODEL, else smollm2-135m
    init: str | None = None
    total_timesteps: int = ranged(1024, 1)  # 4 rollouts of 16 envs x 16 tokens: the progress bar ends at its total
    num_envs: int = ranged(16, 1)
    device: str = "auto"
    threads: int | None = ranged(None, 1)
    seed: int = ranged(0, 0, 2**32 - 1)
    out: str | None = None
    tensorboard: bool = True
    progress_bar: bool = True
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    a2c: A2CConfig = field(default_factory=A2CConfig)
    rloo: RLOOConfig = field(default_factory=RLOOConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    nlpo: NLPOConfig = field(default_factory=NLPOConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {list(ALGOS)}, got {self.algo!r}")
        super().__post_init__()
        from textgym.devices import resolve_device

        resolve_device(self.device)  # an unknown or absent device fails now, not after loading the model

    def run_dir(self) -> Path:
        """The output folder: ``out`` or ``runs/<algo>-<env name>-seed<seed>``."""
        if self.out:
            return Path(self.out)
        return Path("runs") / f"{self.algo}-{self.env.id.split('/')[-1]}-seed{self.seed}"


class ConfigError(ValueError):
    """A configuration file or override that does not fit the dataclasses."""


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Return ``value`` if it fits ``hint`` (ints are accepted for floats); else raise ConfigError."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check_type(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(hint)}, got {value!r}")
    if hint is type(None):
        if value is None:
            return None
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)  # PyYAML reads 1e-5 (no dot) as a string
    elif origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, list):
            return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif hint in (int, str, bool):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
    raise ConfigError(f"{where}: expected {_type_name(hint)}, got {value!r}")


_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict; unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown config key(s) {[prefix + k for k in unknown]}; allowed in "
                          f"{where or 'the top level'}: {sorted(allowed)}")
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        hint = hints[key]
        if is_dataclass(hint):
            kwargs[key] = from_dict(hint, value or {}, path)
        else:
            kwargs[key] = _check_type(value, hint, path)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # range checks and the annotations' type checks
        text = str(exc)
        field_name = text.split(" ", 1)[0]
        if where and field_name in allowed:  # "n_steps must be >= 1" -> "ppo.n_steps must be >= 1"
            raise ConfigError(f"{where}.{text}") from None
        raise ConfigError(f"{where + ': ' if where else ''}{text}") from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML file (optional) into :class:`TrainConfig`, then apply dotted ``overrides``.

    >>> load_config(overrides={"algo": "a2c", "a2c.n_steps": 8}).a2c.n_steps
    8
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        import yaml

        from textgym.filekinds import require

        require(path, ("yaml", "json", "empty-file"), "config file", "a YAML config (a mapping of keys to values)")

        try:
            from textgym.io import read_text

            data = yaml.safe_load(read_text(path, "config file")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    data = merge(data, overrides or {})
    return from_dict(TrainConfig, data)


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` (nested dicts or dotted keys such as ``"ppo.n_steps"``) into a copy of ``base``.

    >>> merge({"ppo": {"n_steps": 4, "n_epochs": 2}}, {"ppo.n_steps": 8})
    {'ppo': {'n_steps': 8, 'n_epochs': 2}}
    """
    out = json.loads(json.dumps(base))
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            if not isinstance(node.get(part, {}), dict):
                raise ConfigError(f"cannot set {key}: {part} is not a section")
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = merge(node[leaf], value)
        else:
            node[leaf] = value
    return out


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["ppo.n_steps=8", "env.reward=rougeL"]`` -> dotted overrides, values parsed as YAML scalars."""
    import yaml

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain nested dict (JSON/YAML-ready)."""
    return asdict(config)


# Settings that do not change what is learned; left out of the hash so seeds and machines group.
# (The leaderboard's row labels skip them too: they never tell two configs apart.)
UNHASHED = ("seed", "out", "device", "threads", "tensorboard", "progress_bar", "checkpoint")

_LATER_SECTIONS = {"rloo": RLOOConfig, "grpo": GRPOConfig, "nlpo": NLPOConfig}
# Algorithm fields added after records were made: hashed only when set, so those records keep their hash.
_LATER_ALGO_DEFAULTS = {"ppo": {"baseline": "critic", "group_size": None, "fluency_coef": 0.0},
                        "a2c": {"baseline": "critic", "group_size": None, "fluency_coef": 0.0},
                        "rloo": {"kl_penalty": "reward", "fluency_coef": 0.0},
                        "grpo": {"fluency_coef": 0.0}, "nlpo": {"fluency_coef": 0.0}}
_LATER_POLICY_DEFAULTS = {"precision": "auto", "lora": asdict(LoraSettings())}


def _without_later_defaults(section: str, values: dict[str, Any]) -> dict[str, Any]:
    later = _LATER_ALGO_DEFAULTS.get(section, {})
    return {key: value for key, value in values.items() if key not in later or value != later[key]}


def config_hash(config: TrainConfig | dict[str, Any]) -> str:
    """Short sha256 of the config without the seed and run-local settings (output folder, device...)."""
    data = to_dict(config) if dataclasses.is_dataclass(config) else dict(config)
    for key in UNHASHED:
        data.pop(key, None)
    # Policy settings added later hash only when set, so older records of the same run still group.
    policy = dict(data.get("policy") or {})
    for key, default in _LATER_POLICY_DEFAULTS.items():
        if key in policy and policy[key] == default:
            policy.pop(key)
    if "policy" in data:
        data["policy"] = policy
    for section in _LATER_ALGO_DEFAULTS:
        if isinstance(data.get(section), dict):
            data[section] = _without_later_defaults(section, data[section])
    for section, cls in _LATER_SECTIONS.items():  # algorithms added later hash only when their settings change
        if data.get(section) == _without_later_defaults(section, asdict(cls())):
            data.pop(section)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
