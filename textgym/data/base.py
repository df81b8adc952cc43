"""The unit of every data set: one prompt input with its reference outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One task item.

    Attributes:
        id: Stable identifier, unique within a (dataset, split).
        source: The task input as raw text (a concept list, an article, a dialogue context).
            Task classes wrap it in their prompt template; loaders never format prompts.
        references: One or more reference outputs (multi-reference metrics take the max).
        meta: Extra fields a loader wants to keep (topic, turn index, label, ...).
    """

    id: str
    source: str
    references: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
