"""Checkpoint folders: a Hugging Face ``save_pretrained`` folder (model + tokenizer) plus metadata.

Every checkpoint that ``textgym train`` writes (SFT, PPO, A2C; periodic and final) is such a folder,
so ``--init``, ``--model`` and ``textgym eval --checkpoint`` all read it with ``from_pretrained``.
PPO/A2C checkpoints also hold ``agent.zip`` (what resuming needs: the trainable weights, value head
and optimizer state, in the safe format of :mod:`agents.agent_zip`) for ``agents.PPO.load``. Folders are written atomically: into a temporary
sibling first, then renamed into place. Reading them (:data:`META_FILE`, ``read_meta``,
``check_checkpoint``) lives in :mod:`textgym.checkpoints`, which ``textgym eval`` shares.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from textgym.checkpoints import META_FILE, check_checkpoint, read_meta  # noqa: F401  (the read side, re-exported)
from textgym.io import atomic_dir

_STEP_NAME = re.compile(r"step_(\d+)")


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


def checkpoint_step(folder: str | os.PathLike) -> int | None:
    """The step number of a periodic checkpoint folder named ``step_<N>`` (None for other names).

    >>> checkpoint_step("runs/x/checkpoints/step_00000960"), checkpoint_step("final")
    (960, None)
    """
    match = _STEP_NAME.fullmatch(Path(folder).name)
    return int(match.group(1)) if match else None


def prune_checkpoints(folder: str | os.PathLike, keep: int, current_step: int) -> list[Path]:
    """Delete periodic checkpoints in ``folder`` so that the ``keep`` newest (by step number) remain.

    Folders with a step above ``current_step`` are stale, from an older run in the same output
    folder (a run's steps only grow), and are deleted first. Returns the deleted folders.

    Raises:
        ValueError: ``keep`` is not a positive int (0 or less would delete the one just written).
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"checkpoint.keep must be an int >= 1, got {keep!r}")
    found = [(checkpoint_step(p), p) for p in Path(folder).glob("step_*") if p.is_dir()]
    found = [(step, p) for step, p in found if step is not None]
    stale = [p for step, p in found if step > current_step]
    current = sorted((item for item in found if item[0] <= current_step), key=lambda item: item[0])
    doomed = stale + [p for _, p in current[: max(0, len(current) - keep)]]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def next_checkpoint_step(num_timesteps: int, every: int) -> int:
    """The first multiple of ``every`` above ``num_timesteps`` (``every`` must be >= 1).

    >>> next_checkpoint_step(1165, 500)
    1500
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"checkpoint.every must be an int >= 1 here, got {every!r}")
    return (int(num_timesteps) // every + 1) * every


# Zips saved before agents named their algorithm: the SB3 base tells the family apart.
_FAMILIES = {"PPO": "PPO-family", "GRPO": "PPO-family", "A2C": "A2C-family", "RLOO": "A2C-family"}


def check_agent_zip(path: str | os.PathLike, custom_objects: dict[str, Any] | None = None,
                    algorithm: str | None = None, call: str | None = None) -> Path:
    """The file ``PPO.load`` / ``A2C.load`` should read for ``path``, checked; ValueError or
    FileNotFoundError say what is wrong (missing, not a zip, truncated, base model folder gone).

    SB3's rule applies: a path without a suffix means ``path.zip``. A saved agent holds its trainable
    weights, but its policy is rebuilt from ``policy_kwargs['model_name']`` first (architecture,
    tokenizer, the KL reference): when that is a folder that no longer exists, the message says so and
    how to point the agent at another copy (``custom_objects={"policy_kwargs": {..., "model_name": NEW}}``).
    With ``algorithm`` (the loading class's name), a zip saved by another algorithm, or any other kind of
    textgym file (see :mod:`textgym.filekinds`), is refused with what it is and what opens it.
    """
    import zipfile

    from textgym.filekinds import WrongFileError, identify

    given = Path(path).expanduser()
    call = call or f"{algorithm or 'agent'}.load"  # what the messages name as the opener
    if given.is_dir():
        found = identify(given)
        inside = f"; its agent is {given / 'agent.zip'}" if (given / "agent.zip").is_file() else ""
        raise WrongFileError(f"{call} needs a saved agent zip, but {given} is {found.what}{inside}")
    candidates = [given] if given.suffix else [given.with_suffix(".zip"), given]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(f"saved agent {given} does not exist" +
                                (f" (nor {candidates[0]})" if len(candidates) > 1 else ""))
    kind = identify(found)
    if not kind.kind.startswith(("agent-zip", "sb3-zip", "zip", "truncated", "binary")):
        raise WrongFileError(f"{call} needs a saved agent zip, but {found} is {kind.what}"
                             + (f"; open it with {kind.opens.replace('PATH', str(found))}" if kind.opens else ""))
    try:
        with zipfile.ZipFile(found) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise ValueError(f"saved agent {found} is corrupt (member {bad} fails its checksum)")
            data = json.loads(archive.read("data").decode("utf-8")) if "data" in archive.namelist() else None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"saved agent {found} is not a readable zip ({exc}); it may be truncated") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"saved agent {found} has a corrupt 'data' entry ({exc})") from None
    if data is None:
        raise ValueError(f"{found} is not an SB3 agent zip (no 'data' entry)")
    if algorithm is not None:
        if kind.kind not in (f"agent-zip:{algorithm}", f"agent-zip:{_FAMILIES.get(algorithm)}"):
            raise WrongFileError(f"{algorithm}.load needs a saved {algorithm} agent, but {found} is {kind.what}"
                                 + (f"; open it with {kind.opens.replace('PATH', str(found))}" if kind.opens else ""))
    kwargs = (custom_objects or {}).get("policy_kwargs", data.get("policy_kwargs"))
    model_name = kwargs.get("model_name") if isinstance(kwargs, dict) else None
    if isinstance(model_name, str) and model_name.startswith(("/", ".", "~")) and not Path(model_name).expanduser().is_dir():
        raise FileNotFoundError(
            f"saved agent {found} was built from the model folder {model_name}, which no longer exists: the zip "
            "holds the weights, but the policy's architecture and tokenizer come from that folder. Restore it, or "
            "load with custom_objects={'policy_kwargs': {..., 'model_name': OTHER_COPY}}")
    return found
