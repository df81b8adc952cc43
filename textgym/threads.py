"""How many CPU threads torch uses.

The library never changes torch's thread count on its own (``torch.get_num_threads()`` stays as
the caller set it); ``threads=N`` on an algorithm, or ``--threads N`` on the command line, sets it.
``textgym train`` and ``textgym eval`` default to :func:`default_threads` (every core this process
may use, or ``$OMP_NUM_THREADS``), a number that does not depend on how busy anything has just been.
``--threads auto`` measures how many cores *other* processes keep busy (:func:`idle_cores`).
"""

from __future__ import annotations

import os
import time
from typing import Callable

from textgym.argtypes import INT_MAX

__all__ = ["AUTO", "available_cores", "check_threads", "default_threads", "idle_cores", "parse_threads",
           "resolve_threads", "set_threads"]

AUTO = "auto"


def check_threads(value: object, name: str = "threads") -> int | None:
    """``value`` if it is a positive int or ``None``; otherwise a ValueError naming ``name``.

    >>> check_threads(2), check_threads(None)
    (2, None)
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT_MAX):
        raise ValueError(f"{name} must be a positive int or None (leave torch's threads as they are), got {value!r}")
    return value


def available_cores() -> list[int]:
    """The CPUs this process may run on (its affinity), else ``range(os.cpu_count())``."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _omp_threads() -> int | None:
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else None


def default_threads() -> int:
    """``$OMP_NUM_THREADS`` when it is a positive integer, else every core this process may use.

    The command line's default: a fixed number, unlike the load average, which counts the
    process's own recent work and so shrinks the more textgym has just done.
    """
    return _omp_threads() or len(available_cores())


def _busy_ticks(cpus: list[int]) -> tuple[int, int]:
    """(busy, total) clock ticks of ``cpus`` so far, from ``/proc/stat``."""
    wanted = {f"cpu{c}" for c in cpus}
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name not in wanted:
                continue
            ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
            busy += sum(ticks) - ticks[3] - ticks[4]
            total += sum(ticks)
    return busy, total


def _own_ticks() -> int:
    """User + system clock ticks of this process (all its threads), from ``/proc/self/stat``."""
    with open("/proc/self/stat") as f:
        fields = f.read().rpartition(")")[2].split()  # after the command name, which may hold spaces
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def idle_cores(window: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> tuple[int, float]:
    """(cores that other processes leave free, at least 1; cores they kept busy) over ``window`` seconds.

    Measures every process's CPU time on this process's cores (``/proc/stat``) minus this
    process's own (``/proc/self/stat``), so textgym's own work never counts as load. Linux only.

    Raises:
        OSError: ``/proc`` cannot be read (not Linux).
    """
    cpus = available_cores()
    busy0, total0, own0 = *_busy_ticks(cpus), _own_ticks()
    sleep(window)
    busy1, total1, own1 = *_busy_ticks(cpus), _own_ticks()
    ticks_per_cpu = (total1 - total0) / len(cpus)
    if ticks_per_cpu <= 0:
        return len(cpus), 0.0
    others = max(0.0, (busy1 - busy0) - (own1 - own0)) / ticks_per_cpu
    return max(1, min(len(cpus), int(len(cpus) - others + 0.5))), others


def parse_threads(text: str) -> int | str:
    """An argparse type for ``--threads``: a positive integer or ``auto``.

    >>> parse_threads("2"), parse_threads("auto")
    (2, 'auto')
    """
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1 or value > 4096:  # torch.set_num_threads takes a C int; no machine has more cores
        import argparse

        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or 'auto' (at most 4096), got {text!r}")
    return value


def resolve_threads(requested: int | str | None) -> tuple[int, str]:
    """The command line's thread count and why: ``N``, ``"auto"`` (idle cores now), or ``None`` (the default).

    >>> resolve_threads(3)
    (3, '--threads 3')
    """
    if requested is None:
        n = default_threads()
        why = "$OMP_NUM_THREADS" if _omp_threads() else f"all {n} cores"
        return n, f"default: {why}; --threads sets another number"
    if requested == AUTO:
        try:
            n, others = idle_cores()
        except (OSError, ValueError, IndexError):  # no /proc: nothing to measure
            n = default_threads()
            return n, "--threads auto: CPU use of other processes unknown here, so the default"
        return n, f"--threads auto: other processes kept {others:.1f} of {len(available_cores())} cores busy"
    return check_threads(requested), f"--threads {requested}"


def set_threads(threads: int) -> int:
    """``torch.set_num_threads(threads)`` (when it differs); returns ``threads``.

    Only for callers that were asked for a number: the library itself leaves torch's threads alone.
    """
    import torch

    if check_threads(threads) is None:
        raise ValueError("set_threads needs a number of threads, got None")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


# The --threads help of textgym train and textgym eval.
THREADS_HELP = ("torch CPU threads: N, or auto (the cores other processes leave idle now); "
                "default: $OMP_NUM_THREADS, else every core")
