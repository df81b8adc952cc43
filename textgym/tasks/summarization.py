"""Summarization tasks: news articles (CNN/DailyMail) and chat dialogues (SAMSum, DialogSum)."""

from __future__ import annotations

from textgym.tasks.base import TaskEnv, TaskPreset

_DIALOGUE = "Summarize this dialogue in one sentence.\n\n{source}"
_ARTICLE = "Summarize this news article in a few sentences.\n\n{source}"


class SummarizationEnv(TaskEnv):
    """Summarize a document, token by token.

    Data sets: ``builtin_summarization`` (original paragraphs and chats shipped with textgym),
    ``cnn_dailymail``, ``samsum``, ``dialogsum``. Over-long documents keep their beginning.

    See :class:`textgym.core.TextEnv` for the spaces, rewards, episode end and arguments.
    """

    family = "summarization"
    PRESETS = {
        "builtin_summarization": TaskPreset(_ARTICLE, "rougeL", ("rouge1", "rouge2", "rougeL"), 320, 48),
        "cnn_dailymail": TaskPreset(_ARTICLE, "rougeLsum", ("rouge1", "rouge2", "rougeLsum"), 512, 96),
        "samsum": TaskPreset(_DIALOGUE, "rougeL", ("rouge1", "rouge2", "rougeL"), 384, 48),
        "dialogsum": TaskPreset(_DIALOGUE, "rougeL", ("rouge1", "rouge2", "rougeL"), 384, 64),
    }
