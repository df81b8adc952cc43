"""Loaders for the real data sets, read from a local folder in the layout of ``SOURCES.md``.

The folder holds one sub-folder per data set (``commongen/``, ``samsum/``, ...) with the files
each record of :data:`textgym.catalogue.TASKS` names, e.g. ``samsum/validation.json``, in one of
the formats of :data:`PARSERS`. A split whose files are not shipped (``test``) reads a file of the
same format as a shipped one. Loaders never build prompts: ``Sample.source`` is the raw task input.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from textgym.data.base import Sample
from textgym.data.rows import (  # noqa: F401  (re-exported: loaders.X keeps working)
    IMDB_PROMPT_WORDS,
    IMDB_CONTINUATION_WORDS,
    IMDB_MIN_WORDS,
    _POS_SUFFIX,
    DataError,
    detokenize,
    commongen_source,
    imdb_sample,
    dialogue_samples,
    split_turns,
)
from textgym.catalogue import SPLITS, TASKS, SplitFiles, dataset_task
from textgym.io import read_json, read_text
from textgym.data.splits import parse_split, slice_items

logger = logging.getLogger(__name__)

# Derived from the catalogue: a new data set is a record there.
DATASETS: tuple[str, ...] = tuple(t.dataset for t in TASKS if not t.packaged)
BUILTIN_DATASETS: tuple[str, ...] = tuple(t.dataset for t in TASKS if t.packaged)
KNOWN_DATASETS: tuple[str, ...] = DATASETS + BUILTIN_DATASETS
DATA_DIR_ENV = "TEXTGYM_DATA_DIR"
#: Data sets shipped without a validation split: the held-out slice that ``"validation"`` falls back
#: to (with a logged warning), and the complementary slice to train on.
HELDOUT_SLICES: dict[str, str] = {t.dataset: t.heldout[0] for t in TASKS if t.heldout}
HELDOUT_TRAIN_SLICES: dict[str, str] = {t.dataset: t.heldout[1] for t in TASKS if t.heldout}

# --------------------------------------------------------------------------- file helpers


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file without the final empty line a trailing newline leaves."""
    # Not splitlines(): it also breaks on U+2028, form feeds etc. and would misalign paired files.
    try:
        lines = read_text(path).split("\n")
    except ValueError as err:
        raise DataError(str(err)) from None
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or ())]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
            return list(reader)
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err})") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not valid UTF-8 ({err.reason} at byte {err.start} of a read block); "
                        "the file may be corrupt or in another encoding") from None


def _int_list(text: str, path: Path, line_no: int) -> list[int]:
    try:
        return [int(value) for value in text.split()]
    except ValueError as err:
        raise DataError(f"{path}:{line_no}: expected integers, got {text!r}") from err


def _check_unique(samples: list[Sample], path: Path) -> list[Sample]:
    if len({s.id for s in samples}) != len(samples):
        raise DataError(f"{path}: duplicate ids")
    return samples


# --------------------------------------------------------------------------- parsers


def _parse_commongen_pair(src: Path, tgt: Path, split: str) -> list[Sample]:
    """Aligned concept/target lines; consecutive identical concept lines make one item."""
    concepts_lines, targets = _read_lines(src), _read_lines(tgt)
    if len(concepts_lines) != len(targets):
        raise DataError(
            f"{src} has {len(concepts_lines)} lines but {tgt} has {len(targets)}; "
            "the two files must be aligned line by line"
        )
    groups: list[tuple[str, list[str]]] = []
    for line_no, (concepts, target) in enumerate(zip(concepts_lines, targets), start=1):
        if not concepts.strip() or not target.strip():
            raise DataError(f"{src} / {tgt}: empty concept set or target on line {line_no}")
        if groups and groups[-1][0] == concepts:
            groups[-1][1].append(target.strip())
        else:
            groups.append((concepts, [target.strip()]))
    return [
        Sample(f"commongen-{split}-{k}", commongen_source(words), tuple(refs), {"concepts": words})
        for k, (words, refs) in enumerate((c.split(), refs) for c, refs in groups)
    ]


def _parse_commongen_jsonl(path: Path, split: str) -> list[Sample]:
    """One JSON object per line: ``concept_set`` ("field_N#look_V") and ``scene`` (references)."""
    samples = []
    for line_no, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            concepts = [_POS_SUFFIX.sub("", c) for c in row["concept_set"].split("#")]
            scene = row["scene"]
            if not isinstance(scene, list) or not all(isinstance(s, str) for s in scene):
                raise DataError(f"{path}:{line_no}: 'scene' must be a list of reference sentences, got "
                                f"{type(scene).__name__} {str(scene)[:60]!r}")
            refs = tuple(s.strip() for s in scene if s.strip())
        except DataError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            expected = "a JSON object with concept_set and scene"
            raise DataError(f"{path}:{line_no}: expected {expected} ({err!r})") from err
        if not refs:
            raise DataError(f"{path}:{line_no}: no reference sentences in 'scene'")
        sample_id = f"commongen-{split}-{len(samples)}"
        samples.append(Sample(sample_id, commongen_source(concepts), refs, {"concepts": concepts}))
    return samples


def _parse_imdb(path: Path, split: str) -> list[Sample]:
    samples = []
    for row_no, row in enumerate(_read_csv(path, ("id", "sentiment", "review")), start=2):
        try:
            label = int(row["sentiment"])
        except (TypeError, ValueError) as err:
            got = row["sentiment"]
            raise DataError(f"{path}:{row_no}: sentiment must be 0 or 1, got {got!r}") from err
        sample = imdb_sample(f"imdb-{row['id']}", label, row["review"] or "")
        if sample is not None:
            samples.append(sample)
    return _check_unique(samples, path)


def _parse_cnn(path: Path, split: str) -> list[Sample]:
    samples = []
    for row_no, row in enumerate(_read_csv(path, ("article", "highlights", "id")), start=2):
        if not (row["article"] or "").strip() or not (row["highlights"] or "").strip():
            raise DataError(f"{path}:{row_no}: empty article or highlights")
        # Highlights keep their newlines: ROUGE-Lsum splits sentences on them.
        samples.append(Sample(row["id"], row["article"].strip(), (row["highlights"].strip(),), {}))
    return _check_unique(samples, path)


def _parse_summary_json(path: Path, split: str) -> list[Sample]:
    dataset = path.parent.name
    try:
        rows = read_json(path)
        pairs = [(row["dialogue"], row["summary"]) for row in rows]
    except (ValueError, KeyError, TypeError) as err:
        expected = "a JSON list of {dialogue, summary} objects"
        raise DataError(f"{path}: expected {expected} ({err!r})") from err
    samples = []
    for index, (dialogue, summary) in enumerate(pairs):
        if not isinstance(dialogue, str) or not isinstance(summary, str) or not summary.strip():
            raise DataError(f"{path}: item {index} needs a 'dialogue' and a non-empty 'summary'")
        sample_id = f"{dataset}-{split}-{index}"
        samples.append(Sample(sample_id, dialogue.strip(), (summary.strip(),), {}))
    return samples


def _parse_dailydialog_train(text_path: Path, split: str) -> list[Sample]:
    """``dialogues_text_En.txt`` plus the optional, line-aligned topic/emotion/act files."""
    dialogues = _read_lines(text_path)
    columns: dict[str, list[list[int]]] = {}
    for key, names in _DAILYDIALOG_LABEL_FILES.items():
        found = [text_path.parent / n for n in names if (text_path.parent / n).is_file()]
        if not found:
            continue  # optional metadata
        path = found[0]
        lines = _read_lines(path)
        if len(lines) != len(dialogues):
            raise DataError(f"{path} has {len(lines)} lines but {text_path} has {len(dialogues)}")
        columns[key] = [_int_list(line, path, n) for n, line in enumerate(lines, start=1)]
    samples: list[Sample] = []
    for k, line in enumerate(dialogues):
        meta: dict[str, Any] = {"dialogue": k}
        if "topic" in columns:
            meta["topic"] = columns["topic"][k][0] if columns["topic"][k] else None
        labels = {key: columns[key][k] for key in ("emotion", "act") if key in columns}
        prefix = f"dailydialog-{split}-{k}"
        samples.extend(dialogue_samples(prefix, split_turns(line), meta, labels))
    return samples


def _parse_dailydialog_tsv(path: Path, split: str) -> list[Sample]:
    """Tab-separated ``text, topic, acts, emotions`` (the dev/test format)."""
    samples: list[Sample] = []
    for k, line in enumerate(_read_lines(path)):
        fields = line.split("\t")
        if len(fields) != 4:
            raise DataError(
                f"{path}:{k + 1}: expected 4 tab-separated fields "
                f"(text, topic, acts, emotions), got {len(fields)}"
            )
        text, topic, acts, emotions = fields
        topic_ids = _int_list(topic, path, k + 1)
        meta = {"dialogue": k, "topic": topic_ids[0] if topic_ids else None}
        labels = {"emotion": _int_list(emotions, path, k + 1), "act": _int_list(acts, path, k + 1)}
        prefix = f"dailydialog-{split}-{k}"
        samples.extend(dialogue_samples(prefix, split_turns(text), meta, labels))
    return samples


# Acts are in "dialogues_act.txt" in the original release, "dialogues_action.txt" in XDailyDialog.
_DAILYDIALOG_LABEL_FILES = {
    "topic": ("dialogues_topic.txt",),
    "emotion": ("dialogues_emotion.txt",),
    "act": ("dialogues_act.txt", "dialogues_action.txt"),
}

Parser = Callable[..., list[Sample]]
#: File format -> parser, called as ``parser(*files, split)``; the catalogue names a format per split.
PARSERS: dict[str, Parser] = {
    "commongen_pair": _parse_commongen_pair,
    "commongen_jsonl": _parse_commongen_jsonl,
    "imdb_csv": _parse_imdb,
    "cnn_csv": _parse_cnn,
    "summary_json": _parse_summary_json,
    "dailydialog_text": _parse_dailydialog_train,
    "dailydialog_tsv": _parse_dailydialog_tsv,
}


# --------------------------------------------------------------------------- public API


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The local data directory: the argument, else ``$TEXTGYM_DATA_DIR``, else None (hub).

    Raises:
        FileNotFoundError: The given (or configured) directory does not exist.
    """
    origin = "data_dir"
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
        origin = f"${DATA_DIR_ENV}"
        if data_dir is None:
            return None
    path = Path(data_dir).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{origin} {path} is not a directory; it must hold one folder per data set "
            f"({', '.join(DATASETS)}) as in shared/data/SOURCES.md"
        )
    return path


def load_samples(
    dataset: str, split: str = "train", data_dir: str | os.PathLike[str] | None = None
) -> list[Sample]:
    """Load one split of a data set (or a slice of it) as a list of Samples, in file order.

    Args:
        dataset: One of ``KNOWN_DATASETS``: a real data set (``DATASETS``) or a builtin
            mini corpus (``"builtin_..."``, packaged with textgym; ``data_dir`` is ignored).
        split: ``"train"``, ``"validation"`` or ``"test"``, optionally sliced as in Hugging Face
            ``datasets``: ``"validation[:700]"``, ``"train[90%:]"``, ``"train[:10%]"``,
            ``"train[-200:]"`` (see :mod:`textgym.data.splits`). A data set whose folder lacks
            ``validation`` but has a held-out slice in :data:`HELDOUT_SLICES` (IMDB:
            ``train[90%:]``) loads that slice instead and logs a warning saying so.
        data_dir: Folder in the layout of ``SOURCES.md``. Defaults to ``$TEXTGYM_DATA_DIR``,
            and when that is unset the Hugging Face hub is used (needs ``textgym[hub]``).

    Returns:
        A new list each call; the Samples are shared with a cache, so treat them (and
        their ``meta``) as read-only.

    Raises:
        ValueError: Unknown data set or split.
        FileNotFoundError: The data directory or a file of the split is missing.
        DataError: A file is malformed (a ``ValueError`` naming the file).
    """
    if dataset not in KNOWN_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(KNOWN_DATASETS)}")
    spec = parse_split(split)
    if spec.name not in SPLITS:
        raise ValueError(f"unknown split {split!r} for {dataset}; allowed: {', '.join(SPLITS)}, each optionally "
                         "sliced as in 'train[:90%]' or 'validation[:700]'")
    if spec.is_sliced:
        return slice_items(load_samples(dataset, spec.name, data_dir), spec)
    fallback = _heldout_fallback(dataset, split, data_dir)
    if fallback is not None:
        return load_samples(dataset, fallback, data_dir)
    if dataset in BUILTIN_DATASETS:
        from textgym.data.builtin import load_builtin  # lazy: written separately, packaged data

        return list(load_builtin(dataset, split))
    root = resolve_data_dir(data_dir)
    if root is None:
        from textgym.data.hub import load_hub_samples  # lazy: needs the optional `datasets`

        return load_hub_samples(dataset, split)
    files = _split_files(dataset, split, root)
    # Stamping the whole folder (optional metadata files included) makes an edited file
    # re-parse instead of hitting a stale cache entry.
    stats = ((p.name, p.stat()) for p in sorted(files[0].parent.iterdir()))
    stamp = tuple((name, st.st_mtime_ns, st.st_size) for name, st in stats)
    return list(_load_cached(dataset, split, tuple(files), stamp))


def _heldout_fallback(dataset: str, split: str, data_dir: str | os.PathLike[str] | None) -> str | None:
    """The slice to load instead of ``split`` when the local folder lacks it, or None."""
    if split != "validation" or dataset not in HELDOUT_SLICES:
        return None
    root = resolve_data_dir(data_dir)  # None: the hub, which has no validation split for these either
    if root is not None and all((root / dataset / name).is_file() for name in _local_files(dataset)[split].names):
        return None
    _warn_fallback(dataset, split, str(root / dataset) if root else "the hub")
    return HELDOUT_SLICES[dataset]


@functools.lru_cache(maxsize=None)
def _warn_fallback(dataset: str, split: str, where: str) -> None:
    """Say once per process and folder that ``split`` was replaced by the held-out slice."""
    logger.warning("%s has no %r split in %s; using the held-out slice %r instead (train on the rest, "
                   "%r, to keep them disjoint)", dataset, split, where, HELDOUT_SLICES[dataset],
                   HELDOUT_TRAIN_SLICES[dataset])


def _split_files(dataset: str, split: str, root: Path) -> list[Path]:
    """The files a split needs, after checking that each one exists."""
    task = dataset_task(dataset)
    names, same_as = _local_files(dataset)[split].names, task.same_format_as(split)
    folder = root / dataset
    files = [folder / name for name in names]
    for path in files:
        if path.is_file():
            continue
        hint = f" (same format as {same_as})" if same_as else ""
        if not folder.is_dir():
            hint += f"; there is no folder {folder}: data_dir must hold one folder per data set"
        raise FileNotFoundError(f"{dataset} split {split!r}: expected file {path}{hint}")
    return files


@functools.lru_cache(maxsize=32)
def _load_cached(
    dataset: str, split: str, files: tuple[Path, ...], stamp: tuple[Any, ...]
) -> tuple[Sample, ...]:
    """Parse once per (dataset, split, files, modification stamp)."""
    parser = PARSERS[_local_files(dataset)[split].parser]
    return tuple(parser(*files, split))


def _local_files(dataset: str) -> Mapping[str, SplitFiles]:
    """Split -> files of a data set read from a local folder (not a packaged one)."""
    files = dataset_task(dataset).files
    if files is None:
        raise ValueError(f"{dataset} is packaged with textgym: it has no files in a data folder")
    return files
