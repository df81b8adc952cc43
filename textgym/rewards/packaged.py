"""The weight files of the packaged NumPy-only reward models (``sentiment``, ``dialogue_act``): one ``.npz``
holding ``weights``, ``bias`` and JSON metadata, written atomically and read with a clear error when missing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from textgym.io import atomic_file


def write_weights(path: str | os.PathLike, weights: Any, bias: Any, meta: dict[str, Any]) -> Path:
    """Write ``weights`` (float16), ``bias`` (float32) and ``meta`` to ``path``; a crash leaves the old file."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as fh:
        np.savez_compressed(fh, weights=np.asarray(weights, dtype=np.float16), bias=np.asarray(bias, dtype=np.float32),
                            meta=np.array(json.dumps(meta)))
    return path


def read_weights(path: str | os.PathLike, what: str, rebuild: str) -> tuple[Any, Any, dict[str, Any]]:
    """``(weights as float32, bias as float32, metadata)`` of ``path``.

    Raises:
        FileNotFoundError: No such file, naming ``what`` it holds and the ``rebuild`` command.
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights {path} are missing; rebuild them with `{rebuild}` or reinstall textgym")
    with np.load(path) as data:
        return data["weights"].astype(np.float32), data["bias"].astype(np.float32), json.loads(str(data["meta"]))
