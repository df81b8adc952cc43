"""Values of an agent's saved data as JSON, with no pickles: what SB3 cloudpickles, described instead.

:func:`encode` turns the attributes an algorithm saves into JSON-ready data: JSON's own types as
they are; arrays, tuples, deques, dicts with non-string keys, gymnasium spaces and SB3's schedules
as tagged objects (``{":kind:": "ndarray", ...}``); classes and dataclasses by name, from a fixed
allow-list (:func:`safe_classes`); tensors into a side table (the optimizer's state, stored as
safetensors). :func:`decode` builds only those types, so a file cannot name code to run. What none
of them describe (a ``lambda`` learning rate) is written as ``not-stored`` and must be given back at
load.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

import numpy as np
import torch as th

KIND = ":kind:"  # the tag of an encoded value; SB3's pickled values use ":serialized:"
_ARRAY_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64"}


class NotStored:
    """Stands for a value :func:`encode` could not describe (a callable); ``load`` needs it in ``custom_objects``."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def safe_classes() -> dict[str, type]:
    """The classes a zip may name (by ``module.qualname``): textgym's policy, KL controllers, buffers, SB3's
    schedules, torch's optimizers."""
    from stable_baselines3.common.buffers import RolloutBuffer

    from agents.buffers import EpisodeRolloutBuffer, KLPenaltyRolloutBuffer
    from agents.kl import AdaptiveKLController, FixedKLController
    from agents.policies import TransformerPolicy

    # torch's optimizers: a policy_kwargs' optimizer_class
    optimizers = [c for c in vars(th.optim).values() if isinstance(c, type) and issubclass(c, th.optim.Optimizer)]
    classes = (TransformerPolicy, FixedKLController, AdaptiveKLController, EpisodeRolloutBuffer,
               KLPenaltyRolloutBuffer, RolloutBuffer, *_schedules().values(), *optimizers)
    return {_name(c): c for c in classes}


def _schedules() -> dict[str, type]:
    """SB3's schedule classes (2.x releases before them used closures, which are not stored)."""
    from stable_baselines3.common import utils

    names = ("FloatSchedule", "ConstantSchedule", "LinearSchedule")
    return {name: getattr(utils, name) for name in names if hasattr(utils, name)}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# --- the value codec -------------------------------------------------------------------------------
def encode(value: Any, tensors: dict[str, th.Tensor] | None = None) -> Any:
    """``value`` as JSON-ready data (see the module docstring); tensors go to ``tensors`` when given."""
    import gymnasium.spaces as sp
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [encode(v, tensors) for v in value]
    if isinstance(value, tuple):
        return {KIND: "tuple", "items": [encode(v, tensors) for v in value]}
    if isinstance(value, deque):
        return {KIND: "deque", "maxlen": value.maxlen, "items": [encode(v, tensors) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and KIND not in value:
            return {k: encode(v, tensors) for k, v in value.items()}
        return {KIND: "dict", "items": [[encode(k, tensors), encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, np.ndarray) and value.dtype.name in _ARRAY_DTYPES:
        return {KIND: "ndarray", "dtype": value.dtype.name, "shape": list(value.shape), "data": value.ravel().tolist()}
    if isinstance(value, th.Tensor) and tensors is not None:
        key = f"t{len(tensors)}"
        tensors[key] = value.detach()
        return {KIND: "tensor", "key": key}
    if isinstance(value, sp.Box):
        return {KIND: "Box", "low": encode(value.low), "high": encode(value.high), "dtype": value.dtype.name}
    if isinstance(value, sp.Discrete):
        return {KIND: "Discrete", "n": int(value.n), "start": int(value.start)}
    if isinstance(value, sp.MultiDiscrete):
        return {KIND: "MultiDiscrete", "nvec": encode(value.nvec)}
    if isinstance(value, sp.MultiBinary):
        return {KIND: "MultiBinary", "n": encode(value.n)}
    if isinstance(value, sp.Dict):
        return {KIND: "DictSpace", "spaces": {k: encode(s) for k, s in value.spaces.items()}}
    if isinstance(value, sp.Tuple):
        return {KIND: "TupleSpace", "spaces": [encode(s) for s in value.spaces]}
    if type(value) is _schedules().get("FloatSchedule"):
        return {KIND: "FloatSchedule", "schedule": encode(value.value_schedule, tensors)}
    if type(value) is _schedules().get("ConstantSchedule"):
        return {KIND: "ConstantSchedule", "val": encode(value.val)}
    if type(value) is _schedules().get("LinearSchedule"):
        return {KIND: "LinearSchedule", "start": value.start, "end": value.end, "end_fraction": value.end_fraction}
    allowed = safe_classes()
    if isinstance(value, type) and _name(value) in allowed:
        return {KIND: "class", "name": _name(value)}
    if dataclasses.is_dataclass(value) and _name(type(value)) in allowed:
        fields = {f.name: encode(getattr(value, f.name), tensors) for f in dataclasses.fields(value)}
        return {KIND: "dataclass", "class": _name(type(value)), "fields": fields}
    return {KIND: "not-stored", "type": f"{type(value).__module__}.{type(value).__qualname__}"}


def decode(data: Any, tensors: dict[str, th.Tensor] | None = None) -> Any:
    """Invert :func:`encode`; builds only the types listed there (a :class:`NotStored` for what was not stored)."""
    if isinstance(data, list):
        return [decode(v, tensors) for v in data]
    if not isinstance(data, dict):
        return data
    kind = data.get(KIND)
    if kind is None:
        return {k: decode(v, tensors) for k, v in data.items()}
    build = _DECODERS.get(kind)
    if build is None:
        raise ValueError(f"saved agent: unknown value kind {kind!r} in its data (written by a newer textgym?)")
    return build(data, tensors)


def _decode_array(d: dict, _: Any) -> np.ndarray:
    if d["dtype"] not in _ARRAY_DTYPES:
        raise ValueError(f"saved agent: array dtype {d['dtype']!r} is not one of {sorted(_ARRAY_DTYPES)}")
    return np.asarray(d["data"], dtype=d["dtype"]).reshape(d["shape"])


def _decode_tensor(d: dict, tensors: dict[str, th.Tensor] | None) -> th.Tensor:
    if tensors is None or d["key"] not in tensors:
        raise ValueError(f"saved agent: tensor {d['key']!r} is missing from its safetensors member")
    return tensors[d["key"]]


def _decode_class(name: str) -> type:
    cls = safe_classes().get(name)
    if cls is None:
        raise ValueError(f"saved agent names the class {name!r}, which is not one textgym loads from a file "
                         f"({sorted(safe_classes())}); pass it in custom_objects")
    return cls


def _decode_dataclass(d: dict, tensors: Any) -> Any:
    return _decode_class(d["class"])(**decode(d["fields"], tensors))


def _space(name: str) -> Any:
    import gymnasium.spaces as sp

    return getattr(sp, name)


def _sb3_schedule(name: str) -> Any:
    return _schedules()[name]


def _float_schedule(inner: Any) -> Any:
    return inner if isinstance(inner, NotStored) else _sb3_schedule("FloatSchedule")(inner)


_DECODERS = {
    "tuple": lambda d, t: tuple(decode(d["items"], t)),
    "deque": lambda d, t: deque(decode(d["items"], t), maxlen=d["maxlen"]),
    "dict": lambda d, t: {decode(k, t): decode(v, t) for k, v in d["items"]},
    "ndarray": _decode_array,
    "tensor": _decode_tensor,
    "Box": lambda d, t: _space("Box")(low=decode(d["low"]), high=decode(d["high"]), dtype=d["dtype"]),
    "Discrete": lambda d, t: _space("Discrete")(d["n"], start=d["start"]),
    "MultiDiscrete": lambda d, t: _space("MultiDiscrete")(decode(d["nvec"])),
    "MultiBinary": lambda d, t: _space("MultiBinary")(decode(d["n"])),
    "DictSpace": lambda d, t: _space("Dict")({k: decode(s) for k, s in d["spaces"].items()}),
    "TupleSpace": lambda d, t: _space("Tuple")([decode(s) for s in d["spaces"]]),
    "FloatSchedule": lambda d, t: _float_schedule(decode(d["schedule"], t)),
    "ConstantSchedule": lambda d, t: _sb3_schedule("ConstantSchedule")(d["val"]),
    "LinearSchedule": lambda d, t: _sb3_schedule("LinearSchedule")(d["start"], d["end"], d["end_fraction"]),
    "class": lambda d, t: _decode_class(d["name"]),
    "dataclass": _decode_dataclass,
    "not-stored": lambda d, t: NotStored(d["type"]),
}
