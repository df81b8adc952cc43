"""Reference-overlap rewards: BLEU and chrF (sacrebleu) and ROUGE (rouge-score).

Every reward here is a pure, batched :class:`~textgym.rewards.base.RewardFn`: called with equally
long sequences of prompts, generations and reference lists, it returns one float in ``[0, 1]`` per
item. Shared semantics, whatever the metric:

* an empty or whitespace-only generation scores ``0.0``;
* a generation identical to one of its references (ignoring surrounding whitespace) scores
  ``1.0``, also where the library would give 0 because the text is shorter than the metric's
  n-gram order (ROUGE-2 of a one-word text) or has no scorable token: for RL, copying the
  reference must be the best possible answer;
* values are clipped to ``[0, 1]`` (the libraries' percentages carry floating error);
* bad input raises ``ValueError``/``TypeError`` naming the offending item; inputs are never
  mutated.

Environments call these at every step in dense reward mode, so per-call overhead is kept small:
the libraries are imported and their scorers built once, at first use (``import textgym`` stays
cheap), and per-reference work (n-gram extraction, tokenization, stemming) is memoised, because an
episode scores the same references again and again. Memoisation never changes a result.

Ready instances: :data:`bleu`, :data:`chrf`, :data:`rouge1`, :data:`rouge2`, :data:`rougeL`,
:data:`rougeLsum`. The pinned sacrebleu settings are recorded in :data:`BLEU_SIGNATURE` and
:data:`CHRF_SIGNATURE` (also ``bleu.signature``, ``chrf.signature``).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Sequence

__all__ = ["BLEUReward", "CHRFReward", "RougeReward", "bleu", "chrf", "rouge1", "rouge2", "rougeL",
           "rougeLsum", "split_sentences", "validate_batch"]


def validate_batch(
    prompts: Sequence[str],
    generations: Sequence[str],
    references: Sequence[Sequence[str]],
) -> None:
    """Check the shapes and types of one reward call.

    Args:
        prompts: One prompt per item (only the length is checked; metrics ignore prompts).
        generations: One generated text per item.
        references: One non-empty sequence of reference strings per item.

    Raises:
        TypeError: A whole argument is a string instead of a sequence of items, or a generation
            is not a string.
        ValueError: The three lengths differ, or an item's references are not a non-empty
            sequence of strings.

    Example:
        >>> validate_batch(["p"], ["a cat"], [["a cat", "the cat"]])
        >>> validate_batch(["p"], ["a cat"], ["a cat"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: references[0] must be a non-empty list of strings, got a str; wrap a single...
    """
    for arg_name, arg in (("prompts", prompts), ("generations", generations),
                          ("references", references)):
        if isinstance(arg, (str, bytes)):
            raise TypeError(f"{arg_name} must be a sequence with one entry per item, got a single "
                            f"{type(arg).__name__}; wrap it in a list")
    if not len(prompts) == len(generations) == len(references):
        raise ValueError(
            "prompts, generations and references must have the same length, got "
            f"{len(prompts)}, {len(generations)} and {len(references)}")
    for i, gen in enumerate(generations):
        if not isinstance(gen, str):
            raise TypeError(f"generations[{i}] must be a str, got {type(gen).__name__}")
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            raise ValueError(f"references[{i}] must be a non-empty list of strings, got a str; "
                             'wrap a single reference in a list: ["..."]')
        if not isinstance(refs, Sequence) or len(refs) == 0:
            got = "an empty sequence" if isinstance(refs, Sequence) else type(refs).__name__
            raise ValueError(f"references[{i}] must be a non-empty list of strings, got {got}")
        for j, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise ValueError(f"references[{i}][{j}] must be a str, got {type(ref).__name__}")


class _MetricReward:
    """Shared batching, validation and edge-case rules; subclasses implement ``_score``."""

    name: str
    #: Attributes rebuilt lazily after unpickling (library objects, caches).
    _LAZY: tuple[str, ...] = ()

    def __call__(
        self,
        prompts: Sequence[str],
        generations: Sequence[str],
        references: Sequence[Sequence[str]],
    ) -> list[float]:
        """Score a batch; see the module docstring for the shared semantics."""
        validate_batch(prompts, generations, references)
        scores: list[float] = []
        for gen, refs in zip(generations, references):
            text = gen.strip()
            if not text:
                scores.append(0.0)
            elif any(text == ref.strip() for ref in refs):
                scores.append(1.0)
            else:
                value = self._score(gen, refs)
                scores.append(0.0 if value < 0.0 else 1.0 if value > 1.0 else float(value))
        return scores

    def _score(self, generation: str, references: Sequence[str]) -> float:
        raise NotImplementedError

    @property
    def signature(self) -> str:
        """The metric's settings as one reproducibility string (recorded in env metadata)."""
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        # Library objects and caches are rebuilt on demand: pickles stay small and portable.
        state = dict(self.__dict__)
        for attr in self._LAZY:
            state[attr] = None
        return state

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# --------------------------------------------------------------------------- sacrebleu metrics


_SACREBLEU_HOOKS = ("_extract_reference_info", "_preprocess_segment",
                    "_compute_segment_statistics", "_aggregate_and_compute")


class _SacreBleuReward(_MetricReward):
    """A sacrebleu sentence-level metric with memoised reference statistics."""

    _LAZY = ("_metric", "_ref_info", "_signature")

    def __init__(self, ref_cache_size: int = 256) -> None:
        if not isinstance(ref_cache_size, int) or ref_cache_size < 0:
            raise ValueError(f"ref_cache_size must be an int >= 0, got {ref_cache_size!r}")
        self.ref_cache_size = ref_cache_size
        self._metric: Any = None
        self._ref_info: Callable[[tuple[str, ...]], Any] | None = None
        self._signature: str | None = None

    def _build_metric(self) -> Any:
        raise NotImplementedError

    def _backend(self) -> Any:
        if self._metric is None:
            metric = self._build_metric()
            # The per-reference n-gram extraction is most of sentence_score's cost; reuse it
            # across calls, the way sacrebleu's own corpus-level reference cache does. These
            # Metric hooks exist since sacrebleu 2.0; without them, plain sentence_score.
            if all(hasattr(metric, a) for a in _SACREBLEU_HOOKS):
                self._ref_info = functools.lru_cache(maxsize=self.ref_cache_size)(
                    lambda refs: metric._extract_reference_info(
                        [metric._preprocess_segment(r) for r in refs]))
            self._metric = metric
        return self._metric

    def _score(self, generation: str, references: Sequence[str]) -> float:
        metric = self._backend()
        if self._ref_info is None:
            return metric.sentence_score(generation, list(references)).score / 100.0
        # Exactly the steps of Metric.sentence_score, minus re-extracting reference n-grams.
        ref_info = self._ref_info(tuple(references))
        stats = metric._compute_segment_statistics(metric._preprocess_segment(generation), ref_info)
        return metric._aggregate_and_compute([stats]).score / 100.0

    @property
    def signature(self) -> str:
        """The sacrebleu signature string; ``nrefs`` is ``var`` (references vary per item)."""
        if self._signature is None:
            metric = self._build_metric()
            metric.sentence_score("a", ["a"])  # sacrebleu fills in nrefs at the first score
            sig = metric.get_signature()
            sig.update("nrefs", "var")
            self._signature = sig.format()
        return self._signature


class BLEUReward(_SacreBleuReward):
    """Sentence BLEU from sacrebleu, scaled to ``[0, 1]``.

    Settings are pinned to ``sacrebleu.metrics.BLEU(effective_order=True)`` (13a tokenizer,
    mixed case, exponential smoothing; see :attr:`signature`). Multiple references are scored the
    standard sacrebleu way: n-gram counts clipped against all references at once and the closest
    reference length for the brevity penalty (not the max of single-reference scores).

    Args:
        ref_cache_size: How many reference lists keep their extracted n-grams between calls;
            at least the number of envs scored together, for dense rewards to hit it.

    Example:
        >>> bleu(["p", "p"], ["the cat sat on the mat", ""], [["the cat sat on the mat"], ["a"]])
        [1.0, 0.0]
        >>> round(bleu(["p"], ["the cat sat on a mat"], [["the cat sat on the mat"]])[0], 4)
        0.5373
        >>> bleu.signature.startswith("nrefs:var|case:mixed|eff:yes|tok:13a|smooth:exp|version:")
        True
    """

    name = "bleu"

    def _build_metric(self) -> Any:
        from sacrebleu.metrics import BLEU

        return BLEU(effective_order=True)


class CHRFReward(_SacreBleuReward):
    """Sentence chrF from sacrebleu (character 6-grams, beta 2), scaled to ``[0, 1]``.

    Settings are pinned to sacrebleu's defaults, ``sacrebleu.metrics.CHRF()``. With several
    references, sacrebleu keeps the best-matching one, so the score is the max over references.

    Args:
        ref_cache_size: How many reference lists keep their extracted n-grams between calls;
            at least the number of envs scored together, for dense rewards to hit it.

    Example:
        >>> chrf(["p", "p"], ["the cat sat", "  "], [["the cat sat"], ["the cat sat"]])
        [1.0, 0.0]
        >>> round(chrf(["p"], ["the cat sat"], [["the cat sat on the mat"]])[0], 4)
        0.4959
        >>> chrf.signature.startswith("nrefs:var|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")
        True
    """

    name = "chrf"

    def _build_metric(self) -> Any:
        from sacrebleu.metrics import CHRF

        return CHRF()


# --------------------------------------------------------------------------- ROUGE

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ROUGE_TYPE = re.compile(r"rouge[1-9]|rougeL|rougeLsum")


def split_sentences(text: str) -> str:
    """Put one sentence per line, the input format of ROUGE-Lsum.

    A boundary is ``.``, ``!`` or ``?`` followed by whitespace; existing newlines are kept. It is a
    plain rule (``"Mr. Smith"`` splits too), applied identically to every text.

    Example:
        >>> split_sentences("It rained. Did it? Yes!  It did.\\nThen it stopped.")
        'It rained.\\nDid it?\\nYes!\\nIt did.\\nThen it stopped.'
    """
    return _SENTENCE_END.sub("\n", text)


class _MemoStemmer:
    """Porter stemmer (as rouge-score builds it) with a word-level memo: stemming dominates."""

    def __init__(self) -> None:
        from nltk.stem import porter

        self.stem = functools.lru_cache(maxsize=1 << 17)(porter.PorterStemmer().stem)


class _MemoTokenizer:
    """rouge-score's default tokenization with stemming, memoised per text.

    Passed to ``RougeScorer(tokenizer=...)``, so scoring stays rouge-score's own code; the memo
    saves re-tokenizing the references (and the generation once per reference) at every call.
    """

    def __init__(self) -> None:
        from rouge_score import tokenize

        stemmer = _MemoStemmer()
        self._tokens = functools.lru_cache(maxsize=1 << 15)(
            lambda text: tuple(tokenize.tokenize(text, stemmer)))
        self.lcs_masks = functools.lru_cache(maxsize=1 << 12)(self._lcs_masks)

    def tokenize(self, text: str) -> list[str]:
        return list(self._tokens(text))  # a fresh list: callers may not share the memo's

    def _lcs_masks(self, text: str) -> tuple[int, dict[str, int]]:
        """Token count and, per distinct token, the bit set of its positions (for ROUGE-L)."""
        masks: dict[str, int] = {}
        tokens = self._tokens(text)
        for i, tok in enumerate(tokens):
            masks[tok] = masks.get(tok, 0) | (1 << i)
        return len(tokens), masks


def _lcs_length(ref_len: int, ref_masks: dict[str, int], tokens: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyro 2004).

    Row ``j`` of the classic DP table is encoded in the zero bits of ``v``: a few integer
    operations per token instead of a Python loop over the table (rouge-score's ``_lcs_table``),
    25-100x faster on summary-length texts. The length is unique, so scores are identical.
    """
    full = (1 << ref_len) - 1
    v = full
    for tok in tokens:
        u = v & ref_masks.get(tok, 0)
        if u:
            v = (v + u) | (v - u)
    return ref_len - (v & full).bit_count()


@functools.lru_cache(maxsize=None)
def _rouge_tokenizer() -> _MemoTokenizer:
    return _MemoTokenizer()  # one memo for the process, shared by every ROUGE type


@functools.lru_cache(maxsize=None)
def _rouge_scorer(rouge_type: str) -> Any:
    """One RougeScorer per ROUGE type for the whole process, sharing one tokenizer memo."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([rouge_type], tokenizer=_rouge_tokenizer())


class RougeReward(_MetricReward):
    """ROUGE F1 from rouge-score with Porter stemming, max over references.

    ``rougeLsum`` is summary-level LCS over sentences separated by ``"\\n"``. Generations are
    split with :func:`split_sentences` (``.``/``!``/``?`` followed by whitespace become newlines);
    a reference that already contains a newline (CNN/DailyMail highlights) is taken as it is,
    one without is split the same way as generations. ``rougeL`` computes the LCS length
    bit-parallel instead of with rouge-score's Python DP table (same score, ~100x faster).

    Args:
        rouge_type: ``"rouge1"`` ... ``"rouge9"``, ``"rougeL"`` or ``"rougeLsum"``.

    Example:
        >>> rouge1(["p", "p"], ["The cats sat", ""], [["the cat sat on the mat"], ["a"]])
        [0.6666666666666666, 0.0]
        >>> rouge2(["p"], ["the cat sat"], [["the cat sat on the mat"]])  # P=2/2, R=2/5
        [0.5714285714285715]
        >>> rougeL(["p"], ["the mat sat"], [["a cat sat on the mat", "the mat is red"]])
        [0.5714285714285715]
        >>> rougeLsum(["p"], ["The cat sat. It was red."], [["the cat sat\\nit was red"]])
        [1.0]
    """

    _LAZY = ("_scorer",)

    def __init__(self, rouge_type: str) -> None:
        if not isinstance(rouge_type, str) or not _ROUGE_TYPE.fullmatch(rouge_type):
            raise ValueError(f"rouge_type must be 'rouge1'..'rouge9', 'rougeL' or 'rougeLsum', "
                             f"got {rouge_type!r}")
        self.name = rouge_type
        self._scorer: Any = None

    def _score(self, generation: str, references: Sequence[str]) -> float:
        kind = self.name
        if kind == "rougeL":
            return self._rouge_l(generation, references)
        if self._scorer is None:
            self._scorer = _rouge_scorer(kind)
        if kind == "rougeLsum":
            generation = split_sentences(generation)
            references = [r if "\n" in r else split_sentences(r) for r in references]
        # rouge-score's own score(target, prediction) per reference; keep the best F1.
        return max(self._scorer.score(ref, generation)[kind].fmeasure for ref in references)

    @staticmethod
    def _rouge_l(generation: str, references: Sequence[str]) -> float:
        # rouge-score's _score_lcs (F1 from LCS length over token counts) with a fast LCS length;
        # tokenization and the F-measure formula are still rouge-score's own.
        from rouge_score.scoring import fmeasure

        tokenizer = _rouge_tokenizer()
        tokens = tokenizer.tokenize(generation)
        best = 0.0
        for ref in references:
            ref_len, masks = tokenizer.lcs_masks(ref)
            if ref_len and tokens:
                lcs = _lcs_length(ref_len, masks, tokens)
                best = max(best, fmeasure(lcs / len(tokens), lcs / ref_len))
        return best

    @property
    def signature(self) -> str:
        """rouge-score version and settings: ``rouge_score:0.1.2|type:rougeL|stem:porter|...``."""
        from importlib.metadata import version

        split = "|split:newline,.!?" if self.name == "rougeLsum" else ""
        return (f"rouge_score:{version('rouge-score')}|type:{self.name}|stem:porter|score:f1"
                f"|refs:max{split}")


bleu = BLEUReward()
chrf = CHRFReward()
rouge1 = RougeReward("rouge1")
rouge2 = RougeReward("rouge2")
rougeL = RougeReward("rougeL")
rougeLsum = RougeReward("rougeLsum")


def __getattr__(attr: str) -> str:
    # Module-level signature constants, computed at first access so importing stays cheap.
    if attr == "BLEU_SIGNATURE":
        return bleu.signature
    if attr == "CHRF_SIGNATURE":
        return chrf.signature
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
