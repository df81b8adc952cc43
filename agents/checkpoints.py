"""Checkpoint folders: a Hugging Face ``save_pretrained`` folder (model + tokenizer) plus metadata.

Every checkpoint that ``textgym train`` writes (SFT, PPO, A2C; periodic and final) is such a folder,
so ``--init``, ``--model`` and ``textgym eval --checkpoint`` all read it with ``from_pretrained``.
PPO/A2C checkpoints also hold ``agent.zip`` (SB3's full state: value head, reference, optimizer)
to resume training with ``agents.PPO.load``. Folders are written atomically: into a temporary
sibling first, then renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

META_FILE = "textgym_checkpoint.json"


def atomic_dir(dest: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_folder)``, then move the folder to ``dest`` (replacing an older one).

    Readers see either the old complete folder or the new complete one, never a half-written one;
    if ``write`` fails, ``dest`` is untouched and the temporary folder is removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", suffix=".tmp", dir=dest.parent))
    old = None
    try:
        write(tmp)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}-old-", dir=dest.parent))
            os.replace(dest, old / "x")
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return dest


def save_checkpoint(dest: str | os.PathLike, lm: Any, tokenizer: Any, meta: dict[str, Any],
                    agent: Any = None) -> Path:
    """Write ``lm`` and ``tokenizer`` with ``save_pretrained``, ``meta`` as JSON, and optionally ``agent.zip``."""

    def write(folder: Path) -> None:
        lm.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        if agent is not None:
            agent.save(folder / "agent.zip")

    return atomic_dir(dest, write)


def read_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint folder (``{}`` for a plain Hugging Face folder)."""
    path = Path(folder) / META_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def check_checkpoint(folder: str | os.PathLike) -> Path:
    """Return ``folder`` if it is a loadable model folder, else raise FileNotFoundError saying why."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint folder {path} does not exist")
    if not (path / "config.json").is_file():
        hint = ""
        if (path / "final" / "config.json").is_file():
            hint = f"; did you mean {path / 'final'}?"
        raise FileNotFoundError(f"{path} is not a model checkpoint (no config.json){hint}")
    return path
