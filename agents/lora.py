"""LoRA adapters for the TransformerPolicy, through ``peft`` (``pip install 'textgym[lora]'``).

The adapters are injected into the policy's own LM, so the trunk, the rollout and the update code
stay the same; the frozen base weights double as the KL reference (adapters disabled), and only
the adapters and the value head are trained, optimised and saved.
"""

from __future__ import annotations

import math

import copy
import warnings
from typing import Any

from torch import nn

LORA_KEYS = ("r", "alpha", "target_modules", "dropout")


def require_peft() -> Any:
    """Import ``peft``, or raise an ImportError that names the install command."""
    try:
        import peft
    except ImportError as exc:  # house rule 4: say which extra fixes it
        raise ImportError("LoRA policies need the peft package: pip install 'textgym[lora]'") from exc
    return peft


def check_lora(lora: Any, prefix: str = "lora ") -> dict[str, Any] | None:
    """Validate LoRA settings and fill in defaults; the one place their rules live.

    ``None``, ``False`` or ``r = 0`` mean no LoRA (the whole model trains), both for the policy
    keyword ``lora`` and for ``textgym train``'s ``policy.lora`` section.

    Keys: ``r`` (rank, >= 0; default 8), ``alpha`` (scale numerator, > 0; default ``2 * r``),
    ``target_modules`` (a list of module names, a regex string, ``"all-linear"``, or ``None`` for
    peft's default for the architecture, e.g. ``q_proj`` and ``v_proj`` on Llama), ``dropout``
    (in ``[0, 1)``; default 0, so rollout and update see the same network).

    Args:
        lora: The settings.
        prefix: What the messages call a key (``"lora r must be ..."``).

    >>> check_lora({"r": 4})
    {'r': 4, 'alpha': 8.0, 'target_modules': None, 'dropout': 0.0}
    >>> check_lora(None) is None, check_lora({"r": 0}) is None
    (True, True)
    """
    if lora is None or lora is False:
        return None
    if not isinstance(lora, dict):
        raise TypeError(f"lora must be a dict with keys {list(LORA_KEYS)} (or None), got {lora!r}")
    unknown = sorted(set(lora) - set(LORA_KEYS))
    if unknown:
        raise ValueError(f"unknown lora key(s) {unknown}; allowed: {list(LORA_KEYS)}")
    r = lora.get("r", 8)
    if isinstance(r, bool) or not isinstance(r, int) or r < 0:
        raise ValueError(f"{prefix}r must be an integer >= 0 (0: no LoRA, the whole model trains), got {r!r}")
    alpha = lora.get("alpha")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0
                              or not math.isfinite(alpha)):
        raise ValueError(f"{prefix}alpha must be a finite number > 0, got {alpha!r}")
    targets = lora.get("target_modules")
    if targets is not None and not isinstance(targets, str):
        if not isinstance(targets, (list, tuple)) or not targets or not all(isinstance(t, str) for t in targets):
            raise ValueError(f"{prefix}target_modules must be None, a string (regex or 'all-linear') or a non-empty "
                             f"list of module names such as ['q_proj', 'v_proj'], got {targets!r}")
        targets = list(targets)
    dropout = lora.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"{prefix}dropout must be in [0, 1), got {dropout!r}")
    if r == 0:
        return None
    alpha = 2.0 * r if alpha is None else alpha
    return {"r": r, "alpha": float(alpha), "target_modules": targets, "dropout": float(dropout)}


def add_lora(lm: nn.Module, lora: dict[str, Any]) -> Any:
    """Inject LoRA adapters into ``lm`` (in place) and freeze its base weights; returns the ``PeftModel``.

    ``peft_model.get_base_model()`` is ``lm`` itself, now holding the adapter layers.
    """
    peft = require_peft()
    config = peft.LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], target_modules=lora["target_modules"],
                             lora_dropout=lora["dropout"], bias="none",
                             task_type="SEQ_2_SEQ_LM" if lm.config.is_encoder_decoder else "CAUSAL_LM")
    try:
        with warnings.catch_warnings():
            # peft reads transformers' deprecated `is_gradient_checkpointing` (a FutureWarning in
            # transformers 5); a user cannot act on it, so it is not shown on every LoRA run
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return peft.get_peft_model(lm, config)
    except ValueError as exc:  # e.g. no default target modules for this architecture
        raise ValueError(f"cannot add LoRA adapters to this model: {exc}; set lora target_modules, "
                         "e.g. ['q_proj', 'v_proj'] or 'all-linear'") from exc


def merged_lm(peft_model: Any) -> nn.Module:
    """A plain Hugging Face model with the adapters merged into the weights (the original is untouched).

    Merging in place and unmerging afterwards would leave rounding drift in the base weights, which
    are also the KL reference, so this merges a copy.
    """
    return copy.deepcopy(peft_model).merge_and_unload()
