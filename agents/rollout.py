"""The fast path: KV-cache rollouts on a TokenVecEnv and one teacher-forced pass per episode batch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch as th
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPast

from agents.buffers import EpisodeBatch
from agents.logprobs import log_probs_and_entropy, sample_with_log_probs
from agents.policies import TransformerPolicy, padding_columns, position_ids
from agents.seq2seq import DecoderSteps, is_seq2seq, start_token
from agents.seq2seq import step_hidden as seq2seq_step_hidden

class ActionMasker(Protocol):
    """What the rollout needs of an action mask (see :class:`agents.nlpo.TopPMasker`)."""

    trunk: nn.Module  # decodes beside the policy's trunk, with its own KV cache

    def allowed(self, hidden: th.Tensor) -> th.Tensor:
        """The tokens the policy may sample after ``hidden``, the trunk's last hidden state. ``(N, H) -> (N, V)`` bool."""


# Called once per lockstep step of the N envs with SB3's per-step locals; False stops the rollout.
StepHook = Callable[[dict[str, Any]], bool]

# transformers 5.2x renamed the KV cache argument and output `past_key_values` -> `cache` (the old
# name warns, and goes in 5.40); older releases only know `past_key_values`.
_CACHE = "cache" if "cache" in {f.name for f in fields(BaseModelOutputWithPast)} else "past_key_values"


class StepObservations(Mapping):
    """``new_obs`` for callbacks: the envs' ``(N, L)`` observations after one step, made only when read."""

    def __init__(self, load: Callable[[], dict[str, np.ndarray]], keys: tuple[str, ...] = ("input_ids", "attention_mask")
                 ) -> None:
        self._load_fn, self._keys = load, keys
        self._arrays: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = self._load_fn()
        return self._arrays

    def __getitem__(self, key: str) -> np.ndarray:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class EndWatch:
    """When every env has finished, learned without making the device wait for Python each token.

    Each step's "all finished" flag is copied to the host without blocking (into pinned memory on a
    GPU) and read once it has arrived: on the CPU at once, on a GPU when the step's event has
    completed, so the loop may run a few steps past the end. Those steps change nothing (finished
    envs ignore their actions, ``step_mask`` is False) except the random numbers they drew:
    :meth:`settle` sets the generator back to where it stood after the last real step, so later
    samples are those of a loop that stopped there (the same tokens for the same seed).

    Args:
        device: The rollout's device.
        horizon: Most steps of the rollout.
        lag: Read step ``t``'s flag only at step ``t + lag`` (tests: runs the catch-up on a CPU).
    """

    def __init__(self, device: th.device, horizon: int, lag: int | None = None) -> None:
        self.device, self.lag, self.cuda = device, lag, device.type == "cuda"
        self.flags = th.zeros(horizon, dtype=th.bool, pin_memory=self.cuda)  # (T,)
        self.view = self.flags.numpy()  # reads the host flags without a torch call
        self.events: list[Any] = []
        self.rng_states: list[th.Tensor] = []
        self.seen = 0  # the flags of steps < seen arrived and were False

    def record(self, t: int, finished: th.Tensor) -> None:
        """Queue step ``t``'s flag (``finished: (N,)`` bool on the device)."""
        self.flags[t : t + 1].copy_(finished.all().view(1), non_blocking=True)
        if self.cuda:
            self.events.append(th.cuda.Event())
            self.events[-1].record()
        if self.cuda or self.lag:
            self.rng_states.append(th.cuda.get_rng_state(self.device) if self.cuda else th.get_rng_state())

    def ended(self, t: int) -> bool:
        """Whether some step ``<= t`` is known to have ended every episode (never waits)."""
        while self.seen <= t and self._arrived(self.seen, t):
            if self.view[self.seen]:
                return True
            self.seen += 1
        return False

    def _arrived(self, step: int, t: int) -> bool:
        if self.lag is not None:
            return t - step >= self.lag
        return not self.cuda or self.events[step].query()

    def settle(self, t: int) -> int:
        """The step at which every episode had ended, after the loop stopped at step ``t``.

        Waits for the flags still on their way (the rollout's one wait) and sets the random state
        back to just after that step when the loop ran past it.
        """
        if self.cuda:
            self.events[t].synchronize()
        end = self.seen + int(np.argmax(self.view[self.seen : t + 1]))  # the first True flag
        if end < t:
            state = self.rng_states[end]
            th.cuda.set_rng_state(state, self.device) if self.cuda else th.set_rng_state(state)
        return end


def decode_attention_mask(config: Any, mask: th.Tensor) -> th.Tensor:
    """The attention mask of a one-token decode step, as the model's attention takes it. ``(N, S) -> ...``.

    Given a 2-D mask, transformers asks the device whether any row has padding before each forward
    (to skip the mask when none has): a host sync per token. SDPA and eager attention are handed
    the 4-D mask they would build, ``(N, 1, 1, S)``; for one query the causal part is empty, so it
    is the padding mask alone. Other attention kernels get the 2-D mask.
    """
    kind = getattr(config, "_attn_implementation", None)
    if kind == "sdpa":
        return mask[:, None, None, :].bool()
    if kind == "eager":
        floor = th.finfo(th.float32).min
        return th.zeros(mask.shape, device=mask.device).masked_fill(mask == 0, floor)[:, None, None, :]
    return mask


@dataclass
class _Steps:
    """What the lockstep loop records per env and step, all ``(N, T)`` on the device."""

    tokens: th.Tensor  # the actions taken (pad where an env had finished)
    actions: th.Tensor  # the sampled tokens, finished envs included (SB3's ``actions`` local)
    step_mask: th.Tensor
    log_probs: th.Tensor
    values: th.Tensor
    last: int = 0  # the step at which every episode had ended
    allowed: th.Tensor | None = None  # (N, T, V) the masker's allowed tokens, when there is one


class _CausalSteps:
    """The KV-cache forward passes of a causal LM: one prefill of the prompts, then one token per step.

    With ``group_size = k > 1``, when the ``k`` consecutive rows of every group hold the same prompt (a
    grouped env: checked, one host sync), each prompt is encoded once and its cache copied to the
    group's rows: the same numbers for ``1/k`` of the prefill.
    """

    def __init__(self, trunk: nn.Module, venv: Any, group_size: int = 1) -> None:
        prompt_mask = venv.attention_mask[:, : venv.prompt_length]
        start = padding_columns(prompt_mask)  # the batch keeps the env's width; only the cache is narrower
        self.trunk, self.ids, self.mask = trunk, venv.input_ids[:, start : venv.prompt_length], prompt_mask[:, start:]
        self.padded = not bool(self.mask.all())  # one sync per rollout: without padding the decode steps need no mask
        self.group_size = group_size
        self.cache: Any = None

    def _shared_prompts(self) -> bool:
        n, k = self.ids.shape[0], self.group_size
        if k < 2 or n % k:
            return False
        groups = self.ids.view(n // k, k, -1)
        return bool((groups == groups[:, :1]).all())

    def first(self) -> th.Tensor:
        """Prefill the prompts; hidden state at each row's last prompt token. ``-> (N, H)``."""
        k = self.group_size if self._shared_prompts() else 1
        rows = slice(None, None, k)
        mask = self.mask[rows]
        out = self.trunk(input_ids=self.ids[rows], attention_mask=mask, position_ids=position_ids(mask), use_cache=True)
        self.cache, self.next_position = out[_CACHE], self.mask.sum(-1, keepdim=True)  # (N, 1)
        hidden = out.last_hidden_state[:, -1]
        if k > 1:
            self.cache.batch_repeat_interleave(k)
            hidden = hidden.repeat_interleave(k, 0)
        return hidden

    def step(self, tokens: th.Tensor) -> th.Tensor:
        """Feed one token per row (``(N, 1)``); hidden state after it. ``-> (N, H)``."""
        self.mask = th.cat([self.mask, th.ones_like(self.mask[:, :1])], dim=1)
        mask = decode_attention_mask(self.trunk.config, self.mask) if self.padded else None
        out = self.trunk(input_ids=tokens, position_ids=self.next_position, use_cache=True, attention_mask=mask,
                         **{_CACHE: self.cache})
        self.cache, self.next_position = out[_CACHE], self.next_position + 1
        return out.last_hidden_state[:, -1]


def _forward_steps(trunk: nn.Module, venv: Any, group_size: int = 1) -> Any:
    """The decode's forward passes of ``trunk``: :class:`_CausalSteps`, or for an encoder-decoder
    :class:`agents.seq2seq.DecoderSteps` (the encoder once, then the decoder with its KV cache)."""
    if not is_seq2seq(trunk):
        return _CausalSteps(trunk, venv, group_size)
    start = getattr(venv.layout, "decoder_start_token_id", None)
    if start != start_token(trunk):
        raise ValueError(f"the env starts the decoder from token {start!r} (layout={venv.layout.name!r}) but the "
                         f"{trunk.config.model_type} model's decoder_start_token_id is {start_token(trunk)}: make the "
                         "env with the model's tokenizer folder and layout='seq2seq' (or 'auto')")
    return DecoderSteps(trunk, venv.input_ids[:, : venv.prompt_length], venv.attention_mask[:, : venv.prompt_length],
                        lambda mask: decode_attention_mask(trunk.config, mask))


def _decode(policy: TransformerPolicy, venv: Any, check_lag: int | None, masker: ActionMasker | None = None,
            share_prefill: bool = True) -> _Steps:
    """Prefill the prompts, then sample one token per env per step with a KV cache until all finish.

    No host sync per token: sampling skips argument checks, the env's transition stays on the device,
    and the end of the rollout is watched by :class:`EndWatch`. With a ``masker`` its trunk decodes in
    lockstep (its own cache) and each step samples only among the tokens it allows (NLPO).
    """
    n, horizon, device = venv.num_envs, venv.max_new_tokens, venv.device
    group_size = getattr(venv, "group_size", 1) if share_prefill else 1
    zeros = th.zeros((n, horizon), device=device)
    steps = _Steps(th.full((n, horizon), venv.pad_token_id, dtype=th.long, device=device),
                   th.zeros((n, horizon), dtype=th.long, device=device),
                   th.zeros((n, horizon), dtype=th.bool, device=device), zeros, zeros.clone())
    shared_critic = policy.critic_trunk is None
    trunks = [policy.lm.base_model] if masker is None else [policy.lm.base_model, masker.trunk]  # the mask policy's too
    forwards = [_forward_steps(trunk, venv, group_size) for trunk in trunks]
    with policy.autocast():
        hiddens = [forward.first() for forward in forwards]  # (N, H) each
    if masker is not None:
        steps.allowed = th.ones((n, horizon, policy.n_actions), dtype=th.bool, device=device)  # (N, T, V)
    watch = EndWatch(device, horizon, check_lag)
    for t in range(horizon):
        hidden = hiddens[0]
        logits = policy.logits_from_hidden(hidden)  # (N, V)
        if masker is not None:
            steps.allowed[:, t] = masker.allowed(hiddens[1])
            logits = logits.masked_fill(~steps.allowed[:, t], th.finfo(logits.dtype).min)
        actions, log_probs = sample_with_log_probs(logits)  # (N,), (N,)
        if shared_critic:
            steps.values[:, t] = policy.values_from_hidden(hidden).squeeze(-1).float()
        active, _, _ = venv.apply_actions(actions)
        steps.tokens[:, t] = th.where(active, actions, venv.pad_token_id)
        steps.actions[:, t], steps.step_mask[:, t], steps.log_probs[:, t] = actions, active, log_probs.float()
        watch.record(t, venv.finished)
        if t == horizon - 1 or watch.ended(t):
            break
        with policy.autocast():
            hiddens = [forward.step(steps.tokens[:, t : t + 1]) for forward in forwards]
    steps.last = watch.settle(t)
    return steps


@th.no_grad()
def generate_episodes(policy: TransformerPolicy, venv: Any, on_step: StepHook | None = None, *,
                      masker: ActionMasker | None = None, share_prefill: bool = True,
                      check_lag: int | None = None) -> EpisodeBatch | None:
    """Run one episode in each of the ``N`` envs of a TokenVecEnv, all in lockstep.

    One prefill forward of the prompts (without the columns that are padding in every row), then
    one forward of ``N`` new tokens per step with a KV cache. Envs that finished early keep
    receiving tokens (ignored by the env) until all are done. The log-prob of each action and
    the value of each state are recorded from the logits and hidden states the sampling computes
    anyway (no second pass, unless the policy :meth:`~TransformerPolicy.recomputes_log_probs`);
    with a separate critic trunk the values are filled in afterwards by :func:`critic_values`.

    The device is not stopped per token: the rewards are paid after the loop
    (:meth:`TokenVecEnv.score_rollout`: in terminal mode one batched reward call for all the
    episodes; in dense mode one call per step on the prefixes, as the env pays them), and
    ``on_step`` is then called once per step, in order, with that step's locals. A rollout costs
    a handful of host syncs whatever its length (tests/test_rollout_syncs.py).

    Args:
        policy: The policy that samples.
        venv: A :class:`textgym.vector.TokenVecEnv`.
        on_step: Called once per lockstep step with SB3's per-step locals (``new_obs``,
            ``rewards``, ``dones``, ``infos``, ``actions``, ``values``, ``log_probs``); when it
            returns False no later step is reported and ``None`` is returned.
        masker: Restricts each step's sampling to the tokens it allows (NLPO's top-p mask); the masks
            are kept in the batch (``allowed``) so that the update scores the same distributions.
        share_prefill: With groups (``venv.group_size > 1``), encode each prompt once for its ``k`` envs
            (see :class:`_CausalSteps`); False encodes every row (benchmarks compare the two).
        check_lag: See :class:`EndWatch` (tests).
    """
    venv.reset_all()
    prompt_ids = venv.input_ids[:, : venv.prompt_length].clone()  # (N, P)
    prompt_mask = venv.attention_mask[:, : venv.prompt_length].clone()
    steps = _decode(policy, venv, check_lag, masker, share_prefill)
    if steps.allowed is not None:  # steps after an episode's end allow everything: their pad token scores finitely
        steps.allowed |= ~steps.step_mask[..., None]
    step_mask = steps.step_mask.cpu().numpy()  # (N, T)
    raw, finals = venv.score_rollout(step_mask)
    # The one place the fast path's rewards may be rescaled (a VecNormalize the env stands in for); infos keep raw ones.
    normalizer = getattr(venv, "reward_normalizer", None)
    rewards = raw if normalizer is None else normalizer(raw, step_mask)
    batch = EpisodeBatch(prompt_ids, prompt_mask, steps.tokens, steps.step_mask,
                         th.as_tensor(rewards, device=venv.device), infos=[i for f in finals for i in f.values()])
    if normalizer is not None:
        batch.raw_rewards = th.as_tensor(raw, device=venv.device)
    batch.log_probs, batch.values = steps.log_probs * steps.step_mask, steps.values * steps.step_mask
    batch.allowed = steps.allowed
    if policy.recomputes_log_probs():
        recompute_log_probs(policy, batch)
    if on_step is not None and not _report_steps(venv, steps, step_mask, (rewards, raw), finals, on_step):
        return None
    return batch


def _report_steps(venv: Any, steps: _Steps, step_mask: np.ndarray, rewards: tuple[np.ndarray, np.ndarray],
                  finals: list[dict[int, dict]], on_step: StepHook) -> bool:
    """Call ``on_step`` for each step of a finished rollout with the locals SB3's loop would have had then.

    ``rewards``: ``(paid, raw)``, each ``(N, T)``: the rewards as trained on (``rewards`` local) and as the env
    paid them (the episode returns in ``infos``), which differ only under reward normalization."""
    rewards, raw = rewards
    ids, mask = venv.input_ids.cpu().numpy(), venv.attention_mask.cpu().numpy()  # (N, L): the final rows
    final_rows = venv.as_observation(ids, mask)
    tokens, actions = steps.tokens.cpu().numpy(), steps.actions.cpu().numpy()
    ends = step_mask.sum(1) - 1  # (N,)
    truncated = tokens[np.arange(len(ends)), ends] != venv.eos_token_id  # (N,) how each episode ended
    returns, lengths, paid = np.zeros(len(ends)), np.zeros(len(ends), dtype=np.int64), np.zeros(len(ends))

    def observations(t: int) -> dict[str, np.ndarray]:  # the rows after step t: later columns blanked
        later = slice(venv.prompt_length + t + 1, None)
        step_ids, step_mask = ids.copy(), mask.copy()
        step_ids[:, later], step_mask[:, later] = venv.pad_token_id, 0
        return venv.as_observation(step_ids, step_mask)

    for t in range(steps.last + 1):
        returns += raw[:, t]
        paid += rewards[:, t]
        lengths += step_mask[:, t]
        step_locals = {"new_obs": StepObservations(lambda t=t: observations(t), tuple(final_rows)), "rewards": rewards[:, t],
                       "dones": ends == t, "infos": venv.step_infos(finals[t], truncated, (returns, lengths, paid), final_rows),
                       "actions": actions[:, t], "values": steps.values[:, t : t + 1],
                       "log_probs": steps.log_probs[:, t]}
        if not on_step(step_locals):
            return False
    return True


def recompute_log_probs(policy: TransformerPolicy, batch: EpisodeBatch, max_elements: int = 2**27) -> None:
    """Replace ``batch``'s sampled log-probs (and shared-critic values) by a teacher-forced pass's.

    The update's own computation, so the PPO ratio starts at 1 even where the KV-cache decode uses
    other kernels. Costs one forward pass without gradients over the rollout, in row chunks whose
    ``(e, T, V)`` logits stay under ``max_elements``.
    """
    horizon, vocab = batch.tokens.shape[1], policy.n_actions
    rows = max(1, max_elements // (horizon * vocab))
    for begin in range(0, batch.num_episodes, rows):
        chunk = slice(begin, begin + rows)
        log_probs, values, _ = evaluate_episodes(policy, batch, chunk)
        mask = batch.step_mask[chunk]
        batch.log_probs[chunk] = log_probs.float() * mask
        if policy.critic_trunk is None:
            batch.values[chunk] = values.float() * mask


# Under bf16 a row's results depend on where its tokens fall in the kernels' vector lanes and blocks
# (any change before a bf16 rounding can move the result by one bf16 step, 0.4 %). Dropping padding
# columns only in multiples of 64 keeps every token in place, so a row gets the same log-probs in
# any minibatch (bitwise on the CPU: tests/test_logprobs.py).
BF16_COLUMN_ALIGN = 64


def column_align(policy: TransformerPolicy) -> int:
    """The multiple in which teacher-forced passes drop padding columns (see :data:`BF16_COLUMN_ALIGN`)."""
    return BF16_COLUMN_ALIGN if policy.uses_bf16() else 1


def step_hidden(trunk: nn.Module, batch: EpisodeBatch, rows: Any = slice(None), align: int = 1) -> th.Tensor:
    """Hidden state before each action, from one teacher-forced pass. ``-> (e, T, H)``.

    The state before action ``t`` is the prompt plus actions ``< t``: position ``P - 1 + t``. Prompt
    columns that are padding in every row of ``rows`` are left out of the pass (same results), in
    multiples of ``align``.
    """
    if is_seq2seq(trunk):  # the encoder over the sources, the decoder over start + actions
        return seq2seq_step_hidden(trunk, batch, rows)
    ids, mask = batch.sequences(rows)
    prompt_len = batch.prompt_ids.shape[1]
    start = padding_columns(mask[:, :prompt_len]) // align * align
    ids, mask = ids[:, start:-1], mask[:, start:-1]  # the last action is never an input
    hidden = trunk(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).last_hidden_state
    return hidden[:, prompt_len - start - 1 :]


def evaluate_episodes(policy: TransformerPolicy, batch: EpisodeBatch, rows: Any = slice(None), with_values: bool = True):
    """Log-probs, values and entropies of every action of the episodes ``rows``, each ``(e, T)`` (values None
    when not ``with_values``: critic-free algorithms run no critic)."""
    with policy.autocast():
        actor = step_hidden(policy.lm.base_model, batch, rows, column_align(policy))  # (e, T, H)
        if not with_values:
            critic = None
        else:
            critic = actor if policy.critic_trunk is None else step_hidden(policy.critic_trunk, batch, rows,
                                                                              column_align(policy))
    logits = policy.logits_from_hidden(actor)  # (e, T, V) fp32: the log-softmax runs in fp32
    if batch.allowed is not None:  # the rollout's action masks (NLPO): the same distributions as sampled
        logits = logits.masked_fill(~batch.allowed[rows], th.finfo(logits.dtype).min)
    log_probs, entropy = log_probs_and_entropy(logits, batch.tokens[rows])  # keeps only the logits for backward
    policy.record_entropy(entropy, batch.step_mask[rows])
    values = None if critic is None else policy.values_from_hidden(critic).squeeze(-1)
    return log_probs, values, entropy


@th.no_grad()
def critic_values(policy: TransformerPolicy, batch: EpisodeBatch, rows: Any = slice(None)) -> th.Tensor:
    """Values of every state from the separate critic trunk, one teacher-forced pass. ``-> (e, T)``."""
    with policy.autocast():
        hidden = step_hidden(policy.critic_trunk, batch, rows, column_align(policy))  # (e, T, H)
    return policy.values_from_hidden(hidden).squeeze(-1).float()


def reference_log_probs(policy: TransformerPolicy, batch: EpisodeBatch, rows: Any = slice(None)) -> th.Tensor:
    """Log-probs of the actions under the policy's frozen reference, one pass per batch. ``-> (e, T)``."""
    with policy.reference() as reference:
        with policy.autocast():
            hidden = step_hidden(reference.base_model, batch, rows, column_align(policy))
        return policy.reference_log_probs_from_hidden(reference, hidden, batch.tokens[rows])
