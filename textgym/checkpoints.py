"""Checkpoint folders, read side: the metadata file and the check that a folder is a model.

A checkpoint is a Hugging Face ``save_pretrained`` folder plus :data:`META_FILE` (the base model,
the run's config). :mod:`agents.checkpoints` writes them; ``textgym eval --checkpoint`` and
``textgym train --init`` read them through this module, so both layers agree on one file name
and one set of checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from textgym.filekinds import META_FILE  # defined with the other file kinds; re-exported here
from textgym.io import read_dir, read_json


def read_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint folder (``{}`` for a plain Hugging Face folder).

    Raises:
        ValueError: The metadata file is not UTF-8 JSON, or not a JSON object.
    """
    path = read_dir(folder) / META_FILE
    if not path.is_file():
        return {}
    meta = read_json(path, "checkpoint metadata")
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is corrupt: expected a JSON object, got {type(meta).__name__}")
    return meta


def check_checkpoint(folder: str | os.PathLike, what: str = "checkpoint folder") -> Path:
    """Return ``folder`` if it is a loadable model folder, else raise FileNotFoundError saying why.

    Args:
        folder: The folder to check (``~`` is expanded).
        what: How the error names a missing ``folder`` (e.g. the option that gave it).
    """
    from textgym.filekinds import WrongFileError, identify

    path = read_dir(Path(folder).expanduser())
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    found = identify(path)
    if not (path / "config.json").is_file():
        hint = f"; did you mean {path / 'final'}?" if (path / "final" / "config.json").is_file() else ""
        opens = f"; open it with {found.opens.replace('PATH', str(path))}" if found.opens and not hint else ""
        raise FileNotFoundError(f"{path} is not a model checkpoint (no config.json): it is {found.what}{hint}{opens}")
    if found.kind not in ("checkpoint", "causal-lm", "seq2seq-lm", "model"):
        opens = f"; open it with {found.opens.replace('PATH', str(path))}" if found.opens else ""
        raise WrongFileError(f"{what} needs a model checkpoint (a causal or encoder-decoder LM folder), but {path} is {found.what}{opens}")
    return path
