"""Text-quality measures that guard against degenerate output: repetition and diversity.

The **repetition rate** of one text is the share of its word n-grams (n = 3 by default) that repeat
an n-gram seen earlier in the same text: ``1 - unique / total``. Words are the whitespace tokens of
the text, lowercased, with punctuation at either end stripped (``"team,"`` and ``"Team"`` are the
same word; tokens that are only punctuation are dropped). A text with fewer than ``n`` words has no
n-grams and a rate of 0. The rate is 0 for text without repeats and approaches 1 for a phrase
repeated over and over. It is a per-text measure: an evaluation reports its mean over the outputs.

:class:`RepetitionPenalty` is that rate as a reward component (registered as ``"repetition"``, range
[0, 1]); mix it in with a negative weight to make repetition cost reward, e.g.
``reward={"bleu": 1.0, "repetition": -0.5}`` (any reward spec works on the left).

Example:
    >>> repetition_rate("the cat sat on the mat")
    0.0
    >>> repetition_rate("A team, a teamer, a team, a teamer, a team")  # 8 trigrams, 4 seen before
    0.5
"""

from __future__ import annotations

import string
from typing import Sequence

__all__ = ["RepetitionPenalty", "repetition", "repetition_rate", "words"]

_STRIP = string.punctuation + "“”‘’«»…"


def words(text: str) -> list[str]:
    """Lowercased whitespace tokens with surrounding punctuation stripped; punctuation-only tokens dropped.

    Example:
        >>> words("Hello, World! -- it's (fine).")
        ['hello', 'world', "it's", 'fine']
    """
    return [w for w in (token.strip(_STRIP).lower() for token in text.split()) if w]


def repetition_rate(text: str, n: int = 3) -> float:
    """The share of word n-grams in ``text`` that repeat an earlier one (see the module docstring).

    Args:
        text: One output.
        n: N-gram length (>= 1).

    Returns:
        ``1 - unique n-grams / n-grams`` in [0, 1); 0.0 when the text has fewer than ``n`` words.

    Raises:
        ValueError: ``n`` is not a positive integer.

    Example:
        >>> repetition_rate("good good good good", n=1)
        0.75
        >>> repetition_rate("too short", n=3)
        0.0
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


class RepetitionPenalty:
    """The repetition rate of each generation as a reward component (higher = more repetitive).

    Prompts and references are ignored, so it mixes into any task's reward. Use a negative weight:

    Args:
        n: N-gram length of :func:`repetition_rate`.

    Example:
        >>> from textgym.rewards import make_reward
        >>> mix = make_reward({"rougeL": 1.0, "repetition": -0.5})
        >>> mix.name
        '1.0*rougeL-0.5*repetition'
        >>> text = "the movie is good the movie is good the movie is good"
        >>> [round(s, 3) for s in mix(["p"], [text], [[text]])]  # rougeL 1.0, repetition 0.6
        [0.7]
    """

    def __init__(self, n: int = 3) -> None:
        repetition_rate("", n)  # validates n
        self.n = n
        self.name = "repetition" if n == 3 else f"repetition{n}"

    def __call__(
        self, prompts: Sequence[str], generations: Sequence[str], references: Sequence[Sequence[str]]
    ) -> list[float]:
        """One repetition rate per generation."""
        return [repetition_rate(text, self.n) for text in generations]

    def __repr__(self) -> str:
        return f"RepetitionPenalty(n={self.n})"


#: The registered ``"repetition"`` reward (trigram repetition rate).
repetition = RepetitionPenalty()
