"""Perplexity of generated texts under a (base) language model, conditioned on their prompts.

A fluency check for fine-tuned policies: reward hacking shows up as outputs the base model finds
improbable. Computed on text, so the judged model may use a different tokenizer than the policy.
"""

from __future__ import annotations

import math
from typing import Any, Sequence


def generation_perplexity(
    lm: Any,
    tokenizer: Any,
    prompts: Sequence[str | Sequence[int]],
    generations: Sequence[str],
    *,
    batch_size: int = 16,
) -> dict[str, float]:
    """Corpus perplexity ``exp(total NLL / total tokens)`` of ``generations`` given ``prompts``.

    Each text is tokenized as ``prompt + generation`` and only the generation's tokens are scored
    (the prompt is context). Empty generations contribute no tokens.

    Args:
        lm: A Hugging Face causal LM or encoder-decoder (already on its device; an encoder-decoder reads the
            prompt with its encoder and scores the generation with its decoder).
        tokenizer: The tokenizer of ``lm``.
        prompts: The prompts as the model saw them: token ids in ``tokenizer``'s vocabulary (exact:
            control tokens stay control, data text stays text), or texts (``info["prompt_text"]``,
            re-tokenized: for a judge with another tokenizer; text that merely looks like a control
            token then becomes one).
        generations: The generated texts.
        batch_size: Texts per forward pass.

    Returns:
        ``{"perplexity": ..., "nll_per_token": ..., "scored_tokens": ...}`` (NaN when nothing was scored).
    """
    import torch

    from textgym.prompts import encode_text

    if len(prompts) != len(generations):
        raise ValueError(f"got {len(prompts)} prompts but {len(generations)} generations")
    pairs = []
    for prompt, text in zip(prompts, generations):
        p_ids = (list(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if isinstance(prompt, str)
                 else [int(i) for i in prompt])
        full = p_ids + encode_text(tokenizer, text)  # generated text is data, never control tokens
        if len(full) > len(p_ids):
            pairs.append((full, len(p_ids)))
    total, count = 0.0, 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(lm.parameters()).device
    if getattr(lm.config, "is_encoder_decoder", False):  # the prompt to the encoder, the generation to the decoder
        total, count = _seq2seq_nll(lm, pairs, pad, batch_size, device)
        pairs = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (tokens, n_prompt) in enumerate(chunk):  # right padding: positions start at 0
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
            labels[row, n_prompt : len(tokens)] = torch.tensor(tokens[n_prompt:])
        target = labels[:, 1:].to(device)
        scored = target != -100  # (B, T-1)
        with torch.no_grad():
            logits = scored_logits(lm, ids.to(device), mask.to(device), scored)  # (n, V)
        total += float(torch.nn.functional.cross_entropy(logits.float(), target[scored], reduction="sum"))
        count += int(scored.sum())
    nll = total / count if count else float("nan")
    return {"perplexity": math.exp(nll) if count else float("nan"), "nll_per_token": nll, "scored_tokens": float(count)}


def _seq2seq_nll(lm: Any, pairs: list[tuple[list[int], int]], pad: int, batch_size: int, device: Any
                 ) -> tuple[float, int]:
    """Summed NLL and count of the generated tokens under an encoder-decoder: ``(prompt + generation, len(prompt))``
    pairs, the prompt as the encoder's source and the generation teacher-forced after the decoder start token."""
    import torch

    total, count, start_id = 0.0, 0, lm.config.decoder_start_token_id
    for begin in range(0, len(pairs), batch_size):
        chunk = [(tokens[:n], tokens[n:]) for tokens, n in pairs[begin : begin + batch_size]]
        s_len, t_len = max(max(len(s) for s, _ in chunk), 1), max(len(t) for _, t in chunk)
        src = torch.full((len(chunk), s_len), pad, dtype=torch.long)
        src_mask = torch.zeros_like(src)
        dec = torch.full((len(chunk), t_len), pad, dtype=torch.long)
        labels = torch.full((len(chunk), t_len), -100, dtype=torch.long)
        for row, (source, target) in enumerate(chunk):  # right padding
            src[row, : len(source)], src_mask[row, : len(source)] = torch.tensor(source, dtype=torch.long), 1
            dec[row, : len(target)] = torch.tensor([start_id, *target[:-1]])
            labels[row, : len(target)] = torch.tensor(target)
        with torch.no_grad():
            logits = lm(input_ids=src.to(device), attention_mask=src_mask.to(device), decoder_input_ids=dec.to(device),
                        decoder_attention_mask=(labels != -100).long().to(device)).logits  # (B, T, V)
        scored = labels.to(device) != -100
        total += float(torch.nn.functional.cross_entropy(logits[scored].float(), labels.to(device)[scored],
                                                         reduction="sum"))
        count += int(scored.sum())
    return total, count


def scored_logits(lm: Any, ids: Any, mask: Any, scored: Any, **forward_kwargs: Any) -> Any:
    """Logits at the positions that predict a scored token: ``(B, T), (B, T), (B, T-1) -> (n, V)``.

    The LM head runs on those positions only: over a long prompt (a 400-token dialogue before a
    48-token summary) the full ``(B, T, V)`` logits would be most of the memory and a fifth of the
    time. Used for perplexity and for the SFT loss (``forward_kwargs``, e.g. ``position_ids``, go to
    the model).
    """
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    trunk = getattr(lm, "base_model", None)
    if head is None or trunk is None or trunk is lm or getattr(lm.config, "final_logit_softcapping", None):
        return lm(input_ids=ids, attention_mask=mask, **forward_kwargs).logits[:, :-1][scored]
    hidden = trunk(input_ids=ids, attention_mask=mask, **forward_kwargs).last_hidden_state[:, :-1]  # (B, T-1, H)
    return head(hidden[scored])
