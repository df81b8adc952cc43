"""Token observations: the one check that an env or an observation fits a text policy.

A text policy reads ``Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int64))``.
:func:`check_text_space` refuses any other observation space at construction (one error that names
the expected space), and :func:`check_token_obs` refuses an observation given to ``policy(obs)``,
``evaluate_actions`` or ``predict`` that does not fit the model (a key, the allowed range and what was
found), instead of an embedding ``IndexError`` deep inside torch. SB3's buffers hand observations
back as floats, so whole-valued floats are accepted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces

__all__ = ["EXPECTED_SPACE", "check_obs_shapes", "check_text_space", "check_token_obs"]

EXPECTED_SPACE = "Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int64))"


def check_text_space(space: Any, owner: str = "TransformerPolicy") -> int:
    """Return the observation length ``L`` if ``space`` is a textgym token space, else raise ValueError.

    >>> check_text_space(spaces.Box(0, 1, (4,)))
    Traceback (most recent call last):
    ...
    ValueError: TransformerPolicy needs a textgym text env: observations Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int64)) (from textgym.make / gym.make('textgym/...')), got Box(0.0, 1.0, (4,), float32)
    """
    def refuse(why: str = "") -> None:
        raise ValueError(f"{owner} needs a textgym text env: observations {EXPECTED_SPACE} (from textgym.make / "
                         f"gym.make('textgym/...')), got {space}{why}")

    if not isinstance(space, spaces.Dict) or {"input_ids", "attention_mask"} - set(space.spaces):
        refuse()
    shapes = set()
    for key in ("input_ids", "attention_mask"):
        box = space.spaces[key]
        if not isinstance(box, spaces.Box) or len(box.shape) != 1 or not np.issubdtype(box.dtype, np.integer):
            refuse(f" ({key} must be a 1-D integer Box)")
        shapes.add(box.shape)
    if len(shapes) != 1:
        refuse(" (input_ids and attention_mask must have the same length)")
    return shapes.pop()[0]


def check_obs_shapes(obs: Any, space: Any) -> None:
    """Before SB3's ``predict`` reshapes arrays: each key of the observation ``space`` (a Dict) must be ``(L,)`` or
    ``(n, L)`` with ``n >= 1`` and ``L`` that key's length in the space (SB3 would reshape any size that divides by
    ``L`` and fail on the rest with numpy's reshape error), of numbers, and no other key may be given (SB3 would
    fail on it with a raw ``KeyError``); a seq2seq layout's decoder keys have their own length."""
    if not isinstance(obs, dict):
        raise ValueError(f"obs must be a dict with input_ids and attention_mask, got {type(obs).__name__}")
    lengths = {k: box.shape[-1] for k, box in space.spaces.items()}
    unknown = sorted(map(str, set(obs) - set(lengths)))
    if unknown:
        raise ValueError(f"obs has key(s) {unknown} that the observation space lacks; allowed keys: {sorted(lengths)}")
    for key, size in lengths.items():
        if key not in obs:
            raise ValueError(f"obs lacks {key!r}: a text policy reads {EXPECTED_SPACE}")
        value = obs[key]
        shape = np.shape(value)
        if len(shape) == 2 and shape[0] == 0:
            raise ValueError(f"obs[{key!r}] is an empty batch {shape}: give at least one row")
        if isinstance(value, str) or len(shape) not in (1, 2) or shape[-1] != size:
            raise ValueError(f"obs[{key!r}] must have shape ({size},) or (n_envs, {size}), got "
                             f"{shape if not isinstance(value, str) else repr(value)}")
        dtype = value.dtype if isinstance(value, (np.ndarray, th.Tensor)) else np.asarray(value).dtype
        if not isinstance(dtype, th.dtype) and dtype.kind not in "biuf":
            raise ValueError(f"obs[{key!r}] must hold token ids (integers), got dtype {dtype}")


def _not_token_ids(values: th.Tensor, n_vocab: int) -> th.Tensor:
    """Elementwise: outside ``[0, n_vocab)``, or fractional (SB3's buffers give floats: whole values only)."""
    wrong = (values < 0) | (values >= n_vocab)
    return wrong | (values != values.round()) if values.is_floating_point() else wrong


def check_token_obs(obs: Any, length: int | None, n_vocab: int, actions: Any = None) -> None:
    """Raise ValueError unless ``obs`` holds (B, L) token ids in ``[0, n_vocab)`` and a 0/1 mask attending somewhere,
    and ``actions`` (when given, as to ``evaluate_actions``) are B whole token ids in ``[0, n_vocab)``.

    One host sync when the observation is fine (a combined check); the message is built only on failure.
    """
    if not isinstance(obs, dict):
        raise ValueError(f"obs must be a dict with input_ids and attention_mask, got {type(obs).__name__}")
    missing = [k for k in ("input_ids", "attention_mask") if k not in obs]
    if missing:
        raise ValueError(f"obs lacks {missing}: a text policy reads {EXPECTED_SPACE}")
    ids, mask = obs["input_ids"], obs["attention_mask"]
    for key, value in (("input_ids", ids), ("attention_mask", mask)):
        if not isinstance(value, th.Tensor) or value.dim() != 2:
            raise ValueError(f"obs[{key!r}] must be a (batch, length) tensor, got "
                             f"{tuple(getattr(value, 'shape', ())) or type(value).__name__}")
        if value.dtype == th.bool or value.is_complex():
            raise ValueError(f"obs[{key!r}] must hold whole numbers, got dtype {value.dtype}")
    if ids.shape != mask.shape or (length is not None and ids.shape[1] != length):
        raise ValueError(f"obs['input_ids'] {tuple(ids.shape)} and obs['attention_mask'] {tuple(mask.shape)} must both "
                         f"be (batch, {length}) for this policy (its observation space)")
    bad_ids = _not_token_ids(ids, n_vocab)
    if ids.shape[0] == 0:
        raise ValueError(f"obs['input_ids'] is an empty batch {tuple(ids.shape)}: give at least one row")
    bad_actions = th.zeros((), dtype=th.bool, device=ids.device)
    if actions is not None:
        if not isinstance(actions, th.Tensor) or actions.dtype == th.bool or actions.is_complex():
            raise ValueError(f"actions must be a tensor of token ids, got {type(actions).__name__}"
                             f"{' of dtype ' + str(actions.dtype) if isinstance(actions, th.Tensor) else ''}")
        if actions.numel() != ids.shape[0]:
            raise ValueError(f"actions must hold one token id per observation row: got shape {tuple(actions.shape)} "
                             f"for {ids.shape[0]} rows")
        wrong_actions = _not_token_ids(actions.reshape(-1), n_vocab)
        bad_actions = wrong_actions.any()
    bad_mask = (mask != 0) & (mask != 1)
    empty_rows = ~(mask == 1).any(dim=1)
    if not bool(bad_ids.any() | bad_mask.any() | empty_rows.any() | bad_actions):  # the one sync
        return
    if bool(bad_actions):
        raise ValueError(f"actions must be whole token ids in [0, {n_vocab - 1}] (the model's vocabulary), "
                         f"found {actions.reshape(-1)[wrong_actions][0].item()!r}")
    if bad_ids.any():
        found = ids[bad_ids][0].item()
        raise ValueError(f"obs['input_ids'] must hold whole token ids in [0, {n_vocab - 1}] (the model's vocabulary), "
                         f"found {found!r}")
    if bad_mask.any():
        raise ValueError(f"obs['attention_mask'] must hold 0 or 1, found {mask[bad_mask][0].item()!r}")
    row = int(empty_rows.nonzero()[0])
    raise ValueError(f"obs['attention_mask'] row {row} is all zeros: every row must attend to at least one token")
