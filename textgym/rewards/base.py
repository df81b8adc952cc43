"""The reward protocol shared by metric and learned rewards."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable


@runtime_checkable
class RewardFn(Protocol):
    """A pure, batched text reward.

    Called with equally long sequences of prompts, generations and reference lists; returns one
    float per item. Implementations must not keep state between calls that changes results.
    """

    name: str

    def __call__(
        self,
        prompts: Sequence[str],
        generations: Sequence[str],
        references: Sequence[Sequence[str]],
    ) -> list[float]: ...
