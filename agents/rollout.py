"""The fast path: KV-cache rollouts on a TokenVecEnv and one teacher-forced pass per episode batch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Callable, Iterator

import numpy as np
import torch as th
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPast

from agents.buffers import EpisodeBatch
from agents.logprobs import log_probs_and_entropy
from agents.policies import TransformerPolicy, padding_columns, position_ids

# Called once per lockstep step of the N envs with SB3's per-step locals; False stops the rollout.
StepHook = Callable[[dict[str, Any]], bool]

# transformers 5.2x renamed the KV cache argument and output `past_key_values` -> `cache` (the old
# name warns, and goes in 5.40); older releases only know `past_key_values`.
_CACHE = "cache" if "cache" in {f.name for f in fields(BaseModelOutputWithPast)} else "past_key_values"


class StepObservations(Mapping):
    """``new_obs`` for callbacks: the env's ``(N, L)`` observations, copied to NumPy only when read.

    Read it inside ``on_step``: it shows the env as it is when read, and the rollout moves on after.
    """

    def __init__(self, venv: Any) -> None:
        self._venv = venv
        self._arrays: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {k: np.array(v, copy=True) for k, v in self._venv.observations().items()}
        return self._arrays

    def __getitem__(self, key: str) -> np.ndarray:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(("input_ids", "attention_mask"))

    def __len__(self) -> int:
        return 2


def _step_infos(venv: Any, final_infos: dict[int, dict], returns: np.ndarray, lengths: np.ndarray,
                truncated: np.ndarray) -> list[dict[str, Any]]:
    """SB3-style infos: ``{}`` for envs still running, the final info plus ``episode`` for those that ended."""
    infos: list[dict[str, Any]] = [{} for _ in range(venv.num_envs)]
    if final_infos:
        terminal = venv.observations(list(final_infos))
        for k, (i, info) in enumerate(final_infos.items()):
            info["episode"] = {"r": float(returns[i]), "l": int(lengths[i])}
            info["terminal_observation"] = {key: value[k] for key, value in terminal.items()}
            info["TimeLimit.truncated"] = bool(truncated[i])
            infos[i] = info
    return infos


@th.no_grad()
def generate_episodes(policy: TransformerPolicy, venv: Any, on_step: StepHook | None = None) -> EpisodeBatch | None:
    """Run one episode in each of the ``N`` envs of a TokenVecEnv, all in lockstep.

    One prefill forward of the prompts (without the columns that are padding in every row), then
    one forward of ``N`` new tokens per step with a KV cache. Envs that finished early keep
    receiving pad tokens (ignored by the env) until all are done. The log-prob of each action and
    the value of each state are recorded from the logits and hidden states the sampling computes
    anyway (no second pass); with a separate critic trunk the values are filled in afterwards by
    :func:`critic_values`.

    Args:
        policy: The policy that samples.
        venv: A :class:`textgym.vector.TokenVecEnv`.
        on_step: Called after every lockstep step with SB3's per-step locals (``new_obs``,
            ``rewards``, ``dones``, ``infos``, ``actions``, ``values``, ``log_probs``); when it
            returns False the rollout stops and ``None`` is returned.
    """
    venv.reset_all()
    n, prompt_len, horizon = venv.num_envs, venv.prompt_length, venv.max_new_tokens
    device = venv.device
    prompt_ids = venv.input_ids[:, :prompt_len].clone()  # (N, P)
    prompt_mask = venv.attention_mask[:, :prompt_len].clone()
    tokens = th.full((n, horizon), venv.pad_token_id, dtype=th.long, device=device)
    step_mask = th.zeros((n, horizon), dtype=th.bool, device=device)
    env_rewards = th.zeros((n, horizon), device=device)
    log_probs = th.zeros((n, horizon), device=device)
    values = th.zeros((n, horizon), device=device)
    returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
    shared_critic = policy.critic_trunk is None
    trunk = policy.lm.base_model
    start = padding_columns(prompt_mask)  # the batch keeps the env's width; only the cache is narrower
    mask = prompt_mask[:, start:]
    with policy.autocast():
        out = trunk(input_ids=prompt_ids[:, start:], attention_mask=mask, position_ids=position_ids(mask), use_cache=True)
    hidden, cache = out.last_hidden_state[:, -1], out[_CACHE]  # (N, H)
    next_position = mask.sum(-1, keepdim=True)  # (N, 1)
    infos: list[dict] = []
    for t in range(horizon):
        distribution = th.distributions.Categorical(logits=policy.logits_from_hidden(hidden))  # (N, V), controls applied
        actions = distribution.sample()  # (N,)
        active = ~venv.finished
        step_values = policy.values_from_hidden(hidden) if shared_critic else th.zeros((n, 1), device=device)  # (N, 1)
        step_log_probs = distribution.log_prob(actions)  # (N,)
        rewards, terminated, truncated, final_infos = venv.advance(actions)
        tokens[:, t] = th.where(active, actions, venv.pad_token_id)
        step_mask[:, t] = active
        env_rewards[:, t] = th.as_tensor(rewards, device=device)
        log_probs[:, t] = step_log_probs.float()
        values[:, t] = step_values.squeeze(-1).float()
        infos.extend(final_infos.values())
        if on_step is not None:
            returns += rewards
            lengths += active.cpu().numpy()
            dones = terminated | truncated
            step_locals = {"new_obs": StepObservations(venv), "rewards": rewards, "dones": dones,
                           "infos": _step_infos(venv, final_infos, returns, lengths, truncated),
                           "actions": actions.cpu().numpy(), "values": step_values, "log_probs": step_log_probs}
            if not on_step(step_locals):
                return None
        if bool(venv.finished.all()):
            break
        mask = th.cat([mask, th.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
        with policy.autocast():
            out = trunk(input_ids=tokens[:, t : t + 1], attention_mask=mask, position_ids=next_position,
                        use_cache=True, **{_CACHE: cache})
        hidden, cache = out.last_hidden_state[:, -1], out[_CACHE]
        next_position = next_position + 1
    batch = EpisodeBatch(prompt_ids, prompt_mask, tokens, step_mask, env_rewards, infos=infos)
    batch.log_probs, batch.values = log_probs * step_mask, values * step_mask
    return batch


def step_hidden(trunk: nn.Module, batch: EpisodeBatch, rows: Any = slice(None)) -> th.Tensor:
    """Hidden state before each action, from one teacher-forced pass. ``-> (e, T, H)``.

    The state before action ``t`` is the prompt plus actions ``< t``: position ``P - 1 + t``. Prompt
    columns that are padding in every row of ``rows`` are left out of the pass (same results).
    """
    ids, mask = batch.sequences(rows)
    prompt_len = batch.prompt_ids.shape[1]
    start = padding_columns(mask[:, :prompt_len])
    ids, mask = ids[:, start:-1], mask[:, start:-1]  # the last action is never an input
    hidden = trunk(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).last_hidden_state
    return hidden[:, prompt_len - start - 1 :]


def evaluate_episodes(policy: TransformerPolicy, batch: EpisodeBatch, rows: Any = slice(None), with_values: bool = True):
    """Log-probs, values and entropies of every action of the episodes ``rows``, each ``(e, T)`` (values None
    when not ``with_values``: critic-free algorithms run no critic)."""
    with policy.autocast():
        actor = step_hidden(policy.lm.base_model, batch, rows)  # (e, T, H)
        if not with_values:
            critic = None
        else:
            critic = actor if policy.critic_trunk is None else step_hidden(policy.critic_trunk, batch, rows)
    logits = policy.logits_from_hidden(actor)  # (e, T, V)
    log_probs, entropy = log_probs_and_entropy(logits, batch.tokens[rows])  # keeps only the logits for backward
    policy.record_entropy(entropy, batch.step_mask[rows])
    values = None if critic is None else policy.values_from_hidden(critic).squeeze(-1)
    return log_probs, values, entropy


@th.no_grad()
def critic_values(policy: TransformerPolicy, batch: EpisodeBatch, rows: Any = slice(None)) -> th.Tensor:
    """Values of every state from the separate critic trunk, one teacher-forced pass. ``-> (e, T)``."""
    with policy.autocast():
        hidden = step_hidden(policy.critic_trunk, batch, rows)  # (e, T, H)
    return policy.values_from_hidden(hidden).squeeze(-1).float()


def reference_log_probs(policy: TransformerPolicy, batch: EpisodeBatch, rows: Any = slice(None)) -> th.Tensor:
    """Log-probs of the actions under the policy's frozen reference, one pass per batch. ``-> (e, T)``."""
    with policy.reference() as reference:
        with policy.autocast():
            hidden = step_hidden(reference.base_model, batch, rows)
        return policy.reference_log_probs_from_hidden(reference, hidden, batch.tokens[rows])
