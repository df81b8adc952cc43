"""Encoder-decoder trunks (T5, BART, Pegasus, mT5) for the TransformerPolicy: the decoder's LM head is
the actor, a value head on the decoder's hidden state the critic.

The policy and the fast path call these where a causal LM runs its one stack: the encoder runs once
over the source, the decoder over the start token plus the tokens generated so far. Only the model's
generic parts are used (``get_encoder``, ``get_decoder``, the output embeddings and the config's
``scale_decoder_outputs`` / the ``final_logits_bias`` buffer that some heads add), never its name.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable

import torch as th
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPast

# The KV-cache argument's name (see agents/rollout.py: transformers 5.2x renamed past_key_values).
CACHE_ARG = "cache" if "cache" in {f.name for f in fields(BaseModelOutputWithPast)} else "past_key_values"


def is_seq2seq(model: nn.Module) -> bool:
    """Whether ``model`` (an LM or its trunk) is an encoder-decoder."""
    return bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))


def output_logits(lm: nn.Module, hidden: th.Tensor) -> th.Tensor:
    """The LM head's logits, as the model's own forward computes them. ``(..., H) -> (..., V_model)``.

    A causal LM: its output embeddings. An encoder-decoder may also scale the decoder output first
    (T5 with tied embeddings: ``scale_decoder_outputs``) and add a ``final_logits_bias`` (BART, Pegasus).
    """
    config = lm.config
    if is_seq2seq(lm) and getattr(config, "scale_decoder_outputs", False):
        hidden = hidden * (config.d_model ** -0.5)
    logits = lm.get_output_embeddings()(hidden)
    bias = getattr(lm, "final_logits_bias", None)
    if is_seq2seq(lm) and isinstance(bias, th.Tensor):
        logits = logits + bias[..., : logits.shape[-1]].to(logits.dtype)
    return logits


def source_width(mask: th.Tensor) -> int:
    """Columns up to the last one any row attends to (right-padded sources). ``(B, S) -> int``.

    The trailing columns that are padding in every row can be dropped: no query attends to them.
    """
    attended = mask.bool().any(0)  # (S,)
    return max(1, int(attended.shape[0] - attended.flip(0).int().argmax())) if bool(attended.any()) else 1


def encode(trunk: nn.Module, source: th.Tensor, source_mask: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """Run the encoder once. ``(B, S), (B, S) -> (B, S', H), (B, S')`` with trailing all-padding columns dropped."""
    width = source_width(source_mask)
    source, source_mask = source[:, :width].long(), source_mask[:, :width].long()
    hidden = trunk.get_encoder()(input_ids=source, attention_mask=source_mask).last_hidden_state
    return hidden, source_mask


def hidden_at_last_token(trunk: nn.Module, obs: dict[str, th.Tensor]) -> th.Tensor:
    """The stock path's pass on a seq2seq observation: the decoder's final hidden state at each row's
    last decoder token. ``-> (B, H)``."""
    encoded, source_mask = encode(trunk, obs["input_ids"], obs["attention_mask"])
    ids, mask = obs["decoder_input_ids"].long(), obs["decoder_attention_mask"].long()  # (B, 1 + T)
    last = mask.shape[-1] - 1 - th.argmax(th.flip(mask, dims=[-1]), dim=-1)  # (B,) right padding
    width = int(last.max()) + 1  # later decoder positions cannot influence it (causal)
    hidden = trunk.get_decoder()(input_ids=ids[:, :width], attention_mask=mask[:, :width],
                                 encoder_hidden_states=encoded, encoder_attention_mask=source_mask).last_hidden_state
    return hidden[th.arange(ids.shape[0], device=ids.device), last]  # (B, H)


def start_token(trunk: nn.Module) -> int:
    """The model's decoder start token id (what the env's seq2seq layout starts the decoder with)."""
    start = getattr(trunk.config, "decoder_start_token_id", None)
    if start is None:
        raise ValueError(f"the encoder-decoder model ({trunk.config.model_type}) has no decoder_start_token_id in its "
                         "config: set one, as the seq2seq layout starts the decoder from it")
    return int(start)


def step_hidden(trunk: nn.Module, batch: Any, rows: Any = slice(None)) -> th.Tensor:
    """Decoder hidden state before each action of whole episodes, one teacher-forced pass. ``-> (e, T, H)``.

    The encoder runs once over each source; the decoder over the start token and the actions ``< t``.
    """
    tokens, step_mask = batch.tokens[rows], batch.step_mask[rows].long()  # (e, T)
    encoded, source_mask = encode(trunk, batch.prompt_ids[rows], batch.prompt_mask[rows])
    start = th.full_like(tokens[:, :1], start_token(trunk))  # (e, 1)
    ids = th.cat([start, tokens[:, :-1]], dim=1)  # the last action is never an input
    mask = th.cat([th.ones_like(step_mask[:, :1]), step_mask[:, :-1]], dim=1)
    return trunk.get_decoder()(input_ids=ids, attention_mask=mask, encoder_hidden_states=encoded,
                               encoder_attention_mask=source_mask).last_hidden_state


class DecoderSteps:
    """The fast path's forward passes for an encoder-decoder: the encoder once per episode, then one
    decoder token per step with the self-attention KV cache (the cross-attention keys and values are
    computed at the first step and kept in the same cache).

    Args:
        trunk: The policy's trunk (``lm.base_model``).
        source, source_mask: ``(N, S)`` right-padded sources.
        prepare_mask: Turns a 2-D ``(N, K)`` mask into the form the attention kernel takes for one query
            (see :func:`agents.rollout.decode_attention_mask`): transformers then does not ask the device
            whether the mask has padding before every token. Default: the 2-D mask as is.
    """

    def __init__(self, trunk: nn.Module, source: th.Tensor, source_mask: th.Tensor,
                 prepare_mask: Callable[[th.Tensor], th.Tensor] | None = None) -> None:
        self.decoder = trunk.get_decoder()
        self.start = start_token(trunk)
        self.encoded, source_mask = encode(trunk, source, source_mask)
        self.prepare = prepare_mask or (lambda mask: mask)
        self.cross_mask = self.prepare(source_mask)  # one query per step: the same cross-attention mask throughout
        self.ones = th.ones((source.shape[0], 1), dtype=th.long, device=source.device)  # (N, 1)
        self.length = 0
        self.cache: Any = None

    def first(self) -> th.Tensor:
        """Hidden state after the start token. ``-> (N, H)``."""
        return self.step(self.ones * self.start)

    def step(self, tokens: th.Tensor) -> th.Tensor:
        """Feed one token per row (``(N, 1)``); hidden state after it. ``-> (N, H)``.

        No padding in the decoder: every row takes every step (finished ones are fed pad tokens, and
        nothing read from them counts), and the decoder is causal.
        """
        self.length += 1
        self_mask = self.prepare(self.ones.expand(-1, self.length))  # (N, K): all attended
        out = self.decoder(input_ids=tokens, attention_mask=self_mask, encoder_hidden_states=self.encoded,
                           encoder_attention_mask=self.cross_mask, use_cache=True, **{CACHE_ARG: self.cache})
        self.cache = out[CACHE_ARG]
        return out.last_hidden_state[:, -1]


def collate_examples(examples: list[Any], pad_id: int, start_id: int, device: th.device) -> dict[str, th.Tensor]:
    """Supervised pairs (``.prompt``, ``.target`` id lists) as an encoder-decoder batch: right-padded sources
    ``input_ids, attention_mask (B, S)``, the decoder's inputs (start token + target but its last token)
    ``decoder_input_ids, decoder_attention_mask (B, T)`` and ``labels (B, T)`` (-100 on padding)."""
    s_len, t_len = max(len(e.prompt) for e in examples), max(len(e.target) for e in examples)
    out = {"input_ids": th.full((len(examples), s_len), pad_id, dtype=th.long),
           "attention_mask": th.zeros((len(examples), s_len), dtype=th.long),
           "decoder_input_ids": th.full((len(examples), t_len), pad_id, dtype=th.long),
           "decoder_attention_mask": th.zeros((len(examples), t_len), dtype=th.long),
           "labels": th.full((len(examples), t_len), -100, dtype=th.long)}
    for row, e in enumerate(examples):
        out["input_ids"][row, : len(e.prompt)] = th.tensor(e.prompt)
        out["attention_mask"][row, : len(e.prompt)] = 1
        out["decoder_input_ids"][row, : len(e.target)] = th.tensor([start_id, *e.target[:-1]])
        out["decoder_attention_mask"][row, : len(e.target)] = 1
        out["labels"][row, : len(e.target)] = th.tensor(e.target)
    return {k: v.to(device) for k, v in out.items()}


def token_nll(lm: nn.Module, batch: dict[str, th.Tensor]) -> tuple[th.Tensor, int]:
    """Summed NLL of the labelled target tokens (a :func:`collate_examples` batch), and their count.

    The LM head runs only where a target token is predicted."""
    trunk = lm.base_model
    encoded, source_mask = encode(trunk, batch["input_ids"], batch["attention_mask"])
    hidden = trunk.get_decoder()(input_ids=batch["decoder_input_ids"], attention_mask=batch["decoder_attention_mask"],
                                 encoder_hidden_states=encoded, encoder_attention_mask=source_mask).last_hidden_state
    scored = batch["labels"] != -100  # (B, T)
    logits = output_logits(lm, hidden[scored])  # (n, V)
    nll = th.nn.functional.cross_entropy(logits.float(), batch["labels"][scored], reduction="sum")
    return nll, int(scored.sum())
