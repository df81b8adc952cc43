"""Summarization tasks: news articles (CNN/DailyMail) and chat dialogues (SAMSum, DialogSum)."""

from __future__ import annotations

from textgym.catalogue import presets
from textgym.tasks.base import TaskEnv


class SummarizationEnv(TaskEnv):
    """Summarize a document, token by token.

    Data sets: ``builtin_summarization`` (original paragraphs and chats shipped with textgym),
    ``cnn_dailymail``, ``samsum``, ``dialogsum``. Over-long documents keep their beginning.

    See :class:`textgym.core.TextEnv` for the spaces, rewards, episode end and arguments.
    """

    family = "summarization"
    PRESETS = presets(family)
