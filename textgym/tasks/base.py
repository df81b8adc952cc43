"""TaskEnv: a TextEnv whose items come from a named data set, with per-data-set presets."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Sequence

from textgym.catalogue import TaskPreset  # noqa: F401  (re-exported: textgym.tasks.base.TaskPreset keeps working)
from textgym.core import TextEnv
from textgym.data import load_samples
from textgym.data.base import Sample

# Every keyword a registered id accepts (besides the data-set selection below).
ENV_KWARGS = (
    "tokenizer", "reward", "reward_mode", "max_prompt_length", "max_new_tokens", "prompt_template",
    "instruction", "truncation_side", "metrics", "render_mode", "group_size", "layout",
    "decoder_start_token_id",
)


class TaskEnv(TextEnv):
    """Base of the task families: picks a preset by data set, loads its samples.

    A family's ``PRESETS`` come from :data:`textgym.catalogue.TASKS`, one per data set.

    Args:
        dataset: A data set of this family (see ``PRESETS``).
        split: ``"train"``, ``"validation"`` or ``"test"``, optionally sliced as in ``datasets``
            (``"validation[:700]"``, ``"train[90%:]"``; see :func:`textgym.data.load_samples`).
        data_dir: Folder in the layout of ``shared/data`` (default: ``$TEXTGYM_DATA_DIR``, then the hub).
        samples: Use these items instead of loading ``dataset``/``split`` (presets still apply).
        **kwargs: Any of :data:`ENV_KWARGS`; unset ones take the preset's value.
    """

    PRESETS: ClassVar[dict[str, TaskPreset]] = {}
    family: ClassVar[str] = ""

    def __init__(
        self,
        dataset: str,
        split: str = "train",
        data_dir: str | os.PathLike | None = None,
        samples: Sequence[Sample] | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - set(ENV_KWARGS))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown keyword argument(s) {unknown}; allowed: "
                f"{sorted(('dataset', 'split', 'data_dir', 'samples') + ENV_KWARGS)}"
            )
        if dataset not in self.PRESETS:
            raise ValueError(f"{self.family} data set must be one of {sorted(self.PRESETS)}, got {dataset!r}")
        preset = self.PRESETS[dataset]
        self.dataset, self.split = dataset, split
        if samples is None:
            samples = load_samples(dataset, split=split, data_dir=data_dir)
            if not samples:  # e.g. a slice such as "train[:0]": named here, not as TextEnv's empty samples
                raise ValueError(f"split {split!r} of {dataset} holds no items; give a split (or slice) with at "
                                 "least one")
        settings = {
            "reward": preset.reward,
            "metrics": preset.metrics,
            "max_prompt_length": preset.max_prompt_length,
            "max_new_tokens": preset.max_new_tokens,
            "instruction": preset.instruction,
            "truncation_side": preset.truncation_side,
        }
        settings.update(kwargs)
        super().__init__(samples, **settings)
        self.metadata = {**self.metadata, "family": self.family, "dataset": dataset, "split": split}
