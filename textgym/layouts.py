"""Observation layouts: what a text env shows a causal LM (``"causal"``) or an encoder-decoder (``"seq2seq"``).

Both layouts hold the same state, stored as one row of ``P + T`` token ids (the prompt's ``P``
columns, then the ``T`` generated ones) so that the env's transition is the same code in both:

* ``causal``: ``{input_ids, attention_mask}`` of shape ``(P + T,)``, the prompt left-padded, then the
  generated tokens right-padded.
* ``seq2seq``: ``{input_ids, attention_mask}`` of shape ``(P,)``, the source for the encoder
  (right-padded: models with absolute positions such as BART count them from the first column),
  and ``{decoder_input_ids, decoder_attention_mask}`` of shape ``(1 + T,)``: the model's decoder
  start token, then the generated tokens, right-padded.

Hugging Face key names in both, so ``model(**obs)`` works. The layout is chosen per env
(``layout=``); ``"auto"`` follows the model config saved beside the tokenizer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LAYOUTS = ("causal", "seq2seq", "auto")


def model_kind(config: Any) -> str:
    """``"seq2seq"`` for an encoder-decoder config (T5, BART, Pegasus, mT5, ...), else ``"causal"``."""
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


def layout_of_space(space: Any) -> str:
    """The layout of a textgym observation space (``Dict``): ``"seq2seq"`` when it has decoder keys."""
    keys = set(getattr(space, "spaces", {}))
    return "seq2seq" if "decoder_input_ids" in keys else "causal"


def _config_beside(tokenizer_spec: Any, tokenizer: Any) -> Any:
    """The model config that belongs with the tokenizer, or None: the config in its folder, or for a hub id
    (the tokenizer came from the hub or its cache) the hub's; no config is not an error."""
    from transformers import AutoConfig

    from textgym.models import resolve_model_path

    for name in (tokenizer_spec, getattr(tokenizer, "name_or_path", None)):
        if not isinstance(name, (str, os.PathLike)) or not str(name):
            continue
        try:
            where = resolve_model_path(name)
        except (FileNotFoundError, OSError):
            continue
        if isinstance(where, Path) and not (where / "config.json").is_file():
            continue
        try:
            return AutoConfig.from_pretrained(str(where))
        except (OSError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class Layout:
    """A resolved layout: its name and, for ``seq2seq``, the decoder start token id."""

    name: str = "causal"
    decoder_start_token_id: int | None = None

    @property
    def seq2seq(self) -> bool:
        return self.name == "seq2seq"

    def observation_space(self, vocab_size: int, prompt_length: int, max_new_tokens: int) -> Any:
        """The env's ``Dict`` observation space (int64 boxes)."""
        from gymnasium import spaces

        def box(high: int, n: int) -> spaces.Box:
            return spaces.Box(0, high, (n,), np.int64)

        if not self.seq2seq:
            length = prompt_length + max_new_tokens
            return spaces.Dict({"input_ids": box(vocab_size - 1, length), "attention_mask": box(1, length)})
        return spaces.Dict({"input_ids": box(vocab_size - 1, prompt_length), "attention_mask": box(1, prompt_length),
                            "decoder_input_ids": box(vocab_size - 1, 1 + max_new_tokens),
                            "decoder_attention_mask": box(1, 1 + max_new_tokens)})

    def observation(self, ids: Any, mask: Any, prompt_length: int) -> dict[str, Any]:
        """Stored rows ``(..., P + T)`` (NumPy or torch) as this layout's observation dict."""
        if not self.seq2seq:
            return {"input_ids": ids, "attention_mask": mask}
        start = ids[..., :1] * 0 + self.decoder_start_token_id  # (..., 1), same type and device as ids
        ones = mask[..., :1] * 0 + 1
        cat = np.concatenate if isinstance(ids, np.ndarray) else _torch_cat
        return {"input_ids": ids[..., :prompt_length], "attention_mask": mask[..., :prompt_length],
                "decoder_input_ids": cat([start, ids[..., prompt_length:]], -1),
                "decoder_attention_mask": cat([ones, mask[..., prompt_length:]], -1)}


def _torch_cat(parts: list[Any], dim: int) -> Any:
    import torch

    return torch.cat(parts, dim)


def resolve_layout(layout: Any, tokenizer_spec: Any, tokenizer: Any,
                   decoder_start_token_id: int | None = None) -> Layout:
    """Interpret an env's ``layout`` argument.

    Args:
        layout: ``"causal"`` (default of every id), ``"seq2seq"`` or ``"auto"`` (the kind of the model
            whose config is saved beside the tokenizer; causal when there is none).
        tokenizer_spec: The env's ``tokenizer`` argument (a name, a folder, or an object).
        tokenizer: The loaded tokenizer.
        decoder_start_token_id: Overrides the start token read from the model config.

    Raises:
        ValueError: An unknown layout; ``"seq2seq"`` with a causal model's tokenizer, or ``"causal"`` with
            an encoder-decoder's; ``"seq2seq"`` without a decoder start token.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    if layout == "causal" and decoder_start_token_id is None:
        return Layout("causal")  # the default: nothing to look up (the policy checks the model's kind)
    config = _config_beside(tokenizer_spec, tokenizer)
    kind = None if config is None else model_kind(config)
    if layout == "auto":
        layout = kind or ("seq2seq" if decoder_start_token_id is not None else "causal")
    if kind is not None and kind != layout:
        model_type = getattr(config, "model_type", "?")
        raise ValueError(f"layout={layout!r} does not fit the model beside the tokenizer: it is a {kind} model "
                         f"({model_type}); use layout={kind!r} or 'auto'")
    if layout == "causal":
        if decoder_start_token_id is not None:
            raise ValueError("decoder_start_token_id applies only to layout='seq2seq' (encoder-decoder models)")
        return Layout("causal")
    start = decoder_start_token_id
    if start is None and config is not None:
        start = getattr(config, "decoder_start_token_id", None)
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start < len(tokenizer):
        where = "its model config has none" if config is not None else "no model config is saved beside the tokenizer"
        raise ValueError(f"layout='seq2seq' needs the encoder-decoder model's decoder start token, but {where} "
                         f"(got {start!r}); pass the tokenizer folder of a seq2seq model, or decoder_start_token_id="
                         f"an id in [0, {len(tokenizer) - 1}]")
    return Layout("seq2seq", int(start))


def special_wrapping(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special ids the tokenizer puts around a text (T5: ``</s>`` after; BART: ``<s>`` before, ``</s>``
    after): an encoder's inputs carry them as in pre-training. ``([], [])`` when none."""
    bare = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a")["input_ids"])
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return full[:i], full[i + len(bare) :]
    return [], []


class EncoderPrompt:
    """A :class:`~textgym.prompts.PromptEncoder` for an encoder's source: the prompt inside the tokenizer's
    special tokens (see :func:`special_wrapping`), all within ``max_length`` tokens."""

    def __init__(self, tokenizer: Any, fmt: Any, max_length: int) -> None:
        from textgym.prompts import PromptEncoder

        self.head, self.tail = special_wrapping(tokenizer)
        self.inner = PromptEncoder(tokenizer, fmt, max_length - len(self.head) - len(self.tail))
        self.fmt, self.max_length, self.tokenizer = fmt, int(max_length), tokenizer

    def encode(self, source: str) -> list[int]:
        """The source's ids for the encoder, special tokens included."""
        return self.head + self.inner.encode(source) + self.tail

    def render(self, source: str) -> str:
        return self.tokenizer.decode(self.encode(source))
