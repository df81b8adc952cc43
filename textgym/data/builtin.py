"""Built-in, zero-download corpora for the default environments.

``textgym/Generation-v0``, ``textgym/Summarization-v0`` and ``textgym/Dialogue-v0``
run out of the box on three small corpora shipped inside the package as JSON Lines
files under ``textgym/data/builtin/``:

* ``generation.jsonl`` -- concept-to-sentence items in the style of CommonGen:
  ``{"id", "concepts", "references"}``.
* ``summarization.jsonl`` -- short news-like paragraphs about invented local events
  and short chat dialogues (``"Name: line"`` lines), each with a one- or
  two-sentence summary: ``{"id", "document", "summary"}``.
* ``dialogue.jsonl`` -- two-speaker everyday conversations:
  ``{"id", "topic", "turns"}``.

All of the text was written for this project and is original to it: no sentence was
taken or paraphrased from CommonGen, SAMSum, DialogSum, CNN/DailyMail, DailyDialog or any
other data set or web text. All names and places are fictional. The corpora are
distributed under the same license as the project (Apache-2.0).

The corpora are tiny (a few hundred items) and meant for smoke tests, tutorials and quick
experiments, not for benchmark numbers; use the real data-set loaders for that.

Splits are assigned per item (never per dialogue turn), deterministically, from a salted
SHA-256 hash of the item id: about 80% ``train``, 10% ``validation`` and 10% ``test``. Adding or
removing items never moves other items between splits.

Example:
    >>> samples = load_builtin("builtin_generation", "validation")
    >>> len(samples) > 0 and all(s.references for s in samples)
    True
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from typing import Any

from textgym.catalogue import SPLITS, TASKS
from textgym.data.base import Sample
from textgym.io import json_lines

__all__ = ["BUILTIN_DATASETS", "SPLITS", "load_builtin", "split_of"]

BUILTIN_DATASETS: tuple[str, ...] = tuple(t.dataset for t in TASKS if t.packaged)
"""Names accepted by :func:`load_builtin`: the catalogue's packaged corpora."""

# SPLITS (from the catalogue): the split names accepted by :func:`load_builtin`.

_FILES = {
    "builtin_generation": "generation.jsonl",
    "builtin_summarization": "summarization.jsonl",
    "builtin_dialogue": "dialogue.jsonl",
}

_REQUIRED_KEYS = {
    "builtin_generation": ("id", "concepts", "references"),
    "builtin_summarization": ("id", "document", "summary"),
    "builtin_dialogue": ("id", "topic", "turns"),
}

# Split boundaries on a 0..99 bucket: [0, 80) train, [80, 90) validation, [90, 100) test.
_TRAIN_BUCKETS = 80
# Fixed salt prefixed to the id before hashing. It was picked once so that these small
# corpora land close to 80/10/10; changing it reshuffles every split, so never change it.
_SPLIT_SALT = "textgym-builtin-v53:"
_VALIDATION_BUCKETS = 10


def split_of(item_id: str) -> str:
    """Returns the split a built-in item belongs to.

    The assignment depends only on the item id (a SHA-256 hash, stable across Python
    versions, platforms and processes; unlike the built-in ``hash``).

    Args:
        item_id: The item's ``id`` field, e.g. ``"gen-0001"`` or ``"dlg-007"``.

    Returns:
        One of ``"train"``, ``"validation"`` or ``"test"``.

    Example:
        >>> split_of("gen-0001") == split_of("gen-0001")
        True
    """
    digest = hashlib.sha256((_SPLIT_SALT + item_id).encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    if bucket < _TRAIN_BUCKETS:
        return "train"
    if bucket < _TRAIN_BUCKETS + _VALIDATION_BUCKETS:
        return "validation"
    return "test"


def _check_name(name: str) -> None:
    if name not in BUILTIN_DATASETS:
        raise ValueError(
            f"unknown built-in data set {name!r}; expected one of {', '.join(BUILTIN_DATASETS)}"
        )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


@lru_cache(maxsize=None)
def _read_items(name: str) -> tuple[dict[str, Any], ...]:
    """Reads and validates one packaged JSONL file (cached; callers must not mutate)."""
    filename = _FILES[name]
    resource = resources.files("textgym.data") / "builtin" / filename
    text = resource.read_text(encoding="utf-8")
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for lineno, item in json_lines(text.splitlines(), filename):
        missing = [key for key in _REQUIRED_KEYS[name] if key not in item]
        if missing:
            raise ValueError(f"{filename}:{lineno}: missing field(s) {', '.join(missing)}")
        if item["id"] in seen:
            raise ValueError(f"{filename}:{lineno}: duplicate id {item['id']!r}")
        seen.add(item["id"])
        items.append(item)
    return tuple(items)


def _to_samples(name: str, item: dict[str, Any]) -> list[Sample]:
    """Maps one raw item to its :class:`Sample` objects (several for a dialogue)."""
    if name == "builtin_generation":
        concepts = list(item["concepts"])
        return [
            Sample(
                id=item["id"],
                source=", ".join(concepts),
                references=tuple(item["references"]),
                meta={"concepts": concepts},
            )
        ]
    if name == "builtin_summarization":
        return [Sample(id=item["id"], source=item["document"], references=(item["summary"],))]
    # builtin_dialogue: one sample per turn position, like DailyDialog-style loaders.
    turns = list(item["turns"])
    return [
        Sample(
            id=f"{item['id']}-t{i}",
            source="\n".join(turns[:i]),
            references=(turns[i],),
            meta={"topic": item["topic"], "turn": i, "dialogue": item["id"]},
        )
        for i in range(1, len(turns))
    ]


@lru_cache(maxsize=None)
def _load(name: str, split: str) -> tuple[Sample, ...]:
    samples: list[Sample] = []
    for item in _read_items(name):
        if split_of(item["id"]) == split:
            samples.extend(_to_samples(name, item))
    return tuple(samples)


def load_builtin(name: str, split: str = "train") -> list[Sample]:
    """Loads one split of a built-in corpus.

    Mapping to :class:`~textgym.data.base.Sample`:

    * ``builtin_generation``: ``source`` is the concepts joined by ``", "``,
      ``references`` are the reference sentences, ``meta == {"concepts": [...]}``.
    * ``builtin_summarization``: ``source`` is the document (a paragraph or a
      ``"Name: line"`` chat), ``references == (summary,)``.
    * ``builtin_dialogue``: every dialogue is expanded over its turn positions: for
      ``i`` in ``1 .. len(turns) - 1``, ``source`` is the first ``i`` turns joined by
      ``"\\n"``, ``references == (turns[i],)``, ``id`` is ``f"{item_id}-t{i}"`` and
      ``meta == {"topic": ..., "turn": i, "dialogue": item_id}``. All turns of one
      dialogue are in the same split.

    Parsing is cached; each call returns a new list (the :class:`Sample` objects are
    shared between calls, so treat their ``meta`` as read-only).

    Args:
        name: One of :data:`BUILTIN_DATASETS`.
        split: One of ``"train"``, ``"validation"``, ``"test"``.

    Returns:
        The samples of that split, in file order.

    Raises:
        ValueError: If ``name`` or ``split`` is unknown, or a packaged file is malformed.

    Example:
        >>> dialogue = load_builtin("builtin_dialogue", "test")
        >>> dialogue[0].meta["turn"]
        1
    """
    _check_name(name)
    _check_split(split)
    return list(_load(name, split))
