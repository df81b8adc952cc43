"""Generation tasks: write a sentence from concepts (CommonGen), continue a review (IMDB)."""

from __future__ import annotations

from textgym.tasks.base import TaskEnv, TaskPreset

_CONCEPTS = "Write one short, natural sentence that uses all of these words: {source}"


class GenerationEnv(TaskEnv):
    """Constrained and open generation, token by token.

    Data sets: ``builtin_generation`` (original concept-to-sentence items shipped with textgym),
    ``commongen`` (CommonGen, multi-reference), ``imdb`` (continue the first 10 words of a movie
    review; the default reward ``"sentiment"`` is the positive-sentiment probability of the
    continuation under the hashed n-gram model packaged with textgym, see
    :mod:`textgym.rewards.sentiment`; the trained ``"rm:imdb-sentiment"`` remains an option).
    IMDB ships only ``train``: ``split="validation"`` loads the held-out slice ``train[90%:]`` (with
    a logged warning), so train on ``train[:90%]``.

    See :class:`textgym.core.TextEnv` for the spaces, rewards, episode end and arguments.

    ## Version History
    * v0: initial version. IMDB-v0's default reward changed (same id) from ``"rm:imdb-sentiment"``
      (a model the user had to train first) to the packaged ``"sentiment"``, so that
      ``gym.make("textgym/IMDB-v0")`` works on a fresh install; pass
      ``reward="rm:imdb-sentiment"`` for the old one.
    """

    family = "generation"
    PRESETS = {
        "builtin_generation": TaskPreset(_CONCEPTS, "bleu", ("bleu", "rougeL"), 64, 24),
        "commongen": TaskPreset(_CONCEPTS, "bleu", ("bleu", "rouge2", "rougeL"), 64, 24),
        "imdb": TaskPreset(
            "Continue this movie review: {source}", "sentiment", ("sentiment", "bleu", "rougeL"), 64, 40
        ),
    }
