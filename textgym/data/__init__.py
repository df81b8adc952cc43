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
    KNOWN_DATASETS,
    SPLITS,
    DataError,
    detokenize,
    load_samples,
    resolve_data_dir,
)

__all__ = [
    "BUILTIN_DATASETS",
    "DATA_DIR_ENV",
    "DATASETS",
    "KNOWN_DATASETS",
    "SPLITS",
    "DataError",
    "Sample",
    "detokenize",
    "load_samples",
    "resolve_data_dir",
]
