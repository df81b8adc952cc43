"""TokenVecEnv: N text environments held as tensors on one device.

The prompts are tokenized once per sample, the generated tokens are written in place, EOS and
length flags are tensors, and the finished texts are decoded and scored in one batched reward call
per step. It implements SB3's ``VecEnv`` (auto-reset in the same step, ``terminal_observation`` in
``info``); :class:`textgym.gym_vector.GymTokenVectorEnv` exposes the same engine as a Gymnasium ``VectorEnv``.

Each of the N environments behaves exactly like a :class:`textgym.core.TextEnv` seeded with
``seed + i`` (tested): same samples in the same order, same observations, rewards and infos.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from textgym.devices import resolve_device
from textgym.fieldtypes import check_arg_types
from textgym.core import (SampleOrder, TextEnv, as_token_ids, check_reset_options, check_sample_index, check_seed,
                          episode_flags, sample_references)



def per_env(values: Sequence[Any], name: str, num_envs: int) -> Sequence[Any]:
    """``values`` if it holds one entry per env, else ValueError naming ``name`` and both lengths."""
    if len(values) != num_envs:
        raise ValueError(f"{name} must hold one entry per env: got {len(values)} for {num_envs} envs")
    return values

class TokenVecEnv(VecEnv):
    """N copies of a :class:`TextEnv`'s task as one batch of tensors.

    Args:
        env: A configured environment whose task, tokenizer, reward and lengths are used.
        num_envs: Number of parallel episodes.
        device: Where the token tensors live (``"auto"``, ``"cpu"``, ``"cuda"``, ...).

    Attributes:
        input_ids, attention_mask: ``(N, L)`` int64 tensors on ``device``: the stored rows (prompt, then
            generated tokens); the observations are these in the env's layout (:meth:`as_observation`).
        num_generated: ``(N,)`` tokens generated so far (EOS not counted).
        finished: ``(N,)`` bool, set when an episode ended and the env was not reset yet.
        episode_recorders: Called as ``recorder(i, info, episode_return, length)`` for each episode end
            that :meth:`step_infos` reports with episode statistics, in order (a later one may overwrite
            ``info["episode"]``): the bookkeeping of wrappers this env stands in for (``agents.envs``).
        reward_normalizer: ``None``, or ``(rewards (N, T), step_mask (N, T)) -> scaled rewards`` that the
            fast path applies to each rollout's rewards (a ``VecNormalize`` this env stands in for).
    """

    def __init__(self, env: TextEnv, num_envs: int, device: str | torch.device = "auto") -> None:
        check_arg_types(TokenVecEnv.__init__, {"num_envs": num_envs, "device": device})  # (env: unwrapped below)
        env = env.unwrapped if isinstance(env, gym.Env) else env
        if not isinstance(env, TextEnv):
            raise TypeError(f"TokenVecEnv needs a textgym TextEnv, got {type(env).__name__}")
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        self.env = env
        self.group_size = env.group_size
        if num_envs % self.group_size:
            raise ValueError(f"num_envs ({num_envs}) must be a multiple of group_size ({self.group_size}): "
                             "each group of consecutive envs shares one prompt")
        self.device = resolve_device(device)
        self.prompt_length, self.max_new_tokens = env.max_prompt_length, env.max_new_tokens
        self.eos_token_id, self.pad_token_id = env.eos_token_id, env.pad_token_id
        self.layout = env.layout
        self.render_mode = None
        n, length = num_envs, env.max_prompt_length + env.max_new_tokens
        self.input_ids = torch.full((n, length), self.pad_token_id, dtype=torch.long, device=self.device)
        self.attention_mask = torch.zeros((n, length), dtype=torch.long, device=self.device)
        self.num_generated = torch.zeros(n, dtype=torch.long, device=self.device)
        self.finished = torch.ones(n, dtype=torch.bool, device=self.device)
        self._rows = torch.arange(n, device=self.device)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._orders = [SampleOrder(len(env.samples)) for _ in range(n)]
        self._sample_index = [0] * n
        # Groups: env i's c-th episode takes the prompt its group's leader (env i - i % k) drew c-th.
        self._episode_count = [0] * n
        self._group_draws: list[dict[int, list[int]]] = [{} for _ in range(n // self.group_size)]
        self._last_score = np.zeros(n)
        self._prompt_cache: dict[int, tuple[torch.Tensor, str]] = {}
        self._actions: torch.Tensor | None = None
        self._started = False
        self._episode_starts = [0.0] * n  # time.perf_counter() at each env's last reset
        self.episode_recorders: list[Any] = []
        self.reward_normalizer: Any = None
        super().__init__(n, env.observation_space, env.action_space)

    # --- per-env episode starts ----------------------------------------------------------
    def prompt(self, sample_index: int) -> tuple[torch.Tensor, str]:
        """The prompt of sample ``sample_index`` as the envs show it: ``(P',)`` ids on the device
        (truncated, without padding; tokenized once per sample) and its text."""
        index = check_sample_index(sample_index, len(self.env.samples))
        if index not in self._prompt_cache:
            ids = self.env.prompt_encoder.encode(self.env.samples[index].source)
            self._prompt_cache[index] = (torch.tensor(ids, dtype=torch.long, device=self.device),
                                         self.env.tokenizer.decode(ids))
        return self._prompt_cache[index]

    def reset_env(self, i: int, seed: int | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start a new episode in env ``i``; returns its reset info (as ``TextEnv.reset``)."""
        if seed is not None or self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random(seed)
            self._orders[i].restart()
            if i % self.group_size == 0:  # a reseeded leader restarts its group's draws
                self._restart_group(i // self.group_size)
        check_reset_options(options)
        if options and "sample_index" in options:
            index = check_sample_index(options["sample_index"], len(self.env.samples))
        else:
            index = self._group_draw(i)
        ids, _ = self.prompt(index)
        self._sample_index[i] = index
        self.input_ids[i].fill_(self.pad_token_id)
        self.attention_mask[i].zero_()
        start = 0 if self.layout.seq2seq else self.prompt_length - len(ids)  # seq2seq: the source right-padded
        self.input_ids[i, start : start + len(ids)] = ids
        self.attention_mask[i, start : start + len(ids)] = 1
        self.num_generated[i] = 0
        self.finished[i] = False
        self._last_score[i] = 0.0
        self._started = True
        self._episode_starts[i] = time.perf_counter()
        return self._reset_info(i)

    def episode_start_time(self, i: int) -> float:
        """When env ``i``'s current (or last) episode began, in ``time.perf_counter()`` seconds."""
        return self._episode_starts[i]

    def _restart_group(self, group: int) -> None:
        k = self.group_size
        self._group_draws[group].clear()
        self._episode_count[group * k : (group + 1) * k] = [0] * k

    def _group_draw(self, i: int) -> int:
        """The sample of env ``i``'s next episode: drawn by its group's leader, shared by the group's ``k`` envs."""
        k, group = self.group_size, i // self.group_size
        leader, count, draws = group * k, self._episode_count[i], self._group_draws[group]
        if count not in draws:
            draws[count] = [self._orders[leader].next(self._rngs[leader]), k]
        index = draws[count][0]
        draws[count][1] -= 1
        if draws[count][1] == 0:  # every env of the group has taken it
            del draws[count]
        self._episode_count[i] += 1
        return index

    def _reset_info(self, i: int) -> dict[str, Any]:
        sample = self.env.samples[self._sample_index[i]]
        group = {"group": i // self.group_size} if self.group_size > 1 else {}
        return {"sample_id": sample.id, "source": sample.source, "prompt_text": self.prompt(self._sample_index[i])[1],
                "references": sample_references(sample), **group}

    def seed_next_reset(self, seeds: Sequence[int | None], options: Sequence[dict[str, Any] | None] | None = None) -> None:
        """Seeds (and reset options) per env for the next :meth:`reset`, as SB3's ``seed``/``set_options`` hold them.

        Args:
            seeds: One seed (or ``None``) per env.
            options: One options dict (or ``None``) per env; ``None``: no options.
        """
        options = [None] * self.num_envs if options is None else list(options)
        if len(seeds) != self.num_envs or len(options) != self.num_envs:
            raise ValueError(f"seed_next_reset needs one seed and one options entry per env ({self.num_envs}), "
                             f"got {len(seeds)} and {len(options)}")
        self._seeds, self._options = list(seeds), [dict(o) if o else {} for o in options]

    def seed(self, seed: int | Sequence[int | None] | None = None) -> Sequence[None | int]:
        """SB3's ``seed``: one int (``seed + i`` per env), or one seed per env (a list of ``num_envs``)."""
        if isinstance(seed, (list, tuple, np.ndarray)):
            self._seeds = self.seeds_per_env(seed)
            return self._seeds
        return super().seed(check_seed(seed))

    def seeds_per_env(self, seed: Any) -> list[int | None]:
        """The seed of each env for ``seed``: ``None``, one int (``seed + i``) or one per env, each checked (the
        argument named; both lengths for a list of the wrong length)."""
        if isinstance(seed, (list, tuple, np.ndarray)):
            return [check_seed(s, f"seed[{i}]") for i, s in enumerate(per_env(seed, "seed", self.num_envs))]
        first = check_seed(seed)
        return [None if first is None else first + i for i in range(self.num_envs)]

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        """SB3's ``set_options``: one dict for every env, or a list of ``num_envs`` dicts."""
        super().set_options(per_env(options, "options", self.num_envs) if isinstance(options, (list, tuple)) else options)

    def reset_all(self, seed: int | None = None) -> None:
        """Start a new episode in every env: seeds ``seed + i`` when given, else those :meth:`seed` (and
        :meth:`set_options`) left for the next reset, as :meth:`reset` (the fast path's rollouts reset here,
        so ``venv.seed(0)`` before one makes its prompts reproducible)."""
        seeds = self._seeds if seed is None else self.seeds_per_env(seed)
        for i in range(self.num_envs):
            self.reset_infos[i] = self.reset_env(i, seeds[i], self._options[i] or None)
        self._reset_seeds()
        self._reset_options()

    # --- the batched transition ------------------------------------------------------------
    def check_actions(self, actions: Any) -> torch.Tensor:
        """Validate a batch of token ids; returns them as a ``(N,)`` long tensor on the device.

        Accepts any integer dtype (NumPy arrays, lists, torch tensors on any device); refuses
        booleans, floats, strings and object arrays with a ``TypeError`` (see :func:`as_token_ids`).
        """
        if isinstance(actions, torch.Tensor):
            if actions.dtype == torch.bool or actions.dtype.is_floating_point or actions.dtype.is_complex:
                raise TypeError(f"actions must be integer token ids in [0, {self.env.vocab_size - 1}] "
                                f"(any integer dtype), got a tensor of dtype {actions.dtype}")
            if actions.numel() != self.num_envs:
                raise ValueError(f"actions must hold {self.num_envs} token id(s), got shape {tuple(actions.shape)}")
            tensor = actions.reshape(-1).to(device=self.device, dtype=torch.long)  # (N,)
            bad = (tensor < 0) | (tensor >= self.env.vocab_size)
            if bool(bad.any()):
                raise ValueError(f"action {int(tensor[bad][0])} is out of range: token ids are "
                                 f"0..{self.env.vocab_size - 1}")
            return tensor
        ids = as_token_ids(actions, self.num_envs, self.env.vocab_size)  # (N,) int64
        return torch.from_numpy(ids).to(self.device)

    def apply_actions(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Append one token to every unfinished env, on the device only (no host sync, no rewards).

        ``actions: (N,)`` long on the device. Returns ``(active, terminated, truncated)``, ``(N,)``
        bool tensors: which envs took this step and how those that ended now ended. The transition
        is TextEnv's own (:func:`episode_flags`); finished envs ignore their action.
        """
        active = ~self.finished  # (N,)
        is_eos, grown, truncated = episode_flags(actions, self.num_generated, self.eos_token_id, self.max_new_tokens)
        is_eos, truncated = is_eos & active, truncated & active  # (N,)
        column = (self.prompt_length + self.num_generated).clamp(max=self.input_ids.shape[1] - 1).unsqueeze(1)  # (N, 1)
        # Rows that did not act write back what they hold (a full-row scatter: no mask indexing, no sync).
        ids = torch.where(active, actions, self.input_ids.gather(1, column).squeeze(1))  # EOS is shown in the last obs
        mask = torch.where(active, 1, self.attention_mask.gather(1, column).squeeze(1))
        self.input_ids.scatter_(1, column, ids.unsqueeze(1))
        self.attention_mask.scatter_(1, column, mask.unsqueeze(1))
        self.num_generated = torch.where(active, grown, self.num_generated)
        self.finished |= is_eos | truncated
        return active, is_eos, truncated

    def advance(self, actions: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, dict[str, Any]]]:
        """:meth:`apply_actions`, then this step's rewards (one batched reward call).

        Returns ``(rewards, terminated, truncated, final_infos)`` as NumPy arrays of shape ``(N,)``
        and ``{env index: TextEnv-style final info}`` for the episodes that ended now. Finished envs
        get reward 0 until they are reset. The rewards are TextEnv's own (:meth:`TextEnv.score_step`).
        """
        active, is_eos, truncated = self.apply_actions(actions)
        flags = torch.stack([active, is_eos, truncated]).cpu().numpy()  # one copy to the host
        active_np, terminated_np, truncated_np = flags
        running = np.flatnonzero(active_np)
        rewards, final_infos = self._score(running, (terminated_np | truncated_np)[running],
                                           self.num_generated.cpu().numpy())
        return rewards, terminated_np, truncated_np, final_infos

    def score_rollout(self, step_mask: np.ndarray) -> tuple[np.ndarray, list[dict[int, dict[str, Any]]]]:
        """Rewards of a whole lockstep rollout driven by :meth:`apply_actions`, scored after it ended.

        The rewards are those :meth:`advance` would have paid step by step (same reward calls in
        dense mode; in terminal mode one batched call for all the episodes instead of one per step).

        Args:
            step_mask: ``(N, T)`` bool, which envs acted at each step since :meth:`reset_all`; every
                env must have finished.

        Returns:
            ``(rewards (N, T) float32, final infos)``, the latter a list of ``T`` dicts ``{env index:
            final info}`` of the episodes that ended at each step.
        """
        n, horizon = step_mask.shape
        ends = step_mask.sum(1) - 1  # (N,) the step at which each episode ended
        ids, counts = self.input_ids.cpu().numpy(), self.num_generated.cpu().numpy()  # (N, L), (N,)
        rewards = np.zeros((n, horizon), dtype=np.float32)
        finals: list[dict[int, dict[str, Any]]] = [{} for _ in range(horizon)]
        if self.env.reward_mode != "dense":  # nothing to pay before the end: one call for every episode
            running = np.flatnonzero(ends >= 0)
            step_rewards, infos = self._score(running, np.ones(len(running), dtype=bool), counts, ids)
            rewards[running, ends[running]] = step_rewards[running]
            for i in sorted(infos, key=lambda i: (ends[i], i)):
                finals[ends[i]][i] = infos[i]
            return rewards, finals
        for t in range(int(ends.max()) + 1):  # dense: each step's prefixes, as advance() scores them
            running = np.flatnonzero(step_mask[:, t])
            rewards[:, t], finals[t] = self._score(running, ends[running] == t, np.where(ends == t, counts, t + 1), ids)
        return rewards, finals

    def _score(self, running: np.ndarray, done: np.ndarray, counts: np.ndarray, ids: np.ndarray | None = None
               ) -> tuple[np.ndarray, dict[int, dict[str, Any]]]:
        """Rewards ``(N,)`` and final infos of one step of the envs ``running``.

        ``done``: which of them ended at this step; ``counts: (N,)`` tokens each has generated by
        then; ``ids``: a host copy of the ``(N, L)`` tokens (default: read the rows from the device).
        """
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        final_infos: dict[int, dict[str, Any]] = {}
        if not len(running):
            return rewards, final_infos
        reset_infos = [self._reset_info(i) for i in running]
        step_rewards, last, finals = self.env.score_step(
            [r["prompt_text"] for r in reset_infos], lambda ks: self._texts(running[ks], counts, ids),
            [r["references"] for r in reset_infos], done, self._last_score[running])
        rewards[running], self._last_score[running] = step_rewards, last
        if finals:
            ended = running[list(finals)]
            for i, k, text in zip(ended, finals, self._texts(ended, counts, ids)):
                score, metrics = finals[k]
                final_infos[int(i)] = {**reset_infos[k], "generation": text, "num_tokens": int(counts[i]),
                                       "metrics": metrics, "score": score}
        return rewards, final_infos

    def _texts(self, envs: Sequence[int], counts: np.ndarray, ids: np.ndarray | None = None) -> list[str]:
        """The first ``counts[i]`` generated tokens of each env ``i`` in ``envs``, decoded."""
        start, envs = self.prompt_length, [int(i) for i in envs]
        width = max((int(counts[i]) for i in envs), default=0)
        source = (self.input_ids if ids is None else ids)[envs, start : start + width].tolist()  # (n, width)
        rows = [row[: int(counts[i])] for row, i in zip(source, envs)]
        return [t.strip() for t in self.env.tokenizer.batch_decode(rows, skip_special_tokens=True)]

    def step_infos(self, final_infos: dict[int, dict[str, Any]], truncated: np.ndarray,
                   episodes: tuple[np.ndarray, ...] | None = None,
                   rows: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
        """SB3-style infos of one step: ``{}`` for the envs still running; for those in ``final_infos``
        their final info plus ``terminal_observation`` (their rows now) and ``TimeLimit.truncated``.

        Args:
            final_infos: ``{env index: final info}`` of the episodes that ended at this step (updated in place).
            truncated: ``(N,)`` bool, which of them hit the length limit.
            episodes: ``(returns (N,), lengths (N,))``: also add SB3 Monitor's ``episode`` entry (and
                call :attr:`episode_recorders`); a third array ``(N,)``: the returns of the rescaled rewards,
                for the recorders whose ``sees_scaled_rewards`` is True (wrappers above a reward scaling).
            rows: A host copy of :meth:`observations` to take the terminal observations from
                (default: copy the ended rows from the device).
        """
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if final_infos:
            ended = list(final_infos)
            terminal = self.observations(ended) if rows is None else {k: v[ended] for k, v in rows.items()}
            for k, (i, info) in enumerate(final_infos.items()):
                if episodes is not None:
                    info["episode"] = {"r": float(episodes[0][i]), "l": int(episodes[1][i])}
                    for record in self.episode_recorders:
                        scaled = getattr(record, "sees_scaled_rewards", False) and len(episodes) > 2
                        record(i, info, float(episodes[2 if scaled else 0][i]), int(episodes[1][i]))
                info["terminal_observation"] = {key: value[k] for key, value in terminal.items()}
                info["TimeLimit.truncated"] = bool(truncated[i])
                infos[i] = info
        return infos

    def observations(self, envs: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        """The current observations as NumPy arrays, ``(N, L)`` (or the rows ``envs``)."""
        ids, mask = self.input_ids, self.attention_mask
        if envs is not None:
            ids, mask = ids[list(envs)], mask[list(envs)]
        return self.as_observation(ids.cpu().numpy(), mask.cpu().numpy())

    def as_observation(self, ids: Any, mask: Any) -> dict[str, Any]:
        """Stored ``(N, P + T)`` rows (NumPy or torch) as observations of the env's layout (see :mod:`textgym.layouts`)."""
        return self.layout.observation(ids, mask, self.prompt_length)

    # --- SB3 VecEnv interface ----------------------------------------------------------------
    def reset(self):
        self.reset_all()
        return self.observations()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self.check_actions(actions)

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.step_with_flags()
        return obs, rewards, terminated | truncated, infos

    def step_with_flags(self):
        """The queued step, keeping terminated and truncated apart: ``(obs, rewards, term, trunc, infos)``."""
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        rewards, terminated, truncated, final_infos = self.advance(self._actions)
        self._actions = None
        infos = self.step_infos(final_infos, truncated)
        for i in final_infos:
            self.reset_infos[i] = self.reset_env(i)
        return self.observations(), rewards, terminated, truncated, infos

    def close(self) -> None:
        self._prompt_cache.clear()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError("TokenVecEnv envs share one configuration: make a new TokenVecEnv to change it")

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        return [getattr(self.env, method_name)(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
