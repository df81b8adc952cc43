"""Dialogue tasks: write the next turn of a conversation (DailyDialog)."""

from __future__ import annotations

from textgym.tasks.base import TaskEnv, TaskPreset

_NEXT_TURN = "Here is a conversation. Write the next reply, one or two sentences.\n\n{source}"


class DialogueEnv(TaskEnv):
    """Write the next turn given the previous ones, token by token.

    Data sets: ``builtin_dialogue`` (original conversations shipped with textgym) and
    ``dailydialog``. Episodes are drawn over every turn position of every dialogue, not only the
    last; over-long contexts keep their latest turns.

    See :class:`textgym.core.TextEnv` for the spaces, rewards, episode end and arguments.
    """

    family = "dialogue"
    PRESETS = {
        "builtin_dialogue": TaskPreset(_NEXT_TURN, "rougeL", ("bleu", "rougeL"), 192, 32, "left"),
        "dailydialog": TaskPreset(_NEXT_TURN, "rougeL", ("bleu", "rougeL"), 192, 32, "left"),
    }
