"""TextEnv: the token-level MDP that every textgym task shares."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from textgym.data.base import Sample
from textgym.models import load_tokenizer
from textgym.prompts import PromptEncoder, resolve_prompt_format, special_token_ids
from textgym.rewards import make_reward, score_and_components

REWARD_MODES = ("terminal", "dense")
MAX_TOKENS_LIMIT = 8192  # a sanity bound on lengths; a typo like 1e9 would otherwise allocate forever


def _check_length(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise ValueError(f"{name} must be an integer in [1, {MAX_TOKENS_LIMIT}], got {value!r}")
    return int(value)


def check_sample_index(index: Any, num_samples: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < num_samples:
        raise ValueError(f"options['sample_index'] must be an int in [0, {num_samples - 1}], got {index!r}")
    return int(index)


def check_reset_options(options: Mapping[str, Any] | None) -> None:
    unknown = set(options or {}) - {"sample_index"}
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: ['sample_index']")


def as_token_id(action: Any, vocab_size: int) -> int:
    """Validate one action and return it as a Python int.

    Accepts Python and NumPy integers and integer arrays holding one element (SB3 passes
    ``np.int64`` or shape-``(1,)`` arrays).
    """
    arr = np.asarray(action)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"action must be an integer token id in [0, {vocab_size - 1}], got {action!r} ({arr.dtype})")
    if arr.size != 1:
        raise ValueError(f"action must be a single token id, got shape {arr.shape}")
    token = int(arr.reshape(()))
    if not 0 <= token < vocab_size:
        raise ValueError(f"action {token} is out of range: token ids are 0..{vocab_size - 1}")
    return token


class SampleOrder:
    """Epoch-shuffled sample indices: a fresh permutation from ``rng`` whenever one is used up."""

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples
        self.restart()

    def restart(self) -> None:
        self._order: np.ndarray | None = None
        self._cursor = 0

    def next(self, rng: np.random.Generator) -> int:
        if self._order is None or self._cursor >= len(self._order):
            self._order = rng.permutation(self.num_samples)
            self._cursor = 0
        self._cursor += 1
        return int(self._order[self._cursor - 1])


def score_episodes(
    reward_fn: Any, metric_fns: Mapping[str, Any], prompts: list[str], texts: list[str], references: list[list[str]]
) -> tuple[list[float], list[dict[str, float]]]:
    """Score finished texts in one batched call per reward: ``(scores, metrics per item)``.

    Metrics hold every component of the reward plus every extra metric not already among them.
    """
    total, parts = score_and_components(reward_fn, prompts, texts, references)
    extra = {name: fn(prompts, texts, references) for name, fn in metric_fns.items() if name not in parts}
    columns = {**parts, **extra}
    metrics = [{name: float(values[i]) for name, values in columns.items()} for i in range(len(texts))]
    for value in total:
        if not math.isfinite(value):
            raise FloatingPointError(f"reward {reward_fn.name} returned {value}")
    return [float(v) for v in total], metrics


class TextEnv(gym.Env):
    """A language model writes a reply to a prompt one token at a time.

    ## Action Space
    ``Discrete(V)`` with ``V = len(tokenizer)``: the id of the next token.

    ## Observation Space
    ``Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int64))`` with
    ``L = max_prompt_length + max_new_tokens``: the prompt left-padded to ``max_prompt_length``,
    then the tokens generated so far, right-padded. Pad positions hold the pad id (EOS when the
    tokenizer has no pad token) and mask 0, so ``model(**obs)`` works as is.

    ## Rewards
    ``reward_mode="terminal"``: 0 at every step, then the task score of the finished text.
    ``reward_mode="dense"``: ``score(prefix_t) - score(prefix_{t-1})`` per step, with the score of
    the empty text taken as 0; the episode sum equals the terminal score. Scores come from
    ``reward``: a metric name (``"bleu"``, ``"rougeL"``, ...), a ``{name: weight}`` mix, or a callable
    ``(prompts, generations, references) -> list[float]``.

    ## Episode End
    Terminated when the action is EOS; truncated after ``max_new_tokens`` tokens. An episode that
    ends with EOS at once scores the empty text (0 for every overlap metric).

    ## Info
    ``reset``: ``sample_id``, ``source``, ``prompt_text``, ``references``. At the end: also
    ``generation`` (decoded, special tokens dropped), ``num_tokens``, ``metrics`` (every reward
    component and every name in ``metrics``) and ``score``.

    ## Arguments
    samples, tokenizer, reward, reward_mode, max_prompt_length, max_new_tokens, prompt_template
    (``"auto"``, ``"chat"``, ``"plain"`` or a template with one ``{source}`` slot), instruction,
    truncation_side, metrics, render_mode (``"ansi"``).

    ## Version History
    * v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        samples: Sequence[Sample],
        tokenizer: Any = None,
        reward: Any = "rougeL",
        *,
        reward_mode: str = "terminal",
        max_prompt_length: int = 128,
        max_new_tokens: int = 32,
        prompt_template: str | None = "auto",
        instruction: str = "{source}",
        truncation_side: str = "right",
        metrics: Sequence[str] = (),
        render_mode: str | None = None,
    ) -> None:
        if not samples:
            raise ValueError("samples is empty: an environment needs at least one task item")
        for s in samples:
            if not isinstance(s, Sample):
                raise TypeError(f"samples must be textgym.data.Sample objects, got {type(s).__name__}")
            if not s.source.strip():
                raise ValueError(f"sample {s.id!r} has an empty source text")
            if not s.references or not all(isinstance(r, str) for r in s.references):
                raise ValueError(f"sample {s.id!r} needs at least one reference string")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {reward_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.samples = list(samples)
        self.tokenizer = load_tokenizer(tokenizer)
        self.eos_token_id, self.pad_token_id = special_token_ids(self.tokenizer)
        self.reward_fn = make_reward(reward)
        self.metric_fns = {name: make_reward(name) for name in metrics}
        self.reward_mode = reward_mode
        self.max_prompt_length = _check_length("max_prompt_length", max_prompt_length)
        self.max_new_tokens = _check_length("max_new_tokens", max_new_tokens)
        fmt = resolve_prompt_format(prompt_template, instruction, self.tokenizer, truncation_side)
        self.prompt_encoder = PromptEncoder(self.tokenizer, fmt, self.max_prompt_length)
        self.render_mode = render_mode

        self.vocab_size = len(self.tokenizer)
        length = self.max_prompt_length + self.max_new_tokens
        self.action_space = spaces.Discrete(self.vocab_size)
        self.observation_space = spaces.Dict(
            {
                "input_ids": spaces.Box(0, self.vocab_size - 1, (length,), np.int64),
                "attention_mask": spaces.Box(0, 1, (length,), np.int64),
            }
        )
        self.metadata = {**type(self).metadata, "reward": self.reward_fn.name}
        for fn in (self.reward_fn, *self.metric_fns.values()):
            for part in getattr(fn, "components", {fn.name: fn}).values():
                if getattr(part, "signature", None):
                    self.metadata[f"signature_{part.name}"] = part.signature

        self._sample_order = SampleOrder(len(self.samples))
        self._sample: Sample | None = None
        self._done = True
        self._started = False

    # --- episode mechanics -------------------------------------------------------------
    def _next_index(self, options: Mapping[str, Any] | None) -> int:
        if options and "sample_index" in options:
            return check_sample_index(options["sample_index"], len(self.samples))
        return self._sample_order.next(self.np_random)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Draw the next sample (a new epoch order per ``seed``) and return the prompt."""
        super().reset(seed=seed)
        if seed is not None:
            self._sample_order.restart()  # the same seed replays the same sample order
        check_reset_options(options)
        self._sample = self.samples[self._next_index(options)]
        prompt = self.prompt_encoder.encode(self._sample.source)
        self._prompt = np.full(self.max_prompt_length, self.pad_token_id, dtype=np.int64)
        self._prompt[self.max_prompt_length - len(prompt) :] = prompt
        self._prompt_len = len(prompt)
        self._prompt_text = self.tokenizer.decode(prompt)
        self._generated: list[int] = []
        self._last_score = 0.0
        self._done = False
        self._started = True
        return self._observation(), self._reset_info()

    def step(self, action: Any):
        """Append one token; see the class docstring for rewards and episode end."""
        if not self._started:
            raise ResetNeeded("step() called before reset(): call env.reset() first")
        if self._done:
            raise ResetNeeded("step() called after the episode ended: call env.reset() to start a new one")
        token = as_token_id(action, self.vocab_size)
        terminated = token == self.eos_token_id
        if not terminated:
            self._generated.append(token)
        truncated = not terminated and len(self._generated) >= self.max_new_tokens
        self._done = terminated or truncated
        info: dict[str, Any] = {}
        if self._done:
            info = self._final_info()
            reward = info["score"] - (self._last_score if self.reward_mode == "dense" else 0.0)
        elif self.reward_mode == "dense":
            score = self._score(self.generation_text())
            reward, self._last_score = score - self._last_score, score
        else:
            reward = 0.0
        obs = self._observation(with_eos=terminated)
        return obs, float(reward), terminated, truncated, info

    def _observation(self, with_eos: bool = False) -> dict[str, np.ndarray]:
        ids = np.full(self.max_prompt_length + self.max_new_tokens, self.pad_token_id, dtype=np.int64)
        ids[: self.max_prompt_length] = self._prompt
        gen = self._generated + ([self.eos_token_id] if with_eos else [])
        ids[self.max_prompt_length : self.max_prompt_length + len(gen)] = gen
        mask = np.zeros_like(ids)
        mask[self.max_prompt_length - self._prompt_len : self.max_prompt_length + len(gen)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    # --- text and scores -----------------------------------------------------------------
    def generation_text(self) -> str:
        """The text generated so far (special tokens dropped, outer whitespace stripped)."""
        return self.tokenizer.decode(self._generated, skip_special_tokens=True).strip()

    def prompt_text(self) -> str:
        """The prompt as the model sees it (after truncation)."""
        return self._prompt_text

    def _score(self, text: str) -> float:
        return self._checked(self.reward_fn([self.prompt_text()], [text], [list(self._sample.references)])[0])

    def _checked(self, value: float) -> float:
        value = float(value)
        if not math.isfinite(value):
            raise FloatingPointError(f"reward {self.reward_fn.name} returned {value} for sample {self._sample.id!r}")
        return value

    def _reset_info(self) -> dict[str, Any]:
        assert self._sample is not None
        return {
            "sample_id": self._sample.id,
            "source": self._sample.source,
            "prompt_text": self.prompt_text(),
            "references": list(self._sample.references),
        }

    def _final_info(self) -> dict[str, Any]:
        assert self._sample is not None
        text = self.generation_text()
        scores, metrics = score_episodes(
            self.reward_fn, self.metric_fns, [self.prompt_text()], [text], [list(self._sample.references)]
        )
        return {**self._reset_info(), "generation": text, "num_tokens": len(self._generated),
                "metrics": metrics[0], "score": scores[0]}

    def render(self) -> str | None:
        """``"ansi"``: the prompt and the text generated so far."""
        if self.render_mode != "ansi":
            return None
        if not self._started:
            return ""
        return f"{self.prompt_text()}{self.generation_text()}"
