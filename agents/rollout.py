"""The fast path: KV-cache rollouts on a TokenVecEnv and one teacher-forced pass per episode batch."""

from __future__ import annotations

from typing import Any

import torch as th
from torch import nn

from agents.buffers import EpisodeBatch
from agents.policies import TransformerPolicy, position_ids


@th.no_grad()
def generate_episodes(policy: TransformerPolicy, venv: Any) -> EpisodeBatch:
    """Run one episode in each of the ``N`` envs of a TokenVecEnv, all in lockstep.

    One prefill forward of the prompts, then one forward of ``N`` new tokens per step with a KV
    cache. Envs that finished early keep receiving pad tokens (ignored by the env) until all are
    done. Returns the episodes, with the env rewards per step; log-probs and values come from
    :func:`score_episodes` so rollout and update compute them the same way.
    """
    venv.reset_all()
    n, prompt_len, horizon = venv.num_envs, venv.prompt_length, venv.max_new_tokens
    device = venv.device
    prompt_ids = venv.input_ids[:, :prompt_len].clone()  # (N, P)
    prompt_mask = venv.attention_mask[:, :prompt_len].clone()
    tokens = th.full((n, horizon), venv.pad_token_id, dtype=th.long, device=device)
    step_mask = th.zeros((n, horizon), dtype=th.bool, device=device)
    env_rewards = th.zeros((n, horizon), device=device)
    trunk = policy.lm.base_model
    mask = prompt_mask
    with policy.autocast():
        out = trunk(input_ids=prompt_ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=True)
    hidden, cache = out.last_hidden_state[:, -1], out.past_key_values  # (N, H)
    next_position = mask.sum(-1, keepdim=True)  # (N, 1)
    infos: list[dict] = []
    for t in range(horizon):
        logits = policy.logits_from_hidden(hidden)  # (N, V), sampling controls applied
        actions = th.distributions.Categorical(logits=logits).sample()  # (N,)
        active = ~venv.finished
        rewards, _, _, final_infos = venv.advance(actions)
        tokens[:, t] = th.where(active, actions, venv.pad_token_id)
        step_mask[:, t] = active
        env_rewards[:, t] = th.as_tensor(rewards, device=device)
        infos.extend(final_infos.values())
        if bool(venv.finished.all()):
            break
        mask = th.cat([mask, th.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
        with policy.autocast():
            out = trunk(input_ids=tokens[:, t : t + 1], attention_mask=mask, position_ids=next_position,
                        past_key_values=cache, use_cache=True)
        hidden, cache = out.last_hidden_state[:, -1], out.past_key_values
        next_position = next_position + 1
    return EpisodeBatch(prompt_ids, prompt_mask, tokens, step_mask, env_rewards, infos=infos)


def step_hidden(trunk: nn.Module, batch: EpisodeBatch, rows: Any = slice(None)) -> th.Tensor:
    """Hidden state before each action, from one teacher-forced pass. ``-> (e, T, H)``.

    The state before action ``t`` is the prompt plus actions ``< t``: position ``P - 1 + t``.
    """
    ids, mask = batch.sequences(rows)
    prompt_len = batch.prompt_ids.shape[1]
    ids, mask = ids[:, :-1], mask[:, :-1]  # the last action is never an input
    hidden = trunk(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).last_hidden_state
    return hidden[:, prompt_len - 1 :]


def evaluate_episodes(policy: TransformerPolicy, batch: EpisodeBatch, rows: Any = slice(None)):
    """Log-probs, values and entropies of every action of the episodes ``rows``, each ``(e, T)``."""
    with policy.autocast():
        actor = step_hidden(policy.lm.base_model, batch, rows)  # (e, T, H)
        critic = actor if policy.critic_trunk is None else step_hidden(policy.critic_trunk, batch, rows)
    logits = policy.logits_from_hidden(actor)  # (e, T, V)
    log_softmax = th.log_softmax(logits, dim=-1)
    log_probs = log_softmax.gather(-1, batch.tokens[rows].unsqueeze(-1)).squeeze(-1)
    entropy = -(log_softmax.exp() * log_softmax).sum(-1)
    return log_probs, policy.values_from_hidden(critic).squeeze(-1), entropy


@th.no_grad()
def reference_log_probs(policy: TransformerPolicy, batch: EpisodeBatch, rows: Any = slice(None)) -> th.Tensor:
    """Log-probs of the actions under the policy's frozen reference, one pass per batch. ``-> (e, T)``."""
    with policy.reference() as reference:
        with policy.autocast():
            hidden = step_hidden(reference.base_model, batch, rows)
        return policy.reference_log_probs_from_hidden(reference, hidden, batch.tokens[rows])
