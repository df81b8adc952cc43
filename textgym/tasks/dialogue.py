"""Dialogue tasks: write the next turn of a conversation (DailyDialog)."""

from __future__ import annotations

from typing import Any

from textgym.catalogue import presets
from textgym.tasks.base import TaskEnv


class DialogueEnv(TaskEnv):
    """Write the next turn given the previous ones, token by token.

    Data sets: ``builtin_dialogue`` (original conversations shipped with textgym) and
    ``dailydialog``. Episodes are drawn over every turn position of every dialogue, not only the
    last; over-long contexts keep their latest turns.

    ## Sample fields
    Each DailyDialog item's ``meta`` holds ``dialogue`` (its index in the file), ``turn`` (the
    position of the reference turn, >= 1), ``topic``, and the labels of the reference turn:
    ``emotion`` (0-6) and ``act``, its dialogue act as DailyDialog's code: 1 inform, 2 question,
    3 directive, 4 commissive (names in :data:`textgym.rewards.dialogue_act.ACTS`). A dialogue whose
    label line does not have one label per turn gets no labels (559 of the 54,046 train items have no
    act; every validation item has one). Rewards receive the fields with the references
    (:class:`textgym.rewards.base.References`), which is how ``reward="dialogue_act"`` (the packaged
    act classifier's probability that the reply has the reference turn's act) and
    ``"dialogue_act_acc"`` (1 if its most likely act is the reference act) learn the act.

    With such a reward, items without an act are left out (a logged warning says how many); a data
    set with no act at all (``builtin_dialogue``) raises ValueError, and so does an ``act`` outside
    the four acts. An empty context raises ValueError as any empty source does.

    See :class:`textgym.core.TextEnv` for the spaces, rewards, episode end and arguments.

    ## Version History
    * v0: initial version. The ``act`` field and the ``"dialogue_act"`` rewards were added without a
      version change: the defaults (reward ``rougeL``, metrics, prompts) and the items are unchanged.
    """

    family = "dialogue"
    PRESETS = presets(family)

    def __init__(self, dataset: str, split: str = "train", data_dir: Any = None, samples: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(dataset, split, data_dir, samples, **kwargs)
        from textgym.rewards.dialogue_act import act_index

        for sample in self.samples:
            if sample.meta.get("act") is not None:
                try:
                    act_index(sample.meta["act"])
                except ValueError as exc:
                    raise ValueError(f"sample {sample.id!r}: {exc}") from None
