"""The saved-agent zip: SB3's layout, but tensors in safetensors and the data in plain JSON, no pickles.

SB3 2.x writes ``policy.pth`` and ``policy.optimizer.pth`` with ``torch.save`` and reads them with
``torch.load(weights_only=True)``, a restricted unpickler; its ``data`` entry is JSON, but every
value JSON cannot hold (the spaces, the policy class, schedules, ``_last_obs``) is a base64
cloudpickle, which ``load`` unpickles: loading a downloaded SB3 zip runs whatever code it holds.

This format keeps SB3's layout (one zip, the same ``data`` keys, one member per state dict), with
nothing to unpickle:

- ``data``: JSON. Values JSON cannot hold are tagged (``{":kind:": "ndarray", ...}``, see
  :mod:`agents.json_codec`): arrays, tuples, deques, gymnasium spaces, SB3's schedules, and
  classes or dataclasses by name from a fixed allow-list. A value none of these describe (a
  ``lambda`` learning rate) is not stored: ``save`` warns, and ``load`` asks for it in
  ``custom_objects``. ``lr_schedule`` is not stored: SB3 rebuilds it from ``learning_rate``.
- ``policy.safetensors``: the policy's state dict; tensors that share memory (an LM head tied to
  the embeddings) are stored once, the other names recorded in the header as aliases.
- ``policy.optimizer.safetensors``: the optimizer's tensors; its structure (param groups,
  step counts) is JSON in the safetensors header, through the same tagged codec.
- ``textgym_format.json`` marks the format; ``_stable_baselines3_version`` and ``system_info.txt``
  as SB3 writes them.

Zips without the marker are SB3's own format (textgym wrote it before): ``load`` reads them only
when told to trust the file (``allow_pickle=True``).
"""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable

import torch as th

from agents.json_codec import decode, encode
from textgym.io import atomic_file

FORMAT_MEMBER = "textgym_format.json"
FORMAT = {"format": "textgym-agent", "version": 1, "tensors": "safetensors", "data": "json"}
LOADING = ContextVar("textgym_loading_params", default=None)  # the tensors read, while ``load`` runs SB3's


# --- tensors as safetensors --------------------------------------------------------------------------
_DTYPES = {th.float64: "F64", th.float32: "F32", th.float16: "F16", th.bfloat16: "BF16", th.int64: "I64",
           th.int32: "I32", th.int16: "I16", th.int8: "I8", th.uint8: "U8", th.bool: "BOOL"}


def write_safetensors(handle: Any, tensors: dict[str, th.Tensor], metadata: dict[str, str]) -> None:
    """Stream ``tensors`` to ``handle`` in the safetensors layout, one tensor at a time (no copy of the whole).

    The layout: 8 bytes of header length (little-endian), a JSON header (dtype, shape and byte range of
    each tensor, and ``__metadata__``) padded with spaces to 8 bytes, then the tensors' bytes in order.
    ``safetensors.torch.load`` reads it back (and the tests check that it does).
    """
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in _DTYPES:
            raise TypeError(f"cannot save tensor {name!r} of dtype {tensor.dtype}: allowed {sorted(map(str, _DTYPES))}")
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": _DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    handle.write(len(text).to_bytes(8, "little"))
    handle.write(text)
    for tensor in tensors.values():
        if tensor.numel():
            flat = tensor.detach().cpu().contiguous().reshape(-1).view(th.uint8)  # (bytes,)
            handle.write(memoryview(flat.numpy()))


def _kept_tensors(state: dict[str, th.Tensor]) -> tuple[dict[str, th.Tensor], dict[str, str]]:
    """``state`` with tensors that share memory (tied weights) kept once: (kept, {alias: kept name})."""
    kept: dict[str, th.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    storages: set[tuple] = set()
    for name, tensor in state.items():
        tensor = tensor.detach()
        ident = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
                 tensor.stride(), tensor.dtype)
        if tensor.numel() and ident in seen:
            aliases[name] = seen[ident]
            continue
        seen[ident] = name
        shares = tensor.numel() and ident[:2] in storages  # another view of memory already kept: its own copy
        storages.add(ident[:2])
        kept[name] = tensor.clone() if shares else tensor
    return kept, aliases


def write_state_dict(handle: Any, state: dict[str, th.Tensor]) -> None:
    """A module state dict as safetensors; tensors sharing memory (tied weights) are stored once."""
    kept, aliases = _kept_tensors(state)
    write_safetensors(handle, kept, {"aliases": json.dumps(aliases)})


def state_dict_bytes(state: dict[str, th.Tensor]) -> bytes:
    """:func:`write_state_dict` into bytes."""
    buffer = io.BytesIO()
    write_state_dict(buffer, state)
    return buffer.getvalue()


def state_dict_from_bytes(raw: bytes) -> dict[str, th.Tensor]:
    """Invert :func:`state_dict_bytes` (on the CPU; ``load_state_dict`` copies to the module's device)."""
    from safetensors.torch import load

    tensors = load(raw)
    aliases = json.loads(_metadata(raw).get("aliases", "{}"))
    for alias, name in aliases.items():
        tensors[alias] = tensors[name]
    return tensors


def write_optimizer(handle: Any, state: dict[str, Any]) -> None:
    """An optimizer's ``state_dict()`` as safetensors: its tensors, and its structure as tagged JSON in the header."""
    tensors: dict[str, th.Tensor] = {}
    structure = encode(state, tensors)
    write_safetensors(handle, tensors, {"structure": json.dumps(structure)})


def optimizer_bytes(state: dict[str, Any]) -> bytes:
    """:func:`write_optimizer` into bytes."""
    buffer = io.BytesIO()
    write_optimizer(buffer, state)
    return buffer.getvalue()


def optimizer_from_bytes(raw: bytes) -> dict[str, Any]:
    """Invert :func:`optimizer_bytes`."""
    from safetensors.torch import load

    return decode(json.loads(_metadata(raw)["structure"]), load(raw))


def _metadata(raw: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes (the header is 8 bytes of length, then JSON)."""
    size = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + size].decode("utf-8")).get("__metadata__") or {}


# --- the zip -------------------------------------------------------------------------------------------
def write_agent_zip(file: Any, data: dict[str, Any], params: dict[str, dict[str, Any]],
                    variables: dict[str, Any] | None = None) -> list[str]:
    """Write the zip to ``file`` (a path or a binary file object); returns the data keys that were not stored.

    Args:
        data: The algorithm's attributes to save (SB3's ``save`` selection).
        params: ``{name: state_dict}`` as SB3's ``get_parameters`` gives (``policy``, ``policy.optimizer``);
            ``None`` for one left out on purpose (recorded, and ``None`` again at load).
        variables: Other tensors (SB3's ``pytorch_variables``), if any.
    """
    import stable_baselines3 as sb3
    from stable_baselines3.common.utils import get_system_info

    encoded = {key: encode(value) for key, value in data.items()}
    not_stored = sorted(k for k, v in encoded.items() if '"not-stored"' in json.dumps(v))
    left_out = sorted(name for name, state in params.items() if state is None)
    with zipfile.ZipFile(file, mode="w") as archive:
        archive.writestr(FORMAT_MEMBER, json.dumps({**FORMAT, "not_saved": left_out}))
        archive.writestr("data", json.dumps(encoded))
        for name, state in params.items():
            if state is None:
                continue
            write = write_optimizer if isinstance(state, dict) and "param_groups" in state else write_state_dict
            with archive.open(f"{name}.safetensors", mode="w", force_zip64=True) as member:
                write(member, state)
        if variables:
            with archive.open("pytorch_variables.safetensors", mode="w", force_zip64=True) as member:
                write_optimizer(member, variables)
        archive.writestr("_stable_baselines3_version", sb3.__version__)
        archive.writestr("system_info.txt", get_system_info(print_info=False)[1])
    return not_stored


def save_contents(algo: Any, exclude: Any = None, include: Any = None,
                  optimizer: bool = True) -> tuple[dict, dict, dict]:
    """``(data, params, variables)`` that SB3's ``save`` would write for ``algo``, with the same exclusions.

    ``optimizer=False`` leaves the optimizers' state out (``None`` in ``params``: not saved).
    """
    from stable_baselines3.common.save_util import recursive_getattr

    skip = (set(exclude or ()) | set(algo._excluded_save_params())) - set(include or ())
    state_names, variable_names = algo._get_torch_save_params()
    skip |= {name.split(".")[0] for name in [*state_names, *variable_names]}  # stored as tensors, not data
    skip.add("lr_schedule")  # SB3's _setup_model rebuilds it from learning_rate, at load too
    data = {key: value for key, value in algo.__dict__.items() if key not in skip}
    variables = {name: recursive_getattr(algo, name) for name in variable_names}
    params = algo.get_parameters()
    if not optimizer:
        params = {name: None if "param_groups" in state else state for name, state in params.items()}
    return data, params, variables


def is_agent_zip(file: Any) -> bool:
    """Whether ``file`` (path or binary file object) is in this format (else: SB3's, with pickles)."""
    with zipfile.ZipFile(file) as archive:
        return FORMAT_MEMBER in archive.namelist()


def read_agent_zip(file: Any, custom_objects: dict[str, Any] | None = None,
                   load_data: bool = True) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """``(data, params, variables)`` from a zip in this format, as SB3's ``load_from_zip_file`` gives them.

    ``custom_objects`` replace data values by key, as in SB3 (they are never decoded). Raises
    ValueError when a value that was not stored (a callable) is not in ``custom_objects``.
    """
    custom = dict(custom_objects or {})
    data: dict[str, Any] = {}
    params: dict[str, Any] = {}
    variables = None
    with zipfile.ZipFile(file) as archive:
        names = archive.namelist()
        params.update({name: None for name in json.loads(archive.read(FORMAT_MEMBER)).get("not_saved", [])})
        if load_data:
            stored = json.loads(archive.read("data").decode("utf-8"))
            missing = sorted(k for k, v in stored.items() if k not in custom and '"not-stored"' in json.dumps(v))
            if missing:
                raise ValueError(
                    f"saved agent: {missing} held Python objects this format does not store (a file holds no code); "
                    f"pass them at load, e.g. custom_objects={{{missing[0]!r}: ...}}")
            data = {key: custom[key] if key in custom else decode(value) for key, value in stored.items()}
        for member in names:
            if not member.endswith(".safetensors"):
                continue
            raw = archive.read(member)
            name = member[: -len(".safetensors")]
            if name == "pytorch_variables":
                variables = optimizer_from_bytes(raw)
            elif "structure" in _metadata(raw):
                params[name] = optimizer_from_bytes(raw)
            else:
                params[name] = state_dict_from_bytes(raw)
            del raw
    if hasattr(file, "seek"):
        file.seek(0)  # SB3's load reads the same file object after us
    return data, params, variables


def legacy_zip_message(path: Any) -> str:
    """Why a zip in SB3's pickle format is refused, and how to load it anyway."""
    where = str(path) if isinstance(path, (str, os.PathLike)) else "this file"
    return (f"saved agent {where} is in SB3's own format (written by stable-baselines3, or by textgym before "
            "safetensors): its 'data' holds cloudpickled objects, and loading it runs any code they contain. Load "
            "it only if you trust where it came from, with load(path, allow_pickle=True); save it again to get the "
            "safe format")


def warn_not_stored(keys: list[str]) -> None:
    """Tell the user at save time which values ``load`` will need in ``custom_objects``."""
    if keys:
        warnings.warn(f"save: {keys} are Python objects (e.g. a callable schedule) that the zip does not store; "
                      f"load it with custom_objects={{{keys[0]!r}: ...}}", stacklevel=3)


# --- what the algorithm's save / load / set_parameters call -------------------------------------------
def check_path(path: Any, call: str, needs: tuple[str, ...]) -> None:
    """``path`` of ``save``/``load``/``set_parameters`` must be a file path or a binary file object with the methods
    ``needs``: TypeError naming ``path`` otherwise (not zipfile's ``AttributeError`` on ``.write``/``.seek``)."""
    if isinstance(path, (str, os.PathLike)) or (not isinstance(path, (bytes, bytearray, dict))
                                                and all(callable(getattr(path, m, None)) for m in needs)):
        return
    raise TypeError(f"{call}: path must be a file path (str or os.PathLike) or a binary file object (with "
                    f"{', '.join(needs)}), got {path!r} (a {type(path).__name__})")


def save_agent(algo: Any, path: Any, exclude: Any = None, include: Any = None, optimizer: bool = True) -> None:
    """Write ``algo`` to ``path`` (SB3's rule: no suffix means ``.zip``) atomically, or to a binary file object."""
    check_path(path, f"{type(algo).__name__}.save", ("write",))
    contents = save_contents(algo, exclude, include, optimizer)
    if not isinstance(path, (str, os.PathLike)):
        not_stored = write_agent_zip(path, *contents)
    else:
        final = Path(path)
        if final.suffix == "":
            final = final.with_suffix(".zip")
        with atomic_file(final, "wb") as handle:
            not_stored = write_agent_zip(handle, *contents)
    warn_not_stored(not_stored)


def load_agent(sb3_load: Callable[..., Any], path: Any, custom_objects: dict[str, Any] | None,
               allow_pickle: bool) -> Any:
    """Run SB3's ``load`` (``sb3_load(custom_objects=...)``) on a safe zip, with every data value decoded here.

    SB3 then unpickles nothing: each value of ``data`` is given as a custom object, and the tensors
    reach ``set_parameters`` through :data:`LOADING`. A zip in SB3's format goes to SB3's own
    load only with ``allow_pickle``.
    """
    if not is_agent_zip(path):
        if not allow_pickle:
            raise ValueError(legacy_zip_message(path))
        return sb3_load(custom_objects=custom_objects)
    data, params, variables = read_agent_zip(path, custom_objects)
    token = LOADING.set(params)
    try:
        model = sb3_load(custom_objects=data)
    finally:
        LOADING.reset(token)
    from stable_baselines3.common.save_util import recursive_setattr

    for name, value in (variables or {}).items():
        recursive_setattr(model, f"{name}.data", value)
    return model


def parameters_to_set(load_path_or_dict: Any) -> Any:
    """What SB3's ``set_parameters`` should get: the tensors ``load`` read, or those of a safe zip at a path."""
    if isinstance(load_path_or_dict, dict):
        pending = LOADING.get()
        return load_path_or_dict if pending is None else {**pending, **load_path_or_dict}
    check_path(load_path_or_dict, "set_parameters", ("read", "seek"))
    if isinstance(load_path_or_dict, (str, os.PathLike)):
        from agents.checkpoints import check_agent_zip

        # what the file is, before SB3 reads it (a text file, a zip of something else, a folder...); its model
        # folder is not needed here, the policy is built already (an empty policy_kwargs skips that check)
        load_path_or_dict = check_agent_zip(load_path_or_dict, {"policy_kwargs": {}}, call="set_parameters")
    if is_agent_zip(load_path_or_dict):
        return read_agent_zip(load_path_or_dict, load_data=False)[1]
    return load_path_or_dict  # SB3's format: SB3 reads its tensors with torch.load(weights_only=True)
