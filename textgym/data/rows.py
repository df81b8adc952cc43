"""Row -> Sample helpers and the detokenizer, shared by the local loaders and the hub loader.

Kept apart from :mod:`textgym.data.loaders` so that :mod:`textgym.data.hub` can use them without
an import cycle (loaders falls back to the hub).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from textgym.data.base import Sample

#: IMDB is a continuation task: the prompt is the first IMDB_PROMPT_WORDS words of a review...
IMDB_PROMPT_WORDS = 10
#: ...and the reference is the next (up to) IMDB_CONTINUATION_WORDS words.
IMDB_CONTINUATION_WORDS = 40
#: Reviews shorter than this leave too little to continue; they are skipped.
IMDB_MIN_WORDS = 15

_BR_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
_POS_SUFFIX = re.compile(r"_[A-Z]{1,3}$")  # CommonGen dev tags: "field_N", "look_V"


class DataError(ValueError):
    """A data file exists but its content does not have the expected format."""


# --------------------------------------------------------------------------- detokenizer

# Plain str.replace and literal-first patterns: re scans the 4 MB train file much faster so.
_CONTRACTION = re.compile(r" ' (s|t|m|d|ll|ve|re|clock)\b", re.IGNORECASE)
_NUMBER_SEP = re.compile(r"[.:] (?=\d)|, (?=\d{3}\b)")  # after a digit: "16. 50", "15, 000"
_NO_SPACE_BEFORE = ".,?!;:%)"
_NO_SPACE_AFTER = "($£¥€"


def _join_number(match: re.Match[str]) -> str:
    before = match.string[match.start() - 1 : match.start()]
    return match[0][0] if before.isdigit() else match[0]


def detokenize(text: str) -> str:
    """Undo DailyDialog's spaced tokenization so that turns read like normal text.

    Rules, kept few on purpose: curly apostrophes become ``'``; contractions are joined
    (``he ' s`` -> ``he's``, ``I ' Ve`` -> ``I've``); spaces before ``. , ? ! ; : % )``
    and after ``( $ £ ¥ €`` go; split numbers are rejoined (``8: 30``, ``16 . 50``,
    ``15 , 000``). Quotes and dashes are left alone (their direction is ambiguous).

    Args:
        text: One tokenized turn (or a whole ``__eou__``-separated dialogue).

    Returns:
        The text with the rules above applied and whitespace collapsed to single spaces.

    Examples:
        >>> detokenize("The kitchen stinks . ")
        'The kitchen stinks.'
        >>> detokenize("Now he ’ s here . I ’ Ve tried , really !")
        "Now he's here. I've tried, really!"
        >>> detokenize("It costs $ 16 . 50 at 8: 30 ( tax included ) ...")
        'It costs $16.50 at 8:30 (tax included)...'
        >>> detokenize("On January 12 , 1987 , 15 , 000 people came .")
        'On January 12, 1987, 15,000 people came.'
    """
    text = " ".join(text.replace("’", "'").replace("‘", "'").split())
    text = _CONTRACTION.sub(lambda m: "'" + m[1].lower(), text)
    for mark in _NO_SPACE_BEFORE:
        text = text.replace(" " + mark, mark)
    for mark in _NO_SPACE_AFTER:
        text = text.replace(mark + " ", mark)
    return _NUMBER_SEP.sub(_join_number, text)


# --------------------------------------------------------------------------- row -> Sample helpers
# Shared by the local parsers and by hub.py so that both paths give the same Sample shape.


def commongen_source(concepts: Sequence[str]) -> str:
    """The CommonGen task input: the concepts joined by ``", "``."""
    return ", ".join(concepts)


def imdb_sample(sample_id: str, label: int, review: str) -> Sample | None:
    """Turn one IMDB review into a continuation item, or None when it is too short.

    Examples:
        >>> s = imdb_sample("1_9", 1, "one two<br /><br />three " + "w " * 60)
        >>> s.source, len(s.references[0].split()), s.meta
        ('one two three w w w w w w w', 40, {'label': 1})
    """
    words = _BR_TAG.sub(" ", review).split()
    if len(words) < IMDB_MIN_WORDS:
        return None
    prompt, rest = words[:IMDB_PROMPT_WORDS], words[IMDB_PROMPT_WORDS:]
    continuation = " ".join(rest[:IMDB_CONTINUATION_WORDS])
    return Sample(sample_id, " ".join(prompt), (continuation,), {"label": int(label)})


def dialogue_samples(
    prefix: str, turns: Sequence[str], meta: dict[str, Any], labels: dict[str, Sequence[int]]
) -> Iterator[Sample]:
    """Expand one dialogue into one item per turn position ``i >= 1``.

    Args:
        prefix: Id prefix, e.g. ``"dailydialog-train-7"``; the turn index is appended.
        turns: Already cleaned, non-empty turns.
        meta: Per-dialogue metadata copied into every item (dialogue index, topic).
        labels: Per-turn labels (``"emotion"``, ``"act"``); only those with exactly one
            value per turn are kept, since a misaligned label would be silently wrong.

    Yields:
        Samples whose source is ``turns[:i]`` joined by newlines and whose reference is
        ``turns[i]``, with the labels of turn ``i`` in the meta.
    """
    aligned = {key: values for key, values in labels.items() if len(values) == len(turns)}
    for i in range(1, len(turns)):
        turn_meta = {**meta, "turn": i, **{key: values[i] for key, values in aligned.items()}}
        yield Sample(f"{prefix}-{i}", "\n".join(turns[:i]), (turns[i],), turn_meta)


def split_turns(text: str) -> list[str]:
    """Split a DailyDialog line on ``__eou__``, detokenize, and drop empty turns.

    The trailing ``__eou__`` of the dev/test files leaves an empty last piece.
    """
    # One detokenize call per dialogue, not per turn: the rules never cross "__eou__".
    turns = (part.strip() for part in detokenize(text).split("__eou__"))
    return [turn for turn in turns if turn]
