"""Score a language model on an environment: generate for each item, replay through the env."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from textgym.catalogue import find_task
from textgym.devices import resolve_device  # re-exported: older code imports it from here
from textgym.fieldtypes import check_arg_types

EVAL_METRICS = ("bleu", "rouge1", "rouge2", "rougeL")


def eval_metrics(env_id: str, extra: Sequence[str] | None = None) -> list[str]:
    """The metrics every evaluation reports: BLEU, ROUGE-1/2/L, the id's preset metrics, and ``extra``.

    >>> eval_metrics("textgym/IMDB-v0", ["chrf"])
    ['bleu', 'rouge1', 'rouge2', 'rougeL', 'sentiment', 'chrf']
    """
    check_arg_types(eval_metrics, locals())  # a bare string for extra would add one metric per character
    task = find_task(env_id)
    preset = task.preset.metrics if task else ()
    return list(dict.fromkeys([*EVAL_METRICS, *preset, *(extra or [])]))


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n diversity: unique n-grams over all n-grams of whitespace tokens.

    >>> distinct_n(["a b a b"], 2)
    0.6666666666666666
    >>> distinct_n([""], 1)
    0.0
    """
    check_arg_types(distinct_n, locals(), at_least={"n": 1})
    grams = [tuple(words[i : i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@dataclass
class EvalResult:
    """Mean metrics over the evaluated items and the per-item records."""

    env_id: str
    split: str
    metrics: dict[str, float]
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def evaluate(
    env_id: str = "textgym/Generation-v0",
    model: Any = None,
    *,
    split: str = "test",
    n: int | None = 32,
    batch_size: int = 16,
    device: str = "auto",
    do_sample: bool = False,
    seed: int = 0,
    progress: bool = True,
    perplexity: bool = True,
    base_model: Any = None,
    **env_kwargs: Any,
) -> EvalResult:
    """Generate a reply for each item with ``model`` and score it through the environment.

    The tokens are produced with ``model.generate`` in batches (KV cache), then stepped through the
    env one by one, so the scores are exactly what an agent acting in the env would receive.

    Besides the env's metrics, the result always carries the quality guards (see :func:`_summarize`):
    ``mean_tokens``, ``distinct_1``, ``distinct_2``, ``repetition`` (the mean per-output trigram
    repetition rate of :func:`textgym.rewards.quality.repetition_rate`) and, unless
    ``perplexity=False``, ``perplexity``: the corpus perplexity of the outputs given their prompts
    under ``base_model`` (see :func:`textgym.perplexity.generation_perplexity`).

    Args:
        env_id: A registered textgym id.
        model: A model name or folder (see :mod:`textgym.models`; default :func:`textgym.models.default_model`)
            or a loaded causal LM or encoder-decoder (whose env then takes ``layout="seq2seq"``).
        split: Data split to evaluate on.
        n: Number of items (the first ``n`` in file order); ``None`` for all.
        batch_size: Items generated together.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        do_sample: Sample instead of greedy decoding.
        seed: Seed for sampling.
        progress: Show a progress bar.
        perplexity: Compute the perplexity of the outputs under ``base_model``.
        base_model: The judge of perplexity: a model name or folder, or a loaded causal LM (with the
            env's tokenizer). ``None``: ``model`` itself, right for an untrained model; pass the base
            model when evaluating a fine-tuned one.
        **env_kwargs: Passed to ``gym.make`` (``tokenizer``, ``data_dir``, ``max_new_tokens``, ...).
    """
    import torch
    from tqdm.auto import tqdm

    from textgym.models import check_model_kind, load_lm, load_tokenizer

    given = {k: v for k, v in locals().items() if k != "device"}  # device (str or torch.device): resolve_device's
    check_arg_types(evaluate, given, at_least={"n": 1, "batch_size": 1})
    if (model is not None and not isinstance(model, (str, os.PathLike))
            and not callable(getattr(model, "generate", None))):
        hint = "; for a textgym agent pass agent.policy.export_lm()" if hasattr(model, "policy") else ""
        raise TypeError(f"model must be a model name or folder, or a loaded transformers model (with generate), "
                        f"got {type(model).__name__}{hint}")
    start = time.perf_counter()
    check_model_kind(model, "model")  # the wrong kind of folder is named before a tokenizer or env is built from it
    tokenizer = load_tokenizer(env_kwargs.pop("tokenizer", model if isinstance(model, str) else None))
    lm = load_lm(model).to(resolve_device(device)).eval()
    # The layout follows the model: an encoder-decoder is given the seq2seq observations.
    env_kwargs.setdefault("layout", "seq2seq" if getattr(lm.config, "is_encoder_decoder", False) else "causal")
    if env_kwargs["layout"] == "seq2seq":
        env_kwargs.setdefault("decoder_start_token_id", lm.config.decoder_start_token_id)
    env = gym.make(env_id, split=split, tokenizer=tokenizer, **env_kwargs).unwrapped
    if lm.get_output_embeddings().weight.shape[0] < env.action_space.n:
        raise ValueError(f"model vocabulary {lm.config.vocab_size} is smaller than the tokenizer's {env.action_space.n}")
    torch.manual_seed(seed)
    count = len(env.samples) if n is None else min(int(n), len(env.samples))
    records: list[dict[str, Any]] = []
    prompt_ids: list[list[int]] = []
    for begin in tqdm(range(0, count, batch_size), desc=f"eval {env_id}", disable=not progress, unit="batch"):
        indices = list(range(begin, min(begin + batch_size, count)))
        prompts = [env.reset(options={"sample_index": i})[0] for i in indices]
        ids = torch.as_tensor(np.stack([p["input_ids"][: env.max_prompt_length] for p in prompts]), device=lm.device)
        mask = torch.as_tensor(np.stack([p["attention_mask"][: env.max_prompt_length] for p in prompts]), device=lm.device)
        seq2seq = env.layout.seq2seq  # generate() returns the decoder's tokens after its start token
        extra = {"decoder_start_token_id": env.layout.decoder_start_token_id} if seq2seq else {}
        with torch.no_grad():
            out = lm.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=env.max_new_tokens, do_sample=do_sample,
                eos_token_id=env.eos_token_id, pad_token_id=env.pad_token_id, **extra,
            )[:, 1 if seq2seq else ids.shape[1] :].tolist()
        prompt_ids += [row[m.bool()].tolist() for row, m in zip(ids.cpu(), mask.cpu())]  # as the env encoded them
        for index, tokens in zip(indices, out):
            records.append(_replay(env, index, tokens))
    summary = _summarize(records)
    if perplexity and records:
        same = base_model is None or (isinstance(model, str) and base_model == model)  # reuse the loaded model
        summary["perplexity"] = _perplexity(lm if same else base_model, tokenizer, records, prompt_ids, lm.device)
    return EvalResult(env_id, split, summary, records, time.perf_counter() - start)


def _perplexity(judge: Any, tokenizer: Any, records: list[dict[str, Any]], prompt_ids: list[list[int]],
                device: Any) -> float:
    """Perplexity of the records' generations given their prompts under ``judge`` (name or loaded LM).

    A judge that shares the env's vocabulary is given the env's own prompt ids, so text from the data
    that looks like a control token stays text; another tokenizer gets the prompt text.
    """
    from textgym.models import load_lm, load_tokenizer
    from textgym.perplexity import generation_perplexity

    env_tokenizer = tokenizer
    if isinstance(judge, (str, os.PathLike)):
        judge, tokenizer = load_lm(judge).to(device).eval(), load_tokenizer(judge)
    same_vocab = tokenizer is env_tokenizer or tokenizer.get_vocab() == env_tokenizer.get_vocab()
    prompts = prompt_ids if same_vocab else [r["prompt_text"] for r in records]
    scores = generation_perplexity(judge, tokenizer, prompts, [r["generation"] for r in records])
    return scores["perplexity"]


def _replay(env: Any, index: int, tokens: list[int]) -> dict[str, Any]:
    """Step one item's generated tokens through the env; return the final info."""
    env.reset(options={"sample_index": index})
    info: dict[str, Any] = {}
    for token in tokens:
        _, _, terminated, truncated, info = env.step(token)
        if terminated or truncated:
            return info
    # generate() stopped without EOS only at the length limit, which the env truncates at too.
    raise RuntimeError(f"generation for item {index} ended before the env's episode did")


def _summarize(records: list[dict[str, Any]]) -> dict[str, float]:
    """Mean of every env metric and of the score, plus the quality guards.

    ``mean_tokens``: generated tokens per output; ``distinct_1``/``distinct_2``: :func:`distinct_n` over
    all outputs; ``repetition``: the mean over outputs of each output's trigram repetition rate (the
    share of its word trigrams that repeat an earlier trigram of the same output; see
    :func:`textgym.rewards.quality.repetition_rate`).
    """
    from textgym.rewards.quality import repetition_rate

    if not records:
        return {}
    summary = {name: statistics.fmean(r["metrics"][name] for r in records) for name in records[0]["metrics"]}
    summary["score"] = statistics.fmean(r["score"] for r in records)
    summary["mean_tokens"] = statistics.fmean(r["num_tokens"] for r in records)
    texts = [r["generation"] for r in records]
    summary["distinct_1"], summary["distinct_2"] = distinct_n(texts, 1), distinct_n(texts, 2)
    summary["repetition"] = statistics.fmean(repetition_rate(t) for t in texts)
    return summary
