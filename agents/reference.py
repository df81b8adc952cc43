"""The frozen KL reference in a saved agent: not stored when it can be rebuilt, and checked when it is.

The reference is the policy's initial model, reloadable from ``model_name`` (an alias, a hub id or a
folder). A saved agent records that source and a fingerprint of the reference's weights; loading
rebuilds the reference from the source and refuses when the fingerprint differs (the folder was
overwritten, the alias now names other weights). ``save(..., include_reference=True)`` stores the
reference itself, for runs whose source will not outlive the agent (a temporary SFT checkpoint).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch as th
from torch import nn

_SAMPLED = 64  # values per tensor in the fingerprint, spread over the tensor


def weights_fingerprint(module: nn.Module) -> str:
    """A short hash of a module's weights: every tensor's name, shape, dtype, sums and a strided sample.

    Changing any weight by more than float rounding changes the sums; it costs one pass over the
    weights (about 0.3 s for 135M parameters on one CPU core), not a hash of every byte.
    """
    digest = hashlib.sha256()
    with th.no_grad():
        for name, tensor in sorted(module.state_dict().items()):
            flat = tensor.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // _SAMPLED)][:_SAMPLED].double()
            digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
            if flat.numel() and (flat.is_floating_point() or flat.is_complex()):
                stats = th.stack([flat.double().sum(), flat.double().abs().sum()])
                digest.update(stats.cpu().numpy().round(4).tobytes())
            digest.update(sample.cpu().numpy().round(6).tobytes())
    return digest.hexdigest()[:16]


def reference_record(source: str | None, fingerprint: str, saved: bool) -> dict[str, Any]:
    """What an agent's zip says about its reference (saved with the algorithm's data)."""
    return {"source": source, "fingerprint": fingerprint, "saved": saved}


def check_rebuilt_reference(record: dict[str, Any] | None, fingerprint: str, owner: str) -> None:
    """Raise ValueError when a reference rebuilt at load does not match the one the agent was saved with.

    Args:
        record: The loaded agent's :func:`reference_record` (None for agents saved before records existed).
        fingerprint: The rebuilt reference's :func:`weights_fingerprint`.
        owner: The algorithm's name, for the message.
    """
    if not record or record.get("saved") or record.get("fingerprint") == fingerprint:
        return
    raise ValueError(
        f"{owner}: this agent's KL reference is rebuilt from {record.get('source')!r}, but the weights there are not "
        f"the ones it was trained against (fingerprint {fingerprint}, saved {record.get('fingerprint')}): the "
        "model folder or alias now holds other weights. Load it with the original model (custom_objects="
        "{'policy_kwargs': {..., 'model_name': ORIGINAL}}), or save agents whose reference will not last with "
        "save(path, include_reference=True)")
