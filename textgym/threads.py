"""How many CPU threads torch uses: one rule for the Python API, ``textgym eval`` and ``textgym train``."""

from __future__ import annotations

import os


def choose_threads(requested: int | None = None) -> int:
    """CPU threads for torch: ``requested``, else ``$OMP_NUM_THREADS``, else the cores idle now (at least 1).

    OpenMP threads that compete with other busy processes for the same cores slow a forward pass
    down several times over (measured 5x on a loaded 2-core machine; ``textgym eval`` took 2 min
    53 s with 2 threads vs 19 s with 1), so by default torch only takes the cores the 1-minute
    load average leaves free.

    >>> choose_threads(3)
    3
    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads must be a positive int or None (idle cores), got {requested!r}")
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def set_threads(requested: int | None = None) -> int:
    """Apply :func:`choose_threads` to torch (``torch.set_num_threads``); returns the number set."""
    import torch

    threads = choose_threads(requested)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
