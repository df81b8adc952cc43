"""Generation tasks: write a sentence from concepts (CommonGen), continue a review (IMDB)."""

from __future__ import annotations

from textgym.tasks.base import TaskEnv, TaskPreset

_CONCEPTS = "Write one short, natural sentence that uses all of these words: {source}"


class GenerationEnv(TaskEnv):
    """Constrained and open generation, token by token.

    Data sets: ``builtin_generation`` (original concept-to-sentence items shipped with textgym),
    ``commongen`` (CommonGen, multi-reference), ``imdb`` (continue the first words of a movie
    review; the default reward is the positive-sentiment probability of the continuation from the
    reward model ``rm:imdb-sentiment``, made once by ``textgym rlhf train-sentiment``).

    See :class:`textgym.core.TextEnv` for the spaces, rewards, episode end and arguments.
    """

    family = "generation"
    PRESETS = {
        "builtin_generation": TaskPreset(_CONCEPTS, "bleu", ("bleu", "rougeL"), 64, 24),
        "commongen": TaskPreset(_CONCEPTS, "bleu", ("bleu", "rouge2", "rougeL"), 64, 24),
        "imdb": TaskPreset(
            "Continue this movie review: {source}", "rm:imdb-sentiment", ("bleu", "rougeL"), 64, 40
        ),
    }
