"""The one place that turns a ``device`` argument into a ``torch.device``.

Every part of textgym and agents that takes ``device=`` (envs, rewards, evaluation, training)
resolves it here, so ``"auto"`` means the same everywhere and a device that is not there fails
at once with a message that says what is allowed.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["resolve_device", "supports_bf16", "DEVICE_HELP"]

DEVICE_HELP = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def resolve_device(device: Any = "auto"):
    """``"auto"`` (or ``None``): CUDA when available, else CPU; else a checked ``torch.device``.

    Args:
        device: ``"auto"``, ``None``, a device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``)
            or a ``torch.device``.

    Returns:
        The ``torch.device``.

    Raises:
        ValueError: The string is not a device name, or names a device this machine lacks.

    Example:
        >>> str(resolve_device("cpu"))
        'cpu'
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        ValueError: device must be one of 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu'
    """
    import torch

    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be one of {DEVICE_HELP}, got {type(device).__name__} {device!r}")
    try:
        resolved = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device must be one of {DEVICE_HELP}, got {device!r}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available on this machine; "
                             "use 'cpu' or 'auto'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"so the index must be 0..{torch.cuda.device_count() - 1}")
    elif resolved.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise ValueError(f"device {str(device)!r} was asked for but MPS is not available; use 'cpu' or 'auto'")
    elif resolved.type != "cpu":
        raise ValueError(f"device must be one of {DEVICE_HELP}, got {device!r}")
    return resolved


def supports_bf16(device: Any = "auto") -> bool:
    """Whether ``device`` computes in bf16 natively: a CUDA device whose hardware has bf16.

    Emulated bf16 does not count (``torch.cuda.is_bf16_supported(including_emulation=False)``):
    older cards would run it slower than fp32. A torch too old to tell gets ``False`` (fp32). CPUs
    and MPS get ``False``; bf16 on a CPU is opt-in (``precision="bf16"``).

    Example:
        >>> supports_bf16("cpu")
        False
    """
    import torch

    resolved = resolve_device(device)
    if resolved.type != "cuda":
        return False
    return _cuda_bf16(torch.cuda.current_device() if resolved.index is None else resolved.index)


@functools.lru_cache(maxsize=None)
def _cuda_bf16(index: int) -> bool:
    """Native bf16 on CUDA device ``index`` (asked once per device: policies ask on every forward)."""
    import torch

    try:
        with torch.cuda.device(index):
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.4 has no including_emulation: no honest answer, so fp32
        return False
