"""Train a :class:`~textgym.rewards.reward_model.RewardModel` on preferences or on labelled texts.

Two regimes, same loss either way:

* ``train_encoder=False`` (default): the encoder is frozen, every text is embedded once (cached),
  and only the head is trained on the cached embeddings: minutes on a CPU for thousands of texts;
* ``train_encoder=True``: the encoder is fine-tuned with the head (better, much slower on a CPU).

Preferences use the Bradley-Terry loss ``-log sigmoid(r(chosen) - r(rejected))`` (ties: target
1/2); labels use binary cross-entropy. Held-out splits are by prompt (no prompt of a held-out pair
is seen in training) and seeded.

Example:
    >>> split_by_group(["a", "b", "c", "d"], groups=["p", "p", "q", "r"], fraction=0.34, seed=0)
    (['c', 'd'], ['a', 'b'])
"""

from __future__ import annotations

import math

import logging
import os
import random
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

from textgym.fieldtypes import check_field_types
from textgym.rlhf.store import Preference, PreferenceStore

__all__ = ["FitConfig", "fit_labels", "fit_preferences", "pairwise_accuracy", "split_by_group",
           "train_reward_model"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class FitConfig:
    """Training settings (SB3-style names where one exists).

    Attributes:
        n_epochs: Passes over the training data.
        learning_rate: Head learning rate (AdamW).
        encoder_learning_rate: Encoder learning rate when ``train_encoder``.
        batch_size: Items per gradient step.
        weight_decay: AdamW weight decay.
        train_encoder: Fine-tune the encoder too (else: frozen, embeddings cached).
        seed: Seeds the split, the init of the head and the batch order.
    """

    n_epochs: int = 60
    learning_rate: float = 3e-3
    encoder_learning_rate: float = 2e-5
    batch_size: int = 64
    weight_decay: float = 1e-2
    train_encoder: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)  # a string learning rate is a type error before any comparison
        for name in ("n_epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("learning_rate", "encoder_learning_rate", "weight_decay"):
            value = getattr(self, name)
            low_ok = value >= 0 if name == "weight_decay" else value > 0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low_ok:
                raise ValueError(f"{name} must be a finite number {'>= 0' if name == 'weight_decay' else '> 0'}, "
                                 f"got {value!r}")


def split_by_group(items: Sequence[T], groups: Sequence[Any], fraction: float,
                   seed: int = 0) -> tuple[list[T], list[T]]:
    """Split ``items`` into (train, held-out) so that no group is in both; seeded.

    About ``fraction`` of the groups go to the held-out part (at least one when ``fraction > 0``
    and there are two groups or more).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    keys = sorted(set(groups), key=str)
    random.Random(seed).shuffle(keys)
    n_held = round(len(keys) * fraction)
    if fraction > 0 and len(keys) > 1:
        n_held = min(max(n_held, 1), len(keys) - 1)
    held = set(keys[:n_held])
    train = [x for x, g in zip(items, groups) if g not in held]
    return train, [x for x, g in zip(items, groups) if g in held]


def _embed_all(rm, prompts: Sequence[str], texts: Sequence[str]):
    """Pooled embeddings (N, H) of all items, no gradients, in the model's batches."""
    import torch

    from tqdm.auto import tqdm

    # Similar lengths batched together: little padding (the order is restored below).
    order = sorted(range(len(texts)), key=lambda i: len(prompts[i]) + len(texts[i]))
    out = []
    steps = range(0, len(order), rm.batch_size)
    with torch.inference_mode():
        # disable=None: a progress bar on a terminal only (not in logs or tests)
        for start in tqdm(steps, desc=f"embedding {len(texts)} texts", unit="batch", disable=None):
            idx = order[start:start + rm.batch_size]
            out.append(rm.embed([prompts[i] for i in idx], [texts[i] for i in idx]))
    if not out:
        return torch.zeros(0, rm.encoder.config.hidden_size, device=rm.device)
    pooled = torch.cat(out)  # (N, H), in length order
    return pooled[torch.argsort(torch.tensor(order, device=pooled.device))]


def _optimizer(rm, config: FitConfig):
    import torch

    groups = [{"params": list(rm.head.parameters()), "lr": config.learning_rate}]
    if config.train_encoder:
        groups.append({"params": list(rm.encoder.parameters()), "lr": config.encoder_learning_rate})
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay)


def _train_loop(rm, n: int, config: FitConfig, loss_fn) -> None:
    """Shared loop: ``loss_fn(indices) -> loss`` on minibatches of ``range(n)``."""
    import torch

    torch.manual_seed(config.seed)
    rm.head.requires_grad_(True)
    rm.encoder.requires_grad_(config.train_encoder)
    opt = _optimizer(rm, config)
    rm.head.train()
    if config.train_encoder:
        rm.encoder.train()
    order = torch.Generator().manual_seed(config.seed)
    try:
        for epoch in range(config.n_epochs):
            total = 0.0
            for idx in torch.randperm(n, generator=order).split(config.batch_size):
                loss = loss_fn(idx.tolist())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                value = loss.detach().item()
                if not math.isfinite(value):
                    raise FloatingPointError(f"reward model training diverged: loss {value} in epoch {epoch + 1}; "
                                             f"lower the learning rate (now {config.learning_rate})")
                total += value * len(idx)
            logger.info("epoch %d: loss %.4f", epoch + 1, total / max(n, 1))
    finally:
        rm.head.eval().requires_grad_(False)
        rm.encoder.eval().requires_grad_(False)


def fit_labels(rm, texts: Sequence[str], labels: Sequence[int], *, prompts: Sequence[str] | None = None,
               config: FitConfig | None = None) -> dict[str, float]:
    """Train ``rm`` to give ``P(label = 1)``; sets ``rm.config.output = "probability"``.

    Returns:
        ``{"train_accuracy": ..., "n_train": ...}``.
    """
    import torch
    import torch.nn.functional as F

    config = config or FitConfig()
    if len(texts) != len(labels) or not texts:
        raise ValueError(f"need equally many texts and labels (>0), got {len(texts)} and {len(labels)}")
    if set(labels) - {0, 1}:
        raise ValueError(f"labels must be 0 or 1, got {sorted(set(labels) - {0, 1})[:5]}")
    prompts = list(prompts) if prompts is not None else [""] * len(texts)
    texts = list(texts)
    target = torch.tensor(labels, dtype=torch.float32, device=rm.device)  # (N,)
    cached = None if config.train_encoder else _embed_all(rm, prompts, texts)  # (N, H)

    def loss_fn(idx: list[int]):
        if cached is not None:
            logits = rm.head(cached[idx]).squeeze(-1)  # (B,)
        else:
            logits = rm.logits([prompts[i] for i in idx], [texts[i] for i in idx])  # (B,)
        return F.binary_cross_entropy_with_logits(logits, target[idx])

    _train_loop(rm, len(texts), config, loss_fn)
    rm.config.output = "probability"
    with torch.inference_mode():
        probs = rm(prompts, texts, [[""]] * len(texts)) if cached is None else \
            torch.sigmoid(rm.head(cached).squeeze(-1)).tolist()
    acc = sum((p > 0.5) == bool(y) for p, y in zip(probs, labels)) / len(labels)
    return {"train_accuracy": acc, "n_train": len(texts)}


def fit_preferences(rm, prefs: Sequence[Preference], *, config: FitConfig | None = None) -> dict[str, float]:
    """Train ``rm`` with the Bradley-Terry loss; sets ``rm.config.output = "score"``.

    Returns:
        ``{"train_pairwise_accuracy": ..., "n_train": ...}`` (ties are trained on, not scored).
    """
    import torch
    import torch.nn.functional as F

    config = config or FitConfig()
    if not prefs:
        raise ValueError("no preferences to train on: answer some pairs first (A, B or tie)")
    prompts = [p.prompt for p in prefs]
    chosen, rejected = [p.chosen for p in prefs], [p.rejected for p in prefs]
    target = torch.tensor([0.5 if p.tie else 1.0 for p in prefs], device=rm.device)  # (N,)
    if config.train_encoder:
        cached = None
    else:
        both = _embed_all(rm, prompts + prompts, chosen + rejected)  # (2N, H)
        cached = (both[: len(prefs)], both[len(prefs):])

    def loss_fn(idx: list[int]):
        if cached is not None:
            diff = rm.head(cached[0][idx]) - rm.head(cached[1][idx])  # (B, 1)
        else:
            ps = [prompts[i] for i in idx]
            diff = rm.logits(ps, [chosen[i] for i in idx]) - rm.logits(ps, [rejected[i] for i in idx])
        return F.binary_cross_entropy_with_logits(diff.reshape(-1), target[idx])

    _train_loop(rm, len(prefs), config, loss_fn)
    rm.config.output = "score"
    return {"train_pairwise_accuracy": pairwise_accuracy(rm, prefs), "n_train": len(prefs)}


def pairwise_accuracy(rm, prefs: Sequence[Preference]) -> float:
    """Fraction of non-tie preferences where ``rm`` scores ``chosen`` above ``rejected``."""
    strict = [p for p in prefs if not p.tie]
    if not strict:
        return float("nan")
    prompts = [p.prompt for p in strict]
    refs = [[""]] * len(strict)
    good = rm(prompts, [p.chosen for p in strict], refs)
    bad = rm(prompts, [p.rejected for p in strict], refs)
    return sum(g > b for g, b in zip(good, bad)) / len(strict)


def train_reward_model(store: str | os.PathLike | PreferenceStore, out: str | os.PathLike, *,
                       encoder: str = "all-MiniLM-L6-v2", input: str = "pair", max_length: int = 128,
                       head_hidden: int = 0, heldout_fraction: float = 0.2,
                       config: FitConfig | None = None, device: Any = "auto") -> dict[str, Any]:
    """``textgym rlhf train-rm``: train on a store's answers, report held-out accuracy, save.

    Args:
        store: A :class:`PreferenceStore` or its file.
        out: Folder to save the model to (replaced atomically).
        encoder, input, max_length, head_hidden: See :class:`~textgym.rewards.reward_model.RewardModelConfig`.
        heldout_fraction: Share of prompts held out for the accuracy report (0: none).
        config: Training settings.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...

    Returns:
        The metrics, also saved in the model's ``reward_model.json``.
    """
    from textgym.rewards.reward_model import RewardModel, RewardModelConfig

    config = config or FitConfig()
    store = store if isinstance(store, PreferenceStore) else PreferenceStore(store)
    prefs = store.preferences()
    if not prefs:
        raise ValueError(f"no preferences to train on in {store.path}: answer some pairs first (A, B or "
                         "tie) with `textgym rlhf collect`, or load some with `textgym rlhf import`")
    train, held = split_by_group(prefs, [p.prompt for p in prefs], heldout_fraction, config.seed)
    rm = RewardModel(RewardModelConfig(encoder=encoder, input=input, max_length=max_length,
                                       head_hidden=head_hidden), device=device)
    metrics: dict[str, Any] = fit_preferences(rm, train, config=config)
    metrics["heldout_pairwise_accuracy"] = pairwise_accuracy(rm, held) if held else None
    metrics["n_heldout"] = len(held)
    rm.config.metrics = metrics
    rm.save(out)
    return metrics
