"""TextEnv: the token-level MDP that every textgym task shares."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from textgym.catalogue import MAX_TOKENS, REWARD_MODES
from textgym.data.base import Sample
from textgym.argtypes import INT_MAX
from textgym.fieldtypes import check_arg_types
from textgym.layouts import EncoderPrompt, resolve_layout
from textgym.models import load_tokenizer
from textgym.prompts import PromptEncoder, resolve_prompt_format, special_token_ids
from textgym.rewards import make_reward, score_and_components
from textgym.rewards.base import References, check_scores, sample_fields_needed



def _check_length(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_TOKENS:
        raise ValueError(f"{name} must be an integer in [1, {MAX_TOKENS}], got {value!r}")
    return int(value)


def check_sample_index(index: Any, num_samples: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < num_samples:
        raise ValueError(f"options['sample_index'] must be an int in [0, {num_samples - 1}], got {index!r}")
    return int(index)


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``seed`` as an int (``None`` passes), else an error naming ``name``: a whole number >= 0, as Gymnasium's
    seeding takes (its own error would not name the argument, and a vector env's ``seed + i`` fails on a string
    before it)."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a whole number in [0, 2**63 - 1] (or None), got {seed!r} "
                        f"(a {type(seed).__name__})")
    if not 0 <= seed <= INT_MAX:  # Gymnasium refuses < 0; beyond int64 fits no seed a tensor or array takes
        raise ValueError(f"{name} must be a whole number in [0, 2**63 - 1] (or None), got {seed!r}")
    return int(seed)


def check_reset_options(options: Mapping[str, Any] | None) -> None:
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict (or None), got {type(options).__name__}; a vector env's reset "
                        "takes one dict for every env")
    unknown = set(options or {}) - {"sample_index"}
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: ['sample_index']")


def as_token_ids(actions: Any, num: int, vocab_size: int) -> np.ndarray:
    """Validate a batch of ``num`` token ids; return them as an int64 array of shape ``(num,)``.

    Accepts Python ints and arrays of any integer dtype (``uint8`` ... ``int64``) holding ``num``
    elements; booleans, floats, strings and object arrays are refused with a ``TypeError``, wrong
    sizes and out-of-range ids with a ``ValueError``. Torch tensors are validated by
    :meth:`textgym.vector.TokenVecEnv.check_actions` without leaving their device.
    """
    what = "action" if num == 1 else "actions"
    try:
        arr = np.asarray(actions)
    except (ValueError, TypeError):  # ragged nested lists
        raise TypeError(f"{what} must be integer token ids in [0, {vocab_size - 1}], got a ragged "
                        f"{type(actions).__name__}") from None
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        kind = {"U": "strings", "S": "bytes", "O": "objects", "f": "floats", "c": "complex numbers",
                "b": "booleans"}.get(arr.dtype.kind, f"dtype {arr.dtype}")
        shown = repr(actions) if len(repr(actions)) <= 60 else repr(actions)[:57] + "..."
        raise TypeError(f"{what} must be integer token ids in [0, {vocab_size - 1}] (any integer dtype), "
                        f"got {kind}: {shown}")
    if arr.size != num:
        raise ValueError(f"{what} must hold {num} token id(s), got shape {arr.shape}")
    flat = arr.reshape(num)
    if flat.dtype == np.uint64 and flat.size and int(flat.max()) >= vocab_size:
        raise ValueError(f"action {int(flat.max())} is out of range: token ids are 0..{vocab_size - 1}")
    flat = flat.astype(np.int64)
    bad = (flat < 0) | (flat >= vocab_size)
    if bad.any():
        raise ValueError(f"action {int(flat[bad][0])} is out of range: token ids are 0..{vocab_size - 1}")
    return flat


def as_token_id(action: Any, vocab_size: int) -> int:
    """Validate one action and return it as a Python int (see :func:`as_token_ids`).

    Accepts Python and NumPy integers and integer arrays holding one element (SB3 passes
    ``np.int64`` or shape-``(1,)`` arrays).
    """
    return int(as_token_ids(action, 1, vocab_size)[0])


def episode_flags(tokens: Any, num_generated: Any, eos_token_id: int, max_new_tokens: int) -> tuple[Any, Any, Any]:
    """The transition rule of every textgym env, for NumPy arrays or torch tensors of shape ``(N,)``.

    Args:
        tokens: The actions of envs still running.
        num_generated: Tokens generated before this step (EOS not counted).

    Returns:
        ``(terminated, num_generated after the step, truncated)``: EOS terminates and is not
        counted; any other token is appended, and reaching ``max_new_tokens`` truncates.
    """
    terminated = tokens == eos_token_id  # (N,)
    grown = num_generated + (~terminated).astype(num_generated.dtype) if isinstance(tokens, np.ndarray) \
        else num_generated + (~terminated).long()
    truncated = ~terminated & (grown >= max_new_tokens)
    return terminated, grown, truncated


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
    extra = {name: check_scores(name, fn(prompts, texts, references), len(texts))
             for name, fn in metric_fns.items() if name not in parts}
    columns = {**parts, **extra}
    metrics = [{name: float(values[i]) for name, values in columns.items()} for i in range(len(texts))]
    return total, metrics


def sample_references(sample: Sample) -> References:
    """One item's references as the rewards get them: its reference strings, with its ``meta`` as ``fields``."""
    return References(sample.references, sample.meta)


def samples_with_fields(samples: Sequence[Sample], rewards: Sequence[Any]) -> list[Sample]:
    """The samples that carry every field the rewards read (``sample_fields``), as a new list.

    Samples without one are left out with a logged warning (DailyDialog has train turns without an
    act label); a task none of whose samples has it is refused.

    Raises:
        ValueError: No sample has every needed field.
    """
    needed = sorted(set().union(*(sample_fields_needed(fn) for fn in rewards)))
    if not needed:
        return list(samples)
    has = [all(s.meta.get(name) is not None for name in needed) for s in samples]
    kept = [s for s, ok in zip(samples, has) if ok]
    if not kept:
        names = ", ".join(repr(fn.name) for fn in rewards if sample_fields_needed(fn))
        raise ValueError(f"reward {names} needs the sample field(s) {needed}, which no sample of this task has "
                         f"(sample {samples[0].id!r} has {sorted(samples[0].meta)}); use a task whose samples "
                         "carry them (the dialogue act: textgym/DailyDialog-v0) or another reward")
    if len(kept) < len(samples):
        import logging

        logging.getLogger(__name__).warning(
            "left out %d of %d samples without the field(s) %s that the reward needs (e.g. %r)",
            len(samples) - len(kept), len(samples), needed, samples[has.index(False)].id)
    return kept


class TextEnv(gym.Env):
    """A language model writes a reply to a prompt one token at a time.

    ## Action Space
    ``Discrete(V)`` with ``V = len(tokenizer)``: the id of the next token.

    ## Observation Space
    ``Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int64))`` with
    ``L = max_prompt_length + max_new_tokens``: the prompt left-padded to ``max_prompt_length``,
    then the tokens generated so far, right-padded. Pad positions hold the pad id (EOS when the
    tokenizer has no pad token) and mask 0, so ``model(**obs)`` works as is.

    With ``layout="seq2seq"`` (encoder-decoder models): ``input_ids, attention_mask`` of shape
    ``(max_prompt_length,)``, the source for the encoder (right-padded, inside the tokenizer's
    special tokens), and ``decoder_input_ids, decoder_attention_mask`` of shape ``(1 + max_new_tokens,)``:
    the decoder start token, then the tokens generated so far. Same actions, rewards and infos.

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
    truncation_side, metrics, render_mode (``"ansi"``), group_size (``k``: every prompt is given to ``k``
    episodes, so that critic-free algorithms can compare ``k`` completions of one prompt; in a
    vector env the ``k`` consecutive envs ``j*k .. j*k+k-1`` share each prompt, and a single env
    repeats each prompt for ``k`` episodes in a row. With ``k > 1`` infos carry ``group``: the
    env's group ``j`` in a vector env, the running count of prompts drawn in a single env),
    layout (``"causal"``, ``"seq2seq"`` or ``"auto"``: the model kind of the config saved beside the
    tokenizer; see :mod:`textgym.layouts`), decoder_start_token_id (seq2seq only; default: the model
    config's).

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
        group_size: int = 1,
        layout: str = "causal",
        decoder_start_token_id: int | None = None,
    ) -> None:
        check_arg_types(TextEnv.__init__, locals())  # types from the annotations: a bare string for metrics, ...
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
        self.tokenizer = load_tokenizer(tokenizer)
        self.layout = resolve_layout(layout, tokenizer, self.tokenizer, decoder_start_token_id)
        self.eos_token_id, self.pad_token_id = special_token_ids(self.tokenizer)
        self.reward_fn = make_reward(reward)
        self.metric_fns = {name: make_reward(name) for name in metrics}
        self.samples = samples_with_fields(samples, (self.reward_fn, *self.metric_fns.values()))
        self.reward_mode = reward_mode
        self.max_prompt_length = _check_length("max_prompt_length", max_prompt_length)
        self.max_new_tokens = _check_length("max_new_tokens", max_new_tokens)
        fmt = resolve_prompt_format(prompt_template, instruction, self.tokenizer, truncation_side)
        encoder_cls = EncoderPrompt if self.layout.seq2seq else PromptEncoder
        self.prompt_encoder = encoder_cls(self.tokenizer, fmt, self.max_prompt_length)
        self.render_mode = render_mode
        if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
            raise ValueError(f"group_size must be an integer >= 1 (completions per prompt), got {group_size!r}")
        self.group_size = int(group_size)

        self.vocab_size = len(self.tokenizer)
        self.action_space = spaces.Discrete(self.vocab_size)
        self.observation_space = self.layout.observation_space(self.vocab_size, self.max_prompt_length,
                                                               self.max_new_tokens)
        self.metadata = {**type(self).metadata, "reward": self.reward_fn.name}
        for fn in (self.reward_fn, *self.metric_fns.values()):
            for part in getattr(fn, "components", {fn.name: fn}).values():
                if getattr(part, "signature", None):
                    self.metadata[f"signature_{part.name}"] = part.signature

        self._sample_order = SampleOrder(len(self.samples))
        self._group, self._group_index, self._group_left = -1, 0, 0  # the prompt repeated for group_size episodes
        self._sample: Sample | None = None
        self._done = True
        self._started = False

    # --- episode mechanics -------------------------------------------------------------
    def _next_index(self, options: Mapping[str, Any] | None) -> int:
        if options and "sample_index" in options:
            return check_sample_index(options["sample_index"], len(self.samples))
        if self._group_left == 0:  # a new group: draw its prompt
            self._group, self._group_index = self._group + 1, self._sample_order.next(self.np_random)
            self._group_left = self.group_size
        self._group_left -= 1
        return self._group_index

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Draw the next sample (a new epoch order per ``seed``) and return the prompt."""
        super().reset(seed=check_seed(seed))
        if seed is not None:
            self._sample_order.restart()  # the same seed replays the same sample order
            self._group, self._group_left = -1, 0
        check_reset_options(options)
        self._sample = self.samples[self._next_index(options)]
        prompt = self.prompt_encoder.encode(self._sample.source)
        self._prompt = np.full(self.max_prompt_length, self.pad_token_id, dtype=np.int64)
        self._prompt_start = 0 if self.layout.seq2seq else self.max_prompt_length - len(prompt)  # seq2seq: right-padded
        self._prompt[self._prompt_start : self._prompt_start + len(prompt)] = prompt
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
        term, _, trunc = episode_flags(np.array([token]), np.array([len(self._generated)]), self.eos_token_id,
                                       self.max_new_tokens)
        terminated, truncated = bool(term[0]), bool(trunc[0])
        if not terminated:
            self._generated.append(token)
        self._done = terminated or truncated
        rewards, last, finals = self.score_step([self.prompt_text()], lambda _: [self.generation_text()],
                                                [sample_references(self._sample)], np.array([self._done]),
                                                np.array([self._last_score]))
        self._last_score = float(last[0])
        info = self._final_info(*finals[0]) if self._done else {}
        obs = self._observation(with_eos=terminated)
        return obs, float(rewards[0]), terminated, truncated, info

    def score_step(self, prompts: Sequence[str], texts_of: Callable[[list[int]], list[str]],
                   references: Sequence[list[str]], done: np.ndarray, last_scores: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[float, dict[str, float]]]]:
        """The rewards of one step for a batch of running episodes (shared with TokenVecEnv).

        Args:
            prompts, references: One per episode.
            texts_of: Returns the generated texts of the given episode positions (decoded lazily:
                terminal mode needs only the finished ones).
            done: ``(N,)`` bool, the episodes that ended at this step.
            last_scores: ``(N,)`` dense mode: the score of each episode's previous prefix.

        Returns:
            ``(rewards (N,), last_scores (N,), {position: (score, metrics)} of the ended episodes)``.

        Raises:
            FloatingPointError, TypeError, ValueError: The reward returned a non-finite score, not
                numbers, or not one score per text.
        """
        dense = self.reward_mode == "dense"
        rewards = np.zeros(len(prompts))  # (N,)
        last = np.array(last_scores, dtype=np.float64)  # (N,)
        finals: dict[int, tuple[float, dict[str, float]]] = {}
        ended = [int(k) for k in np.flatnonzero(done)]
        if ended:
            scores, metrics = score_episodes(self.reward_fn, self.metric_fns, [prompts[k] for k in ended],
                                             texts_of(ended), [references[k] for k in ended])
            for k, score, m in zip(ended, scores, metrics):
                rewards[k] = score - (last[k] if dense else 0.0)
                finals[k] = (score, m)
        ongoing = [int(k) for k in np.flatnonzero(~np.asarray(done))]
        if dense and ongoing:
            raw = self.reward_fn([prompts[k] for k in ongoing], texts_of(ongoing), [references[k] for k in ongoing])
            for k, score in zip(ongoing, check_scores(self.reward_fn.name, raw, len(ongoing))):
                rewards[k], last[k] = score - last[k], score
        return rewards, last, finals

    def _observation(self, with_eos: bool = False) -> dict[str, np.ndarray]:
        ids = np.full(self.max_prompt_length + self.max_new_tokens, self.pad_token_id, dtype=np.int64)
        ids[: self.max_prompt_length] = self._prompt
        gen = self._generated + ([self.eos_token_id] if with_eos else [])
        ids[self.max_prompt_length : self.max_prompt_length + len(gen)] = gen
        mask = np.zeros_like(ids)
        mask[self._prompt_start : self._prompt_start + self._prompt_len] = 1
        mask[self.max_prompt_length : self.max_prompt_length + len(gen)] = 1
        return self.layout.observation(ids, mask, self.max_prompt_length)

    # --- text and scores -----------------------------------------------------------------
    def generation_text(self) -> str:
        """The text generated so far (special tokens dropped, outer whitespace stripped)."""
        return self.tokenizer.decode(self._generated, skip_special_tokens=True).strip()

    def prompt_text(self) -> str:
        """The prompt as the model sees it (after truncation)."""
        return self._prompt_text

    def _reset_info(self) -> dict[str, Any]:
        assert self._sample is not None
        return {
            "sample_id": self._sample.id,
            "source": self._sample.source,
            "prompt_text": self.prompt_text(),
            "references": sample_references(self._sample),
            **({"group": self._group} if self.group_size > 1 else {}),
        }

    def _final_info(self, score: float, metrics: dict[str, float]) -> dict[str, Any]:
        return {**self._reset_info(), "generation": self.generation_text(), "num_tokens": len(self._generated),
                "metrics": metrics, "score": score}

    def render(self) -> str | None:
        """``"ansi"``: the prompt and the text generated so far."""
        if self.render_mode != "ansi":
            return None
        if not self._started:
            return ""
        return f"{self.prompt_text()}{self.generation_text()}"
