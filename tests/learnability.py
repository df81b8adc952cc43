"""Tiny text tasks whose optimum is known, and a harness that trains any text agent on them.

Used by ``tests/test_learnability.py`` (and ``benchmarks/mutation_check.py``). Each task is a
reward callable on the decoded words of a generation, so it works with the word-level tiny
tokenizer of ``tests/tiny.py`` (one token = one word) and with a real tokenizer alike.

An algorithm plugs in as a :class:`Learner`: its class (``agents.PPO``, ``agents.A2C``, or any
SB3-style class with the same constructor) and the keyword arguments that make it learn.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from textgym.core import TextEnv
from textgym.data.base import Sample
from textgym.vector import TokenVecEnv
from tiny import WORDS, tiny_llama_config


# --- rewards: pure batched callables (prompts, generations, references) -> list[float] ------------
def words(text: str) -> list[str]:
    """Whitespace-separated words, lowercased, with surrounding punctuation stripped (``"Cat."`` -> ``"cat"``)."""
    return [w.strip(string.punctuation).lower() for w in text.split()]


class ContainsWord:
    """1 when the generation contains ``word`` as a whole word (any case, punctuation aside), else 0. Optimum: 1.

    >>> ContainsWord("cat")(["p", "p"], ["A Cat sat.", "category"], [[""], [""]])
    [1.0, 0.0]
    """

    def __init__(self, word: str) -> None:
        self.word, self.name = word, f"contains_{word}"

    def __call__(self, prompts: Sequence[str], generations: Sequence[str], references: Any) -> list[float]:
        return [float(self.word in words(text)) for text in generations]


class LengthTarget:
    """``1 - |words - target| / target``, floored at 0: the policy must stop (EOS) after ``target`` words. Optimum: 1.

    >>> LengthTarget(5)(["p"] * 3, ["a b c d e", "a b c", ""], [[""]] * 3)
    [1.0, 0.6, 0.0]
    """

    def __init__(self, target: int) -> None:
        self.target, self.name = target, f"length_{target}"

    def __call__(self, prompts: Sequence[str], generations: Sequence[str], references: Any) -> list[float]:
        return [max(0.0, 1.0 - abs(len(text.split()) - self.target) / self.target) for text in generations]


class AvoidWord:
    """Each generated word scores ``1 / max_words``, except ``word``, which scores 0. Optimum: 1.

    The policy must keep talking (stopping early scores less) but never say ``word``: a penalty
    on one word, relative to the others.

    >>> AvoidWord("good", 4)(["p"] * 3, ["good dog good", "dog cat sun rain", ""], [[""]] * 3)
    [0.25, 1.0, 0.0]
    """

    def __init__(self, word: str, max_words: int) -> None:
        self.word, self.max_words, self.name = word, max_words, f"avoid_{word}"

    def __call__(self, prompts: Sequence[str], generations: Sequence[str], references: Any) -> list[float]:
        return [sum(w != self.word for w in words(text)) / self.max_words for text in generations]


# --- tasks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """A reward with a known optimum, on the tiny prompts ``say <word> :``.

    ``frequent_word``: the initial model is first fine-tuned to say this word often (the tasks
    that penalise a frequent word need one; a random model says every word equally rarely).
    """

    name: str
    reward: Callable[..., list[float]]
    optimum: float
    max_new_tokens: int
    frequent_word: str | None = None


TASKS = {
    "target_word": Task("target_word", ContainsWord("cat"), 1.0, max_new_tokens=4),
    "length_5": Task("length_5", LengthTarget(5), 1.0, max_new_tokens=8),
    # One token: the KL-regularised optimum is known in closed form (see `regularized_objective`).
    "bandit": Task("bandit", ContainsWord("cat"), 1.0, max_new_tokens=1),
    "avoid_frequent": Task("avoid_frequent", AvoidWord("good", 4), 1.0, max_new_tokens=4, frequent_word="good"),
}


def task_tokenizer():
    """The word-level tokenizer of ``tests/tiny.py`` without silent tokens: EOS is the only special token.

    With a separate pad (or a special unknown) token a policy can fill a length quota with tokens
    that decode to nothing instead of learning to stop.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<eos>", "<unk>", ":", "say", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>")


def task_samples() -> list[Sample]:
    return [Sample(f"s{i}", f"say {w}", ("-",)) for i, w in enumerate(WORDS[:4])]


def make_env(task: Task, n_envs: int, tokenizer: Any = None, samples: Sequence[Sample] | None = None,
             **env_kwargs: Any) -> TokenVecEnv:
    """The task as a fast-path vector env of ``n_envs`` episodes (default: the tiny prompts and tokenizer)."""
    env_kwargs = {"max_prompt_length": 10, "prompt_template": "{source} :", **env_kwargs}
    env = TextEnv(samples or task_samples(), tokenizer or task_tokenizer(), reward=task.reward,
                  max_new_tokens=task.max_new_tokens, **env_kwargs)
    return TokenVecEnv(env, n_envs, device="cpu")


# --- models ---------------------------------------------------------------------------------
def tiny_policy_kwargs(tokenizer: Any = None, model_name: str | None = None, **extra: Any) -> dict[str, Any]:
    """``policy_kwargs`` of a config-built tiny llama (or of the saved model ``model_name``)."""
    if model_name is not None:
        return dict(model_name=model_name, **extra)
    tok = tokenizer or task_tokenizer()
    return dict(model_name=None, model_config=tiny_llama_config(len(tok)), **extra)


def frequent_word_model(folder: str, word: str, p: float = 0.7, steps: int = 60, seed: int = 0) -> str:
    """Save a tiny llama fine-tuned so that about ``p`` of its words are ``word`` (never EOS). Returns ``folder``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = task_tokenizer()
    cfg = tiny_llama_config(len(tok))
    th.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    rng = np.random.default_rng(seed)
    target, others = tok.convert_tokens_to_ids(word), tok.convert_tokens_to_ids([w for w in WORDS if w != word])
    prompts = [tok(f"say {w} :")["input_ids"] for w in WORDS[:4]]
    optimizer = th.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        rows = []
        for prompt in prompts * 8:
            words = [target if rng.random() < p else int(rng.choice(others)) for _ in range(8)]
            rows.append(prompt + words)
        ids = th.tensor(rows)  # (B, L): every prompt has 3 tokens, so no padding
        labels = ids.clone()
        labels[:, :3] = -100  # learn the continuation only
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# --- the harness ----------------------------------------------------------------------------
@dataclass
class Learner:
    """An algorithm under test: its class, the keyword arguments it trains with, its number of envs and how many
    consecutive envs share a prompt (``group_size``: the group baselines' k)."""

    cls: type
    kwargs: dict[str, Any]
    name: str = ""
    n_envs: int = 16
    group_size: int = 1

    def __post_init__(self) -> None:
        self.name = self.name or self.cls.__name__


class RolloutScores(BaseCallback):
    """Mean task score of the episodes of each rollout; stops ``learn`` once ``threshold`` is reached.

    Reached means: the episodes of the last ``window`` rollouts score ``threshold`` on average.
    """

    def __init__(self, threshold: float | None = None, window: int = 2) -> None:
        super().__init__()
        self.threshold, self.window = threshold, window
        self.curve: list[float] = []
        self.kl: list[float] = []
        self.reached_at: int | None = None
        self._scores: list[float] = []
        self._history: list[list[float]] = []

    def _on_step(self) -> bool:
        self._scores.extend(float(info["score"]) for info in self.locals["infos"] if "score" in info)
        return self.reached_at is None  # False stops `learn` (at the first step after the rollout that reached it)

    def _on_rollout_end(self) -> None:
        self._history.append(self._scores)
        self.curve.append(float(np.mean(self._scores)) if self._scores else math.nan)
        self.kl.append(float(self.model.logger.name_to_value.get("rollout/kl", math.nan)))
        self._scores = []
        recent = [s for scores in self._history[-self.window:] for s in scores]
        if self.threshold is not None and len(self._history) >= self.window and np.mean(recent) >= self.threshold:
            self.reached_at = self.num_timesteps


@dataclass
class Result:
    curve: list[float]
    kl: list[float]
    reached_at: int | None
    model: Any = field(repr=False, default=None)


def train(learner: Learner, task: Task, budget: int, *, seed: int = 0, fraction: float = 0.9,
          policy_kwargs: dict[str, Any] | None = None, stop_early: bool = True, env: Any = None,
          **overrides: Any) -> Result:
    """Train ``learner`` on ``task`` for at most ``budget`` env steps; note when ``fraction`` of the optimum is reached.

    ``env``: the vector env to train on (default: the task on the tiny prompts, ``learner.n_envs`` episodes).
    ``overrides``: keyword arguments of the algorithm that replace the learner's.
    """
    env = make_env(task, learner.n_envs, group_size=learner.group_size) if env is None else env
    kwargs = {**learner.kwargs, **overrides}
    model = learner.cls("TransformerPolicy", env, seed=seed, policy_kwargs=policy_kwargs or tiny_policy_kwargs(),
                        **kwargs)
    scores = RolloutScores(fraction * task.optimum if stop_early else None)
    model.learn(budget, callback=scores)
    return Result(scores.curve, scores.kl, scores.reached_at, model)


def first_token_distributions(model: Any, task: Task) -> tuple[th.Tensor, th.Tensor]:
    """Log-probs of the first generated token under the policy and its reference, per prompt: ``(S, V)`` each."""
    from agents.policies import hidden_at_last_token

    env = make_env(task, 1)
    rows = []
    for index in range(len(env.env.samples)):
        env.reset_env(0, options={"sample_index": index})
        rows.append({k: v[0] for k, v in env.observations().items()})
    obs = {k: th.as_tensor(np.stack([r[k] for r in rows])) for k in rows[0]}
    policy = model.policy
    with th.no_grad():
        log_pi = policy.get_distribution(obs).distribution.logits  # (S, V), normalised
        with policy.reference() as reference:
            hidden = hidden_at_last_token(reference.base_model, obs)
            ref = reference.get_output_embeddings()(hidden)[..., : policy.n_actions]
    return log_pi.float(), th.log_softmax(ref.float(), dim=-1)


def regularized_objective(log_pi: th.Tensor, log_ref: th.Tensor, rewards: th.Tensor,
                          kl_coef: float) -> tuple[float, float]:
    """``(J(pi), J*)`` of the one-token bandit ``E_pi[r] - kl_coef * KL(pi || ref)``, averaged over prompts.

    The optimum is ``pi* ∝ ref * exp(r / kl_coef)`` with ``J* = kl_coef * log E_ref[exp(r / kl_coef)]``.
    ``rewards``: ``(V,)``, the reward of each first token.
    """
    pi = log_pi.exp()
    value = (pi * rewards).sum(-1) - kl_coef * (pi * (log_pi - log_ref)).sum(-1)  # (S,)
    best = kl_coef * th.logsumexp(log_ref + rewards / kl_coef, dim=-1)  # (S,)
    return float(value.mean()), float(best.mean())
