"""The IMDB sentiment reward model: ``P(positive)`` of a text, the default reward of IMDB-v0.

Made by ``textgym rlhf train-sentiment --data-dir DIR`` from labelled reviews in a data folder laid
out as ``shared/data`` (see its SOURCES.md):

* ``imdb/train.csv``: IMDB reviews with a 0/1 ``sentiment``;
* ``sentiment/sentence_polarity.zip``: 10,662 review snippets (``rt-polarity.pos``/``.neg``);
* ``sentiment/movie_reviews.zip``: 2,000 reviews (``pos/``, ``neg/``).

A seeded share of each source is held out and the accuracy on it is reported (and stored in the
model's ``reward_model.json``), also on the held-out reviews' continuation excerpts: the kind of
text IMDB-v0 scores. The model is saved atomically under
``<textgym cache>/reward_models/imdb-sentiment`` (the reward spec ``"rm:imdb-sentiment"``).

Example:
    >>> clean_review("Great.<br /><br />Really  great!")
    'Great. Really great!'
"""

from __future__ import annotations

import csv
import os
import re
import zipfile
from pathlib import Path
from typing import Any

from textgym.models import cache_dir
from textgym.rlhf.train import FitConfig, fit_labels, split_by_group

__all__ = ["SENTIMENT_MODEL", "clean_review", "load_sentiment_corpus", "sentiment_model_path",
           "train_sentiment_model"]

SENTIMENT_MODEL = "imdb-sentiment"
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
Item = tuple[str, str, int]  # (group id, text, label)


def clean_review(text: str) -> str:
    """Drop HTML line breaks and squeeze whitespace."""
    return " ".join(_BR.sub(" ", text).split())


def sentiment_model_path() -> Path:
    """Where ``train-sentiment`` saves by default (and ``rm:imdb-sentiment`` looks)."""
    return cache_dir() / "reward_models" / SENTIMENT_MODEL


def _need(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the data folder must hold imdb/train.csv and "
                                "sentiment/{sentence_polarity,movie_reviews}.zip (see shared/data/SOURCES.md)")
    return path


def _imdb(root: Path) -> list[Item]:
    path = _need(root / "imdb" / "train.csv")
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not valid UTF-8 ({err.reason}); the file may be corrupt") from None
    except csv.Error as err:
        raise ValueError(f"{path}: malformed CSV ({err})") from None
    items = []
    for row_no, row in enumerate(rows, start=2):
        if row.get("sentiment") not in ("0", "1"):
            raise ValueError(f"{path}:{row_no}: sentiment must be 0 or 1, got {row.get('sentiment')!r}")
        items.append((f"imdb-{row['id']}", clean_review(row["review"] or ""), int(row["sentiment"])))
    return [it for it in items if it[1]]


def _polarity(root: Path) -> list[Item]:
    items = []
    with zipfile.ZipFile(_need(root / "sentiment" / "sentence_polarity.zip")) as zf:
        for suffix, label in (("pos", 1), ("neg", 0)):
            text = zf.read(f"sentence_polarity/rt-polarity.{suffix}").decode("latin-1")
            items += [(f"rt-{suffix}-{i}", line.strip(), label)
                      for i, line in enumerate(text.splitlines()) if line.strip()]
    return items


def _movie_reviews(root: Path) -> list[Item]:
    items = []
    with zipfile.ZipFile(_need(root / "sentiment" / "movie_reviews.zip")) as zf:
        for name in sorted(zf.namelist()):
            parts = name.split("/")
            if len(parts) == 3 and parts[1] in ("pos", "neg") and name.endswith(".txt"):
                text = " ".join(zf.read(name).decode("utf-8", errors="replace").split())
                items.append((name, text, int(parts[1] == "pos")))
    return items


def load_sentiment_corpus(data_dir: str | os.PathLike | None = None) -> dict[str, list[Item]]:
    """The labelled texts by source: ``{"imdb": [(id, text, label), ...], ...}``.

    Args:
        data_dir: Data folder (default: ``$TEXTGYM_DATA_DIR``).

    Raises:
        FileNotFoundError: No folder given or configured, or a file is missing.
    """
    from textgym.data import resolve_data_dir

    root = resolve_data_dir(data_dir)
    if root is None:
        raise FileNotFoundError("no data folder: pass --data-dir DIR (or data_dir=) or set TEXTGYM_DATA_DIR "
                                "to a folder holding imdb/train.csv and sentiment/*.zip")
    return {"imdb": _imdb(root), "sentence_polarity": _polarity(root), "movie_reviews": _movie_reviews(root)}


def _excerpt(text: str) -> str | None:
    """The continuation an IMDB-v0 episode is scored against (as textgym.data makes it)."""
    from textgym.data.loaders import imdb_sample

    sample = imdb_sample("x", 0, text)
    return sample.references[0] if sample is not None else None


def _accuracy(rm, items: list[Item]) -> float | None:
    if not items:
        return None
    texts = [t for _, t, _ in items]
    probs = rm([""] * len(texts), texts, [[""]] * len(texts))
    return sum((p > 0.5) == bool(y) for p, (_, _, y) in zip(probs, items)) / len(items)


def train_sentiment_model(data_dir: str | os.PathLike | None = None,
                          out: str | os.PathLike | None = None, *, encoder: str = "all-MiniLM-L6-v2",
                          max_length: int = 128, head_hidden: int = 0, heldout_fraction: float = 0.1,
                          limit: int | None = None, config: FitConfig | None = None,
                          device: Any = "auto") -> dict[str, Any]:
    """Train, evaluate on the held-out parts, save. Returns the metrics.

    Args:
        data_dir: Data folder (default: ``$TEXTGYM_DATA_DIR``).
        out: Where to save (default: :func:`sentiment_model_path`).
        encoder, max_length, head_hidden: See :class:`~textgym.rewards.reward_model.RewardModelConfig`.
        heldout_fraction: Share of each source held out.
        limit: Use at most this many items per source (quick runs and tests).
        config: Training settings (default: frozen encoder, cached embeddings).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    """
    from textgym.rewards.reward_model import RewardModel, RewardModelConfig

    config = config or FitConfig(n_epochs=40)
    corpus = load_sentiment_corpus(data_dir)
    train: list[Item] = []
    held: dict[str, list[Item]] = {}
    for source, items in corpus.items():
        if limit is not None and limit < len(items):  # a seeded random subset of `limit` items
            items = split_by_group(items, [i[0] for i in items], limit / len(items), config.seed)[1]
        tr, ho = split_by_group(items, [i[0] for i in items], heldout_fraction, config.seed)
        train += tr
        held[source] = ho
    excerpts = [(g, e, y) for g, t, y in held["imdb"] if (e := _excerpt(t))]
    rm = RewardModel(RewardModelConfig(encoder=encoder, input="generation", output="probability",
                                       max_length=max_length, head_hidden=head_hidden), device=device)
    metrics: dict[str, Any] = fit_labels(rm, [t for _, t, _ in train], [y for _, _, y in train], config=config)
    for source, items in {**held, "imdb_continuations": excerpts}.items():
        metrics[f"heldout_accuracy_{source}"] = _accuracy(rm, items)
        metrics[f"n_heldout_{source}"] = len(items)
    all_held = [it for items in held.values() for it in items]
    metrics["heldout_accuracy"] = _accuracy(rm, all_held)
    metrics["n_heldout"] = len(all_held)
    rm.config.metrics = metrics
    rm.save(out or sentiment_model_path())
    return metrics
