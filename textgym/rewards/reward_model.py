"""The trained reward model: a transformer encoder with a scalar head, saved as a folder.

Trained by :mod:`textgym.rlhf.train` (on preferences or on labelled texts) and used as the reward
spec ``"rm:<folder or name>"``; see :mod:`textgym.rewards.learned` for the shared semantics
(device, empty generations, batching, pickling).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from textgym.io import atomic_dir, read_json
from textgym.fieldtypes import check_field_types
from textgym.models import load_model
from textgym.rewards.scoring import (
    DEFAULT_ENCODER,
    RM_CONFIG_FILE,
    RM_HEAD_FILE,
    BatchedScorer,
    pool_hidden,
    resolve_device,
    resolve_encoder_path,
    resolve_reward_model_path,
)

__all__ = ["RewardModel", "RewardModelConfig", "load_reward_model"]


@dataclass
class RewardModelConfig:
    """What a saved reward model is: stored as ``reward_model.json`` in its folder.

    Attributes:
        encoder: Where the encoder came from (informational; the weights are in the folder).
        input: ``"generation"`` or ``"pair"`` (prompt and generation as a text pair).
        output: ``"probability"`` (sigmoid of the head: trained on labels) or ``"score"`` (the
            raw Bradley-Terry score: trained on preferences).
        pooling: ``"mean"``, ``"cls"`` or ``"max"``.
        max_length: Token limit per input.
        head_hidden: Width of the head's hidden layer (0: a linear head).
        metrics: Training report (held-out accuracy and so on).
    """

    encoder: str = DEFAULT_ENCODER
    input: str = "pair"
    output: str = "score"
    pooling: str = "mean"
    max_length: int = 128
    head_hidden: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.input not in ("generation", "pair"):
            raise ValueError(f"input must be 'generation' or 'pair', got {self.input!r}")
        if self.output not in ("probability", "score"):
            raise ValueError(f"output must be 'probability' or 'score', got {self.output!r}")
        if self.pooling not in ("mean", "cls", "max"):
            raise ValueError(f"pooling must be 'mean', 'cls' or 'max', got {self.pooling!r}")


def _make_head(hidden: int, width: int):
    import torch.nn as nn

    if width <= 0:
        return nn.Linear(hidden, 1)
    return nn.Sequential(nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, 1))


class RewardModel(BatchedScorer):
    """A transformer encoder with a scalar head, trained on labels or preferences.

    Train it with :func:`textgym.rlhf.train.fit_labels` (classification, ``output="probability"``)
    or :func:`textgym.rlhf.train.fit_preferences` (Bradley-Terry, ``output="score"``); save with
    :meth:`save`, load with :meth:`load` or as the reward spec ``"rm:<folder>"``.

    Args:
        config: What to build (see :class:`RewardModelConfig`).
        encoder: A loaded encoder (``AutoModel``) and ``tokenizer``; default: loaded from
            ``config.encoder`` (a fresh copy, trainable).
        head: A loaded head module (default: a new one).
        device: See the module docstring.
        batch_size, empty_score: See the module docstring.

    Range: ``[0, 1]`` for ``output="probability"``, any real for ``output="score"``.
    """

    def __init__(self, config: RewardModelConfig | None = None, encoder: Any = None,
                 tokenizer: Any = None, head: Any = None, *, device: Any = "auto",
                 batch_size: int = 32, empty_score: float = 0.0) -> None:
        self.config = config or RewardModelConfig()
        self.device = resolve_device(device)
        if encoder is None:
            from transformers import AutoModel, AutoTokenizer

            path = resolve_encoder_path(self.config.encoder)
            encoder = load_model(AutoModel, path, what="reward model encoder")
            tokenizer = AutoTokenizer.from_pretrained(path)
        elif tokenizer is None:
            raise TypeError("an encoder object needs its tokenizer: pass tokenizer=...")
        self.encoder, self.tokenizer = encoder.to(self.device).eval(), tokenizer
        if head is None:
            head = _make_head(encoder.config.hidden_size, self.config.head_hidden)
        self.head = head.to(self.device).eval()
        self.max_length, self.batch_size = int(self.config.max_length), int(batch_size)
        self.empty_score = float(empty_score)
        self.name = f"rm:{Path(str(self.config.encoder)).name}"
        self._spec = None

    def embed(self, prompts: Sequence[str], generations: Sequence[str]):
        """Pooled encoder states (B, H) for the items (with gradients if the encoder trains)."""
        pairs = prompts if self.config.input == "pair" else None
        enc = self._tokenize(generations, pairs)
        hidden = self.encoder(**enc).last_hidden_state.float()  # (B, T, H)
        return pool_hidden(hidden, enc["attention_mask"], self.config.pooling)

    def logits(self, prompts: Sequence[str], generations: Sequence[str]):
        """Head outputs (B,) before the sigmoid, with gradients (the training path)."""
        return self.head(self.embed(prompts, generations)).squeeze(-1)

    def _score(self, prompts, generations, references) -> list[float]:
        import torch

        with torch.inference_mode():
            out = self.logits(prompts, generations)  # (B,)
            if self.config.output == "probability":
                out = torch.sigmoid(out)
            return out.tolist()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as a folder, atomically (a reader never sees half a model)."""
        from safetensors.torch import save_file

        dest = Path(path).expanduser()

        def write(tmp: Path) -> None:
            self.encoder.save_pretrained(tmp / "encoder")
            self.tokenizer.save_pretrained(tmp / "encoder")
            state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(state, tmp / RM_HEAD_FILE)
            (tmp / RM_CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")

        atomic_dir(dest, write)
        return dest

    @classmethod
    def load(cls, spec: str | os.PathLike, *, device: Any = "auto", batch_size: int = 32,
             empty_score: float = 0.0) -> "RewardModel":
        """Load a saved model: a folder, or a name under ``<cache>/reward_models``."""
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        path = resolve_reward_model_path(spec)
        data = read_json(path / RM_CONFIG_FILE, "reward model config")
        if not isinstance(data, dict):
            raise ValueError(f"{path / RM_CONFIG_FILE} must hold a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(RewardModelConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{path / RM_CONFIG_FILE} has unknown keys {unknown}")
        config = RewardModelConfig(**data)
        encoder = load_model(AutoModel, path / "encoder", what="reward model encoder")
        tokenizer = AutoTokenizer.from_pretrained(path / "encoder")
        head = _make_head(encoder.config.hidden_size, config.head_hidden)
        try:
            head.load_state_dict(load_file(path / RM_HEAD_FILE))
        except Exception as exc:  # noqa: BLE001: safetensors raises SafetensorError, OSError, RuntimeError...
            raise ValueError(f"{path / RM_HEAD_FILE} cannot be read ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}); the file may be truncated: retrain or re-copy "
                             "the reward model") from None
        encoder.requires_grad_(False)
        head.requires_grad_(False)
        model = cls(config, encoder, tokenizer, head, device=device, batch_size=batch_size,
                    empty_score=empty_score)
        model.name = f"rm:{spec}"
        model._spec = dict(spec=str(spec), device=str(device), batch_size=batch_size,
                           empty_score=empty_score)
        return model

    @classmethod
    def _from_spec_state(cls, spec: dict) -> "RewardModel":
        return load_reward_model(**spec)


@functools.lru_cache(maxsize=8)
def _cached_rm(spec: str, path: str, stamp: int, device: str, batch_size: int,
               empty_score: float) -> RewardModel:
    return RewardModel.load(spec, device=device, batch_size=batch_size, empty_score=empty_score)


def load_reward_model(spec: str | os.PathLike, device: Any = "auto", batch_size: int = 32,
                      empty_score: float = 0.0) -> RewardModel:
    """A saved reward model, loaded once per process and shared (the ``rm:`` prefix).

    A model saved again at the same place is reloaded. Don't train the returned object; load
    your own copy with :meth:`RewardModel.load` for that.
    """
    path = resolve_reward_model_path(spec)
    stamp = (path / RM_CONFIG_FILE).stat().st_mtime_ns
    return _cached_rm(str(spec), str(path.resolve()), stamp, str(device), int(batch_size),
                      float(empty_score))
