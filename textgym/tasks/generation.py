"""Generation tasks: write a sentence from concepts (CommonGen), continue a review (IMDB)."""

from __future__ import annotations

from textgym.catalogue import presets
from textgym.tasks.base import TaskEnv


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
    * v0: initial version. IMDB-v0's default reward is the packaged ``"sentiment"``. In the first
      eight hours of development (commits 2ba86fa to 300fca9) it was ``"rm:imdb-sentiment"``, a
      model the user had to train first, so ``gym.make("textgym/IMDB-v0")`` failed on a fresh
      install. House rule 1 bumps the version when a default changes, but the id kept ``v0``:
      no release (no tag, no package) ever carried the old default, and every leaderboard record
      was made with the ``"sentiment"`` reward, so no published result was scored under another
      one. From the first release on, such a change bumps the version. Pass
      ``reward="rm:imdb-sentiment"`` for the trained model.
    """

    family = "generation"
    PRESETS = presets(family)
