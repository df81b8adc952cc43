"""Fallback when no local data directory is set: the same data sets from the Hugging Face hub.

Needs the optional ``datasets`` package (``pip install "textgym[hub]"``) and the network. The
row mappers below turn hub rows into the same ``Sample`` shape as the local loaders; they are
pure functions so that they can be tested offline on hand-made rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from itertools import groupby
from typing import Any

from textgym.catalogue import SPLITS, TASKS
from textgym.data.base import Sample
from textgym.data.rows import (
    DataError,
    commongen_source,
    dialogue_samples,
    imdb_sample,
    split_turns,
)

Row = Mapping[str, Any]

# Derived from the catalogue (each record's ``hub``): a new data set is a record there.
#: dataset -> (hub repository id, configuration name or None)
HUB_SOURCES: dict[str, tuple[str, str | None]] = {t.dataset: (t.hub.repo, t.hub.config) for t in TASKS if t.hub}
#: Splits a hub repository does not have (IMDB has only train and test).
_MISSING_SPLITS = {(t.dataset, s) for t in TASKS if t.hub for s in SPLITS if s not in t.hub.splits}
_ROW_FORMAT = {t.dataset: t.hub.rows for t in TASKS if t.hub}


def commongen_from_rows(rows: Iterable[Row], split: str) -> list[Sample]:
    """``{concept_set_idx, concepts, target}`` rows; consecutive rows of one set make one item.

    Raises:
        DataError: A concept set has no non-empty target (the hub's test split is unlabelled).
    """
    samples = []
    for k, (_, grouped) in enumerate(groupby(rows, key=lambda row: row["concept_set_idx"])):
        group = list(grouped)
        concepts = list(group[0]["concepts"])
        refs = tuple(row["target"].strip() for row in group if (row["target"] or "").strip())
        if not refs:
            raise DataError(
                f"commongen split {split!r} on the hub has no reference for {concepts}; "
                "its test targets are not public, use a local data_dir with commongen.test.jsonl"
            )
        meta = {"concepts": concepts}
        samples.append(Sample(f"commongen-{split}-{k}", commongen_source(concepts), refs, meta))
    return samples


def imdb_from_rows(rows: Iterable[Row], split: str) -> list[Sample]:
    """``{text, label}`` rows; too-short reviews and unlabelled ones (label -1) are skipped."""
    samples = []
    for index, row in enumerate(rows):
        if int(row["label"]) < 0:
            continue
        sample = imdb_sample(f"imdb-{split}-{index}", int(row["label"]), row["text"])
        if sample is not None:
            samples.append(sample)
    return samples


def cnn_from_rows(rows: Iterable[Row], split: str) -> list[Sample]:
    """``{article, highlights, id}`` rows; highlights keep their newlines (for ROUGE-Lsum)."""
    return [
        Sample(row["id"], row["article"].strip(), (row["highlights"].strip(),), {}) for row in rows
    ]


def summary_from_rows(rows: Iterable[Row], dataset: str, split: str) -> list[Sample]:
    """``{dialogue, summary}`` rows (SAMSum, DialogSum); ``\\r\\n`` line ends become ``\\n``."""
    samples = []
    for index, row in enumerate(rows):
        dialogue = row["dialogue"].replace("\r\n", "\n").strip()
        meta = {"hub_id": row["id"]} if "id" in row else {}
        references = (row["summary"].strip(),)
        samples.append(Sample(f"{dataset}-{split}-{index}", dialogue, references, meta))
    return samples


def dailydialog_from_rows(rows: Iterable[Row], split: str) -> list[Sample]:
    """``{dialog: [turns], act: [...], emotion: [...]}`` rows, one item per turn ``i >= 1``.

    The hub version has no topic; act and emotion use the same integer codes as the files.
    """
    samples: list[Sample] = []
    for k, row in enumerate(rows):
        turns = split_turns(" __eou__ ".join(row["dialog"]))
        labels = {key: [int(v) for v in row[key]] for key in ("emotion", "act") if key in row}
        samples.extend(dialogue_samples(f"dailydialog-{split}-{k}", turns, {"dialogue": k}, labels))
    return samples


RowMapper = Callable[[Iterable[Row], str, str], list[Sample]]
#: Row format -> mapper, called as ``mapper(rows, dataset, split)``; the catalogue names each
#: data set's format.
ROW_MAPPERS: dict[str, RowMapper] = {
    "commongen": lambda rows, dataset, split: commongen_from_rows(rows, split),
    "imdb": lambda rows, dataset, split: imdb_from_rows(rows, split),
    "cnn": lambda rows, dataset, split: cnn_from_rows(rows, split),
    "summary": summary_from_rows,
    "dailydialog": lambda rows, dataset, split: dailydialog_from_rows(rows, split),
}


def rows_to_samples(dataset: str, split: str, rows: Iterable[Row]) -> list[Sample]:
    """Map hub rows of ``dataset`` to Samples, like the local loader of the same data set."""
    if dataset not in _ROW_FORMAT:
        raise ValueError(f"no hub source for {dataset!r}; known: {', '.join(_ROW_FORMAT)}")
    return ROW_MAPPERS[_ROW_FORMAT[dataset]](rows, dataset, split)


def load_hub_samples(dataset: str, split: str) -> list[Sample]:
    """Download (or reuse the ``datasets`` cache of) one split and map it to Samples.

    Raises:
        ImportError: ``datasets`` is not installed.
        ValueError: The hub repository has no such split.
    """
    return list(_load_hub_cached(dataset, split))


@functools.lru_cache(maxsize=16)
def _load_hub_cached(dataset: str, split: str) -> tuple[Sample, ...]:
    if dataset not in HUB_SOURCES:
        raise ValueError(f"no hub source for {dataset!r}; known: {', '.join(HUB_SOURCES)}")
    if (dataset, split) in _MISSING_SPLITS:
        raise ValueError(
            f"{HUB_SOURCES[dataset][0]} has no {split!r} split; "
            f"use a local data_dir (or $TEXTGYM_DATA_DIR) with {dataset}/{split}.csv"
        )
    try:
        import datasets  # lazy: optional and heavy
    except ImportError as err:
        raise ImportError(
            f"loading {dataset!r} from the Hugging Face hub needs the `datasets` package: "
            'pip install "textgym[hub]" (or pass data_dir / set $TEXTGYM_DATA_DIR to local files)'
        ) from err
    repo, config = HUB_SOURCES[dataset]
    rows = datasets.load_dataset(repo, config, split=split)
    return tuple(rows_to_samples(dataset, split, rows))
