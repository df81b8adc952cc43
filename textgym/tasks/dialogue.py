"""Dialogue tasks: write the next turn of a conversation (DailyDialog)."""

from __future__ import annotations

from textgym.catalogue import presets
from textgym.tasks.base import TaskEnv


class DialogueEnv(TaskEnv):
    """Write the next turn given the previous ones, token by token.

    Data sets: ``builtin_dialogue`` (original conversations shipped with textgym) and
    ``dailydialog``. Episodes are drawn over every turn position of every dialogue, not only the
    last; over-long contexts keep their latest turns.

    See :class:`textgym.core.TextEnv` for the spaces, rewards, episode end and arguments.
    """

    family = "dialogue"
    PRESETS = presets(family)
