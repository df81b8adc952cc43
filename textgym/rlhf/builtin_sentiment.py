"""Build the packaged sentiment model of IMDB-v0 (``reward="sentiment"``): ``textgym rlhf build-sentiment``.

Data (a folder laid out as ``shared/data``; see its SOURCES.md):

* ``imdb/train.csv`` (4,000 labelled reviews), split by position in the file exactly as the IMDB-v0
  loader slices it: ``train[90%:]`` (the last 400) is the **held-out** slice, never trained on and
  never used to choose anything (it is also IMDB-v0's evaluation slice, see
  :data:`textgym.data.HELDOUT_SLICES`); ``train[80%:90%]`` is the **dev** slice that picks the L2
  strength; the first 80 % are trained on;
* ``sentiment/sentence_polarity.zip`` (10,662 review snippets) and ``sentiment/movie_reviews.zip``
  (2,000 reviews): trained on in full.

Every trained review also gives ``windows`` random 40-word windows with the review's label (seeded),
so that the model sees text as long as an IMDB-v0 continuation. The model is the hashed n-gram
logistic regression of :mod:`textgym.rewards.sentiment`: NB-SVM log-count ratios (add-one smoothed)
scale the binary features, then full-batch L-BFGS fits weights with an L2 penalty, for each
strength in ``l2_grid``; the one with the best mean of dev accuracy on full reviews and on their
IMDB-v0 continuations is refitted on train + dev and saved (float16). Accuracy is reported on the
held-out reviews and on their IMDB-v0 continuations (words 11-50 of each review: the reference
continuation of the IMDB-v0 item).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Sequence

from textgym.rlhf.sentiment import Item, load_sentiment_corpus

__all__ = ["build_sentiment_model", "imdb_slices"]

WINDOW_WORDS = 40


def imdb_slices(data_dir: str | os.PathLike | None, items: Sequence[Item]) -> dict[str, list[Item]]:
    """Split the IMDB reviews into ``train``/``dev``/``heldout`` by the loader's slices (see above)."""
    from textgym.data import load_samples

    dev = {s.id for s in load_samples("imdb", "train[80%:90%]", data_dir)}
    held = {s.id for s in load_samples("imdb", "train[90%:]", data_dir)}
    out: dict[str, list[Item]] = {"train": [], "dev": [], "heldout": []}
    for item in items:
        out["heldout" if item[0] in held else "dev" if item[0] in dev else "train"].append(item)
    return out


def _continuations(items: Sequence[Item]) -> list[tuple[str, int]]:
    from textgym.rlhf.sentiment import _excerpt

    return [(text, y) for _, review, y in items if (text := _excerpt(review))]


def _with_windows(items: Sequence[Item], windows: int, rng: random.Random) -> list[tuple[str, int]]:
    out = []
    for _, text, label in items:
        out.append((text, label))
        words = text.split()
        for _ in range(windows if len(words) > WINDOW_WORDS + 10 else 0):
            start = rng.randrange(len(words) - WINDOW_WORDS)
            out.append((" ".join(words[start : start + WINDOW_WORDS]), label))
    return out


def _featurize(texts: Sequence[str], bits: int):
    import torch

    from textgym.rewards.sentiment import ngram_features

    feats = [ngram_features(t, bits) for t in texts]
    flat = torch.tensor([f for fs in feats for f in fs], dtype=torch.long)  # (nnz,)
    offsets = torch.tensor([0] + [len(fs) for fs in feats[:-1]], dtype=torch.long).cumsum(0)  # (N,)
    return flat, offsets


def _fit(flat, offsets, labels, ratio, l2: float, max_iter: int):
    """L-BFGS on mean log-loss + l2/2 * |w|^2 over NB-scaled binary features; returns (w * ratio, b)."""
    import torch

    w = torch.zeros(ratio.numel(), requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    scale = ratio[flat]  # (nnz,)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = torch.nn.functional.embedding_bag(flat, w.unsqueeze(1), offsets, mode="sum",
                                                   per_sample_weights=scale).squeeze(1) + b  # (N,)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels) + 0.5 * l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach() * ratio, float(b.detach())


def _train(examples: list[tuple[str, int]], bits: int, l2: float, max_iter: int):
    import torch

    flat, offsets = _featurize([t for t, _ in examples], bits)
    labels = torch.tensor([float(y) for _, y in examples])  # (N,)
    rows = torch.repeat_interleave(labels, torch.diff(torch.cat([offsets, torch.tensor([flat.numel()])])))
    pos = torch.bincount(flat[rows == 1], minlength=1 << bits).float() + 1  # (2**bits,)
    neg = torch.bincount(flat[rows == 0], minlength=1 << bits).float() + 1
    ratio = (pos / pos.sum()).log() - (neg / neg.sum()).log()  # NB log-count ratio per bucket
    return _fit(flat, offsets, labels, ratio, l2, max_iter)


def _accuracy(weights, bias: float, examples: Sequence[tuple[str, int]], bits: int) -> float:
    from textgym.rewards.sentiment import ngram_features

    hits = sum((bias + float(weights[ngram_features(t, bits)].sum()) > 0) == bool(y) for t, y in examples)
    return hits / len(examples)


def build_sentiment_model(data_dir: str | os.PathLike | None = None, out: str | os.PathLike | None = None, *,
                          bits: int = 18, windows: int = 3, l2_grid: Sequence[float] = (1e-4, 3e-4, 1e-3),
                          seed: int = 0, max_iter: int = 200, limit: int | None = None) -> dict[str, Any]:
    """Train, choose the L2 strength on dev, refit on train + dev, report held-out accuracy, save.

    Args:
        data_dir: Data folder (default: ``$TEXTGYM_DATA_DIR``).
        out: Where to write the ``.npz`` (default: the packaged ``textgym/rewards/weights/sentiment.npz``).
        bits: Hash buckets ``2**bits`` (18: 512 KB of float16 weights).
        windows: Random 40-word windows per trained review.
        l2_grid: L2 strengths tried (per example, on the mean log-loss).
        seed: Seed of the windows.
        max_iter: L-BFGS iterations per fit.
        limit: Train on at most this many texts per source (quick runs and tests).

    Raises:
        ValueError: ``bits`` outside [8, 20], a negative ``windows`` or a bad ``l2_grid``.
        FileNotFoundError: The data folder or one of its files is missing.

    Returns:
        The metrics (also stored in the file's metadata).
    """
    import torch

    from textgym.rewards.sentiment import SENTIMENT_WEIGHTS, save_sentiment_weights

    if isinstance(bits, bool) or not isinstance(bits, int) or not 8 <= bits <= 20:
        raise ValueError(f"bits must be an integer in [8, 20] (2**18 float16 weights take 512 KB), got {bits!r}")
    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 0:
        raise ValueError(f"windows must be a non-negative integer, got {windows!r}")
    if not l2_grid or any(not l2 > 0 for l2 in l2_grid):
        raise ValueError(f"l2_grid must be a non-empty list of positive numbers, got {l2_grid!r}")
    torch.manual_seed(seed)
    corpus = load_sentiment_corpus(data_dir)
    imdb = imdb_slices(data_dir, corpus["imdb"])
    extra = corpus["movie_reviews"] + corpus["sentence_polarity"]
    rng = random.Random(seed)
    train_items = imdb["train"] + extra
    if limit is not None:  # a seeded random subset of each source (the files are sorted by label)
        train_items = [it for items in (imdb["train"], corpus["movie_reviews"], corpus["sentence_polarity"])
                       for it in rng.sample(items, min(limit, len(items)))]
    dev = {"reviews": [(t, y) for _, t, y in imdb["dev"]], "continuations": _continuations(imdb["dev"])}
    examples = _with_windows(train_items, windows, rng)
    scores = {}
    for l2 in l2_grid:
        weights, bias = _train(examples, bits, l2, max_iter)
        scores[l2] = {name: _accuracy(weights, bias, items, bits) for name, items in dev.items()}
    best = max(l2_grid, key=lambda l2: sum(scores[l2].values()))
    weights, bias = _train(examples + _with_windows(imdb["dev"], windows, rng), bits, best, max_iter)
    weights = weights.half().float()  # score with the stored precision
    held = {"reviews": [(t, y) for _, t, y in imdb["heldout"]], "continuations": _continuations(imdb["heldout"])}
    metrics: dict[str, Any] = {
        "heldout_accuracy_reviews": _accuracy(weights, bias, held["reviews"], bits),
        "heldout_accuracy_continuations": _accuracy(weights, bias, held["continuations"], bits),
        "n_heldout_reviews": len(held["reviews"]), "n_heldout_continuations": len(held["continuations"]),
        "l2": best, "dev_accuracy": {str(k): v for k, v in scores.items()}, "n_train_texts": len(examples),
        "bits": bits, "windows": windows, "seed": seed,
        "heldout": "imdb train[90%:]", "dev": "imdb train[80%:90%]",
    }
    path = save_sentiment_weights(out or SENTIMENT_WEIGHTS, weights.numpy(), bias, metrics)
    metrics["path"], metrics["bytes"] = str(path), Path(path).stat().st_size
    return metrics
