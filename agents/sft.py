"""Supervised warm start: teacher-forced fine-tuning on the references of an env's train split.

The prompts are encoded exactly as the environment encodes them (same template, truncation and
length), and the target is a reference followed by EOS, cut at ``max_new_tokens`` as an episode
would be; the loss is the token cross-entropy on the target only. The result is a checkpoint
folder (see :mod:`agents.checkpoints`) that ``textgym train --init`` and ``textgym eval
--checkpoint`` read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch as th

from agents import seq2seq
from agents.policies import position_ids
from agents.settings import Checked, ranged
from textgym.perplexity import scored_logits
from textgym.prompts import encode_text


@dataclass
class SFTConfig(Checked):
    """Supervised warm start: teacher-forced fine-tuning on the train split's references."""

    learning_rate: float = ranged(5e-5, 0)
    epochs: float = ranged(1.0, 0, low_open=True)
    batch_size: int = ranged(16, 1)
    weight_decay: float = ranged(0.0, 0)
    max_grad_norm: float = ranged(1.0, 0, low_open=True)
    all_references: bool = True


@dataclass
class Example:
    """One teacher-forcing pair: prompt ids (as the env encodes them) and target ids (reply + EOS)."""

    prompt: list[int]
    target: list[int]


def build_examples(env: Any, all_references: bool = True) -> list[Example]:
    """Teacher-forcing pairs from a :class:`textgym.core.TextEnv`'s samples.

    Args:
        env: The (unwrapped) environment; its prompt encoder, tokenizer and ``max_new_tokens`` are used.
        all_references: One pair per reference; else only each sample's first reference.
    """
    tokenizer, examples = env.tokenizer, []
    for sample in env.samples:
        prompt = list(env.prompt_encoder.encode(sample.source))
        for reference in sample.references if all_references else sample.references[:1]:
            ids = encode_text(tokenizer, reference.strip())  # data: a literal <|im_end|> stays text
            target = (list(ids) + [env.eos_token_id])[: env.max_new_tokens]
            examples.append(Example(prompt, target))
    if not examples:
        raise ValueError("no supervised examples: the split has no references")
    return examples


def collate(examples: list[Example], pad_id: int, device: th.device) -> dict[str, th.Tensor]:
    """Left-padded prompts + right-padded targets. Returns ``input_ids, attention_mask, labels``: ``(B, T)``."""
    p_len = max(len(e.prompt) for e in examples)
    t_len = max(len(e.target) for e in examples)
    ids = np.full((len(examples), p_len + t_len), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    labels = np.full_like(ids, -100)
    for row, e in enumerate(examples):
        ids[row, p_len - len(e.prompt) : p_len] = e.prompt
        ids[row, p_len : p_len + len(e.target)] = e.target
        mask[row, p_len - len(e.prompt) : p_len + len(e.target)] = 1
        labels[row, p_len : p_len + len(e.target)] = e.target
    return {k: th.as_tensor(v, device=device) for k, v in (("input_ids", ids), ("attention_mask", mask),
                                                          ("labels", labels))}


def token_nll(lm: th.nn.Module, batch: dict[str, th.Tensor]) -> tuple[th.Tensor, int]:
    """Summed next-token NLL over the labelled positions, and their count. Positions follow the mask."""
    mask = batch["attention_mask"]
    labels = batch["labels"][:, 1:]  # (B, T-1): token t is predicted at t-1
    scored = labels != -100
    # the LM head only where a target token is predicted, not over the prompt
    logits = scored_logits(lm, batch["input_ids"], mask, scored, position_ids=position_ids(mask))  # (n, V)
    nll = th.nn.functional.cross_entropy(logits.float(), labels[scored], reduction="sum")
    return nll, int(scored.sum())


def train_sft(
    lm: th.nn.Module,
    env: Any,
    config: SFTConfig,
    *,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str, float, int], None] | None = None,
) -> dict[str, float]:
    """Fine-tune ``lm`` in place on ``env``'s references; returns summary statistics.

    Args:
        lm: A Hugging Face causal LM or encoder-decoder (its device is used).
        env: The unwrapped train-split environment (in the seq2seq layout for an encoder-decoder).
        config: Learning rate, epochs (fractions allowed), batch size...
        seed: Shuffling seed.
        progress: Show a progress bar.
        log: ``log(tag, value, step)`` for TensorBoard-style scalars.
    """
    from tqdm.auto import tqdm

    if config.epochs <= 0 or config.batch_size < 1 or config.learning_rate <= 0:
        raise ValueError(f"sft needs epochs > 0, batch_size >= 1 and learning_rate > 0, got {config}")
    examples = build_examples(env, config.all_references)
    device = next(lm.parameters()).device
    steps = max(1, math.ceil(config.epochs * len(examples) / config.batch_size))
    rng = np.random.default_rng(seed)
    th.manual_seed(seed)
    optimizer = th.optim.AdamW(lm.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                              fused=True)
    lm.train()
    order: list[int] = []
    losses, tokens_seen, start = [], 0, time.perf_counter()
    for step in tqdm(range(steps), desc="sft", unit="step", disable=not progress):
        if len(order) < config.batch_size:
            order += rng.permutation(len(examples)).tolist()
        rows, order = order[: config.batch_size], order[config.batch_size :]
        chosen = [examples[i] for i in rows]
        if seq2seq.is_seq2seq(lm):  # the source to the encoder, the target teacher-forced through the decoder
            start = env.layout.decoder_start_token_id
            nll, count = seq2seq.token_nll(lm, seq2seq.collate_examples(chosen, env.pad_token_id, start, device))
        else:
            nll, count = token_nll(lm, collate(chosen, env.pad_token_id, device))
        loss = nll / max(count, 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        th.nn.utils.clip_grad_norm_(lm.parameters(), config.max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        tokens_seen += count
        if log is not None:
            log("sft/loss", losses[-1], step)
    lm.eval()
    seconds = time.perf_counter() - start
    return {"steps": steps, "examples": len(examples), "first_loss": losses[0], "final_loss": float(np.mean(losses[-3:])),
            "target_tokens": tokens_seen, "seconds": seconds, "tokens_per_s": tokens_seen / max(seconds, 1e-9)}
