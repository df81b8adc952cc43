"""The built-in sentiment reward of IMDB-v0: ``P(positive)`` from a hashed n-gram linear model.

The model ships inside the package (``textgym/rewards/weights/sentiment.npz``, float16, well under
1 MB), needs only NumPy, and scores a batch of 32 short texts in milliseconds on one CPU core. It is
a logistic regression over binary features: the word unigrams and bigrams of the lowercased text
(:func:`ngram_features`), each hashed with CRC-32 into ``2**bits`` buckets, with NB-SVM-style
log-count-ratio scaling folded into the stored weights. ``textgym rlhf build-sentiment`` rebuilds it
from the data folder and prints its held-out accuracy (see :mod:`textgym.rlhf.builtin_sentiment` for
the data, the seed and the splits).

Registered as the reward name ``"sentiment"`` (range [0, 1]; an empty generation scores 0).

Example:
    >>> len(ngram_features("Not good!"))  # not, good, !, "not good", "good !"
    5
    >>> ngram_features("Not good!") == ngram_features("not   GOOD !")
    True
    >>> reward = SentimentReward()
    >>> good, bad = reward(["", ""], ["A wonderful, moving film.", "Dull and a waste of time."], [[""], [""]])
    >>> good > 0.5 > bad
    True
"""

from __future__ import annotations

import functools
import math
import os
import re
import zlib
from pathlib import Path
from typing import Any, Sequence

from textgym.rewards.packaged import read_weights, write_weights

__all__ = ["SENTIMENT_WEIGHTS", "SentimentReward", "load_sentiment_weights", "ngram_features", "save_sentiment_weights"]

SENTIMENT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "sentiment.npz"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def ngram_features(text: str, bits: int = 18) -> list[int]:
    """Sorted distinct bucket ids of the text's word unigrams and bigrams (CRC-32 mod ``2**bits``).

    Words are runs of lowercase letters and digits (with an apostrophe suffix such as ``n't``'s
    ``'t``), plus ``!`` and ``?``; HTML line breaks and other punctuation separate words.
    """
    tokens = _WORD.findall(text.lower().replace("<br />", " "))
    grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]
    mask = (1 << bits) - 1
    return sorted({zlib.crc32(g.encode("utf-8")) & mask for g in grams})


def save_sentiment_weights(path: str | os.PathLike, weights: Any, bias: float, meta: dict[str, Any]) -> Path:
    """Write ``weights`` (length ``2**bits``) as float16 with the bias and metadata, atomically."""
    import numpy as np

    weights = np.asarray(weights, dtype=np.float16)
    bits = int(weights.size).bit_length() - 1
    if weights.ndim != 1 or weights.size != 1 << bits:
        raise ValueError(f"weights must be a vector of length 2**bits, got shape {weights.shape}")
    write_weights(path, weights, np.float32(bias), meta)
    load_sentiment_weights.cache_clear()
    return Path(path)


@functools.lru_cache(maxsize=4)
def load_sentiment_weights(path: str | os.PathLike = SENTIMENT_WEIGHTS) -> tuple[Any, float, dict[str, Any]]:
    """``(weights as float32, bias, metadata)`` of a saved model (cached per path).

    Raises:
        FileNotFoundError: No such file (the packaged one is missing from a broken install).
    """
    weights, bias, meta = read_weights(path, "sentiment", "textgym rlhf build-sentiment --data-dir DIR")
    return weights, float(bias), meta


class SentimentReward:
    """``P(positive sentiment)`` of each generation under the packaged hashed n-gram model.

    Args:
        weights: A ``.npz`` written by :func:`save_sentiment_weights` (default: the packaged one).
        empty_score: Score of an empty or whitespace-only generation.

    The prompts and references are ignored: the continuation alone is judged.
    """

    def __init__(self, weights: str | os.PathLike = SENTIMENT_WEIGHTS, *, empty_score: float = 0.0) -> None:
        self.path = str(weights)
        self.empty_score = float(empty_score)
        self.name = "sentiment"
        load_sentiment_weights(self.path)  # fail now, not at the first episode end

    def logits(self, texts: Sequence[str]) -> list[float]:
        """The model's log-odds of positive sentiment, one per text."""
        weights, bias, meta = load_sentiment_weights(self.path)
        bits = int(meta["bits"])
        return [bias + float(weights[ngram_features(t, bits)].sum()) for t in texts]

    def __call__(
        self, prompts: Sequence[str], generations: Sequence[str], references: Sequence[Sequence[str]]
    ) -> list[float]:
        """One probability per generation (``empty_score`` for empty ones)."""
        if len(prompts) != len(generations) or len(references) != len(generations):
            raise ValueError(f"got {len(prompts)} prompts, {len(generations)} generations and "
                             f"{len(references)} reference lists; they must be equally long")
        out = []
        for text, logit in zip(generations, self.logits(generations)):
            if not isinstance(text, str):
                raise TypeError(f"generations must be strings, got {type(text).__name__}")
            out.append(self.empty_score if not text.strip() else 1.0 / (1.0 + math.exp(-logit)))
        return out

    def __repr__(self) -> str:
        return f"SentimentReward({self.path!r})"
