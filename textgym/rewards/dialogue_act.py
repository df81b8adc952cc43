"""The packaged dialogue-act reward of DailyDialog: ``P(reply has the reference turn's act)``.

A softmax regression over hashed binary features of the reply alone (:func:`act_features`: word
unigrams and bigrams of the lowercased text with start and end markers, CRC-32 hashed into
``2**bits`` buckets) predicts one of DailyDialog's four acts, :data:`ACTS`. The weights ship inside
the package (``textgym/rewards/weights/dialogue_act.npz``, float16, under 1 MB) and scoring needs
only NumPy. ``python benchmarks/dialogue_act_reward.py`` rebuilds them from the data folder with a
fixed seed and prints the held-out accuracy (the data, the dev slice and the seed are described
there).

Registered as two reward names:

* ``"dialogue_act"``: the model's probability of the reference act (range [0, 1]);
* ``"dialogue_act_acc"``: 1.0 when the model's most likely act is the reference act, else 0.0 (the
  dialogue-act accuracy of the replies, a metric; mix it in with weight 0 to report it).

An empty reply scores 0 under both. The reference act is not in the reference text: it comes from
the sample's ``act`` field, which the env hands over with the references (see
:class:`textgym.rewards.base.References`); DailyDialog's samples carry it. A reward asked for an item
without an act raises ValueError.

Example:
    >>> from textgym.rewards.base import References
    >>> reward = DialogueActReward()
    >>> refs = [References(["Sure."], {"act": "question"}), References(["Sure."], {"act": 2})]
    >>> asks, also_asks = reward(["", ""], ["Where do you live?", "Where do you live?"], refs)
    >>> asks == also_asks > 0.5
    True
    >>> reward([""], ["Hello."], [["Hi."]])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: reward 'dialogue_act' needs the reference act of every item, from the sample field 'act'; ...
"""

from __future__ import annotations

import functools
import os
import re
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

from textgym.rewards.packaged import read_weights, write_weights

__all__ = ["ACTS", "DIALOGUE_ACT_WEIGHTS", "DialogueActReward", "act_features", "act_index",
           "load_act_weights", "save_act_weights"]

DIALOGUE_ACT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "dialogue_act.npz"
#: DailyDialog's acts, in the order of its integer codes 1..4 (the model's output order).
ACTS = ("inform", "question", "directive", "commissive")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?.,]")


def act_features(text: str, bits: int = 16) -> list[int]:
    """Sorted distinct bucket ids of a reply's word unigrams and bigrams (CRC-32 mod ``2**bits``).

    Words are runs of lowercase letters and digits (with an apostrophe suffix such as ``'s``) and
    the marks ``! ? . ,``; ``<s>`` and ``</s>`` mark the start and end, so that the first word
    (``"could"``, ``"let's"``) and the last mark (``?``) are features of their own.

    Example:
        >>> len(act_features("Sit down!"))  # sit, down, !, <s> sit, sit down, down !, ! </s>
        7
        >>> act_features("Sit down!") == act_features("  sit DOWN !")
        True
    """
    tokens = _WORD.findall(text.lower())
    padded = ["<s>", *tokens, "</s>"]
    grams = tokens + [f"{a} {b}" for a, b in zip(padded, padded[1:])] if tokens else []
    mask = (1 << bits) - 1
    return sorted({zlib.crc32(g.encode("utf-8")) & mask for g in grams})


def act_index(act: object) -> int:
    """The position in :data:`ACTS` of an act given as a name or as DailyDialog's code 1..4.

    Raises:
        ValueError: Any other value (0 is the "no act" code of some releases and is refused too).

    Example:
        >>> act_index("Question"), act_index(3)
        (1, 2)
        >>> act_index(7)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown dialogue act 7; allowed: a name in ('inform', 'question', ...) or DailyDialog's code 1..4
    """
    if isinstance(act, str) and act.strip().lower() in ACTS:
        return ACTS.index(act.strip().lower())
    if not isinstance(act, bool) and hasattr(act, "__index__") and 1 <= int(act) <= len(ACTS):  # type: ignore[arg-type]
        return int(act) - 1  # type: ignore[arg-type]
    raise ValueError(f"unknown dialogue act {act!r}; allowed: a name in {ACTS} or DailyDialog's code 1..{len(ACTS)}")


def save_act_weights(path: str | os.PathLike, weights: Any, bias: Any, meta: dict[str, Any]) -> Path:
    """Write ``weights`` ``(len(ACTS), 2**bits)`` as float16 with the bias ``(len(ACTS),)`` and metadata, atomically."""
    import numpy as np

    weights, bias = np.asarray(weights, dtype=np.float16), np.asarray(bias, dtype=np.float32)
    bits = int(weights.shape[-1]).bit_length() - 1
    if weights.shape != (len(ACTS), 1 << bits) or bias.shape != (len(ACTS),):
        raise ValueError(f"weights must have shape ({len(ACTS)}, 2**bits) and bias ({len(ACTS)},), got "
                         f"{weights.shape} and {bias.shape}")
    write_weights(path, weights, bias, {**meta, "acts": ACTS})
    load_act_weights.cache_clear()
    return Path(path)


@functools.lru_cache(maxsize=4)
def load_act_weights(path: str | os.PathLike = DIALOGUE_ACT_WEIGHTS) -> tuple[Any, Any, dict[str, Any]]:
    """``(weights (4, 2**bits) as float32, bias (4,), metadata)`` of a saved model (cached per path).

    Raises:
        FileNotFoundError: No such file (the packaged one is missing from a broken install).
    """
    return read_weights(path, "dialogue-act", "python benchmarks/dialogue_act_reward.py --data-dir DIR")


def reference_act(references: Sequence[str], name: str) -> int:
    """The act index of one item's references (their ``fields["act"]``), or a ValueError saying how to give it."""
    fields: Mapping[str, Any] | None = getattr(references, "fields", None)
    if not fields or fields.get("act") is None:
        raise ValueError(
            f"reward {name!r} needs the reference act of every item, from the sample field 'act'; got references "
            f"{list(references)[:1]!r} without one. Use an env whose samples carry it (textgym/DailyDialog-v0), or "
            "pass textgym.rewards.References(texts, {'act': 'question'}) per item")
    return act_index(fields["act"])


class DialogueActReward:
    """The packaged act model's judgement of each reply against its item's reference act.

    Args:
        weights: A ``.npz`` written by :func:`save_act_weights` (default: the packaged one).
        accuracy: Score 1.0/0.0 for "the most likely act is the reference act" (``"dialogue_act_acc"``)
            instead of the reference act's probability (``"dialogue_act"``).

    Prompts are ignored; references supply only their ``act`` field.
    """

    sample_fields = ("act",)

    def __init__(self, weights: str | os.PathLike = DIALOGUE_ACT_WEIGHTS, *, accuracy: bool = False) -> None:
        self.path = str(weights)
        self.accuracy = bool(accuracy)
        self.name = "dialogue_act_acc" if accuracy else "dialogue_act"
        load_act_weights(self.path)  # fail now, not at the first episode end

    @property
    def signature(self) -> str:
        """Which model scored: its hash size and the CRC-32 of its weights file (records keep it beside sacrebleu's)."""
        _, _, meta = load_act_weights(self.path)
        crc = zlib.crc32(Path(self.path).read_bytes())
        return f"dialogue-act-ngram|bits:{meta['bits']}|crc32:{crc:08x}"

    def probabilities(self, texts: Sequence[str]) -> Any:
        """``(N, 4)`` act probabilities of each text, in the order of :data:`ACTS`."""
        import numpy as np

        weights, bias, meta = load_act_weights(self.path)
        bits = int(meta["bits"])
        logits = np.stack([bias + weights[:, act_features(t, bits)].sum(axis=1) for t in texts]) if texts else \
            np.zeros((0, len(ACTS)), dtype=np.float32)  # (N, 4)
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def __call__(
        self, prompts: Sequence[str], generations: Sequence[str], references: Sequence[Sequence[str]]
    ) -> list[float]:
        """One score per reply (0.0 for an empty one); see the class docstring."""
        if len(prompts) != len(generations) or len(references) != len(generations):
            raise ValueError(f"got {len(prompts)} prompts, {len(generations)} generations and "
                             f"{len(references)} reference lists; they must be equally long")
        for text in generations:
            if not isinstance(text, str):
                raise TypeError(f"generations must be strings, got {type(text).__name__}")
        acts = [reference_act(refs, self.name) for refs in references]
        probs = self.probabilities(generations)  # (N, 4)
        out = []
        for text, act, row in zip(generations, acts, probs):
            if not text.strip():
                out.append(0.0)
            elif self.accuracy:
                out.append(float(int(row.argmax()) == act))
            else:
                out.append(float(row[act]))
        return out

    def __repr__(self) -> str:
        return f"DialogueActReward({self.path!r}, accuracy={self.accuracy})"
