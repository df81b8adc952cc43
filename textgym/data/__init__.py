"""Task data: the ``Sample`` record and loaders for the real and builtin data sets.

Example:
    >>> from textgym.data import load_samples
    >>> samples = load_samples("samsum", "validation", data_dir="path/to/data")  # doctest: +SKIP
    >>> samples[0].source, samples[0].references  # doctest: +SKIP
"""

from textgym.data.base import Sample
from textgym.data.loaders import (
    BUILTIN_DATASETS,
    DATA_DIR_ENV,
    DATASETS,
    HELDOUT_SLICES,
    HELDOUT_TRAIN_SLICES,
    KNOWN_DATASETS,
    SPLITS,
    DataError,
    detokenize,
    load_samples,
    resolve_data_dir,
)
from textgym.data.splits import SplitSpec, parse_split

__all__ = [
    "BUILTIN_DATASETS",
    "DATA_DIR_ENV",
    "DATASETS",
    "HELDOUT_SLICES",
    "HELDOUT_TRAIN_SLICES",
    "KNOWN_DATASETS",
    "SPLITS",
    "DataError",
    "Sample",
    "SplitSpec",
    "detokenize",
    "load_samples",
    "parse_split",
    "resolve_data_dir",
]
