"""Typed training configuration: the dataclasses are the source of truth, YAML only fills them in.

A YAML file (or a plain dict) is loaded into :class:`TrainConfig`; a key that is not a field is an
error naming the allowed keys, and a value of the wrong type is an error naming the expected type.
Command-line flags and ``--set section.key=value`` overrides are applied on top of the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Union

ALGOS = ("ppo", "a2c", "sft")


@dataclass
class EnvConfig:
    """Which environment to train on and its keyword arguments (``None``: the id's preset).

    ``train_split``: the split (or slice, e.g. ``"validation[:600]"``) that PPO/A2C/SFT train on.
    """

    id: str = "textgym/Generation-v0"
    train_split: str = "train"
    data_dir: str | None = None
    reward: Any = None
    reward_mode: str | None = None
    max_prompt_length: int | None = None
    max_new_tokens: int | None = 16


@dataclass
class PolicyConfig:
    """``policy_kwargs`` of the TransformerPolicy (sampling controls apply to the action distribution)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    separate_critic: bool = False


@dataclass
class PPOConfig:
    """agents.PPO hyperparameters (SB3 names); defaults sized for a few minutes on a 2-core CPU."""

    learning_rate: float = 1e-5
    n_steps: int = 8
    batch_size: int = 128
    n_epochs: int = 2
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.1  # the value loss also trains the shared trunk: 0.5 let it swamp the policy gradient
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    kl_coef: float = 0.05
    kl_target: float | None = None


@dataclass
class A2CConfig:
    """agents.A2C hyperparameters (SB3 names)."""

    learning_rate: float = 1e-5
    n_steps: int = 16
    gamma: float = 1.0
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    vf_coef: float = 0.1
    max_grad_norm: float = 0.5
    kl_coef: float = 0.05
    kl_target: float | None = None


@dataclass
class SFTConfig:
    """Supervised warm start: teacher-forced fine-tuning on the train split's references."""

    learning_rate: float = 5e-5
    epochs: float = 1.0
    batch_size: int = 16
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    all_references: bool = True


@dataclass
class EvalConfig:
    """Evaluation on held-out items before and after training (greedy decoding)."""

    split: str = "validation"
    n: int | None = 16
    batch_size: int = 16
    show: int = 3
    before: bool = True
    after: bool = True


@dataclass
class CheckpointConfig:
    """``every``: env steps between periodic checkpoints (0: final only); ``keep``: periodic ones kept;
    ``save_agent``: also write ``agent.zip`` (SB3's whole state, to resume; about 16x the model's size)."""

    every: int = 500
    keep: int = 1
    save_agent: bool = False


@dataclass
class TrainConfig:
    """Everything one ``textgym train`` run needs.

    Args:
        algo: ``"ppo"``, ``"a2c"`` or ``"sft"``.
        model: Base model alias, folder or hub id; the KL reference and the perplexity judge.
        init: Checkpoint folder to start from instead of ``model`` (e.g. an SFT run's ``final``).
        total_timesteps: Environment steps (generated tokens) for PPO/A2C; unused by SFT.
        num_envs: Parallel episodes.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        threads: CPU threads for torch; ``None`` picks from the cores that are idle now.
        out: Output folder (``None``: ``runs/<algo>-<env>-seed<seed>``).
    """

    env: EnvConfig = field(default_factory=EnvConfig)
    algo: str = "ppo"
    model: str = "smollm2-135m"
    init: str | None = None
    total_timesteps: int = 960
    num_envs: int = 16
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    out: str | None = None
    tensorboard: bool = True
    progress_bar: bool = True
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    a2c: A2CConfig = field(default_factory=A2CConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {list(ALGOS)}, got {self.algo!r}")
        for name in ("total_timesteps", "num_envs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or null, got {self.threads}")

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
    elif hint in (int, str, bool):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
    raise ConfigError(f"{where}: expected {_type_name(hint)}, got {value!r}")


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
    except ValueError as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML file (optional) into :class:`TrainConfig`, then apply dotted ``overrides``.

    >>> load_config(overrides={"algo": "a2c", "a2c.n_steps": 8}).a2c.n_steps
    8
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        import yaml

        try:
            data = yaml.safe_load(path.read_text()) or {}
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
_UNHASHED = ("seed", "out", "device", "threads", "tensorboard", "progress_bar", "checkpoint")


def config_hash(config: TrainConfig | dict[str, Any]) -> str:
    """Short sha256 of the config without the seed and run-local settings (output folder, device...)."""
    data = to_dict(config) if dataclasses.is_dataclass(config) else dict(config)
    for key in _UNHASHED:
        data.pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
