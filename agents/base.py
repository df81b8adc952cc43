"""What agents.PPO and agents.A2C add to SB3: text-sized defaults, a frozen reference, the KL penalty,
text metrics, and the fast path (whole-episode KV-cache rollouts) as a rollout strategy SB3's loop drives."""

from __future__ import annotations

import dataclasses
import inspect
import os
import warnings
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from agents.buffers import EpisodeRolloutBuffer, KLPenaltyRolloutBuffer
from agents.checkpoints import check_agent_zip
from agents.config import check_algo_args
from agents.envs import make_text_env, wrap_env
from agents.kl import make_kl_controller
from agents.policies import TransformerPolicy
from agents.rollout import critic_values, generate_episodes, reference_log_probs
from textgym.io import atomic_file
from textgym.threads import check_threads, set_threads
from textgym.vector import TokenVecEnv

_TEXT_ARGS = ("kl_coef", "kl_target", "kl_horizon")


class KLStats:
    """Per-token KL values of one rollout, and their sums per finished episode."""

    def __init__(self, n_envs: int) -> None:
        self.running = np.zeros(n_envs)
        self.tokens: list[float] = []
        self.episodes: list[float] = []

    def add(self, kl: np.ndarray, episode_start: np.ndarray) -> None:
        for i in np.flatnonzero(episode_start):
            self.episodes.append(float(self.running[i]))
            self.running[i] = 0.0
        self.running += kl
        self.tokens.extend(kl.tolist())

    def pop(self) -> tuple[float | None, float | None]:
        """(mean per-token KL, mean per-episode KL) since the last pop; ``None`` where nothing was seen."""
        tok = float(np.mean(self.tokens)) if self.tokens else None
        ep = float(np.mean(self.episodes)) if self.episodes else None
        self.tokens, self.episodes = [], []
        return tok, ep


class TextAlgorithmMixin:
    """Mixed into SB3's PPO / A2C. The text parts are active only with a :class:`TransformerPolicy`.

    Adds: defaults taken from :attr:`config_class` (the ``textgym train`` config, one source of
    truth), an env id / TextEnv / DummyVecEnv of TextEnvs turned into the fast path's TokenVecEnv,
    the policy's frozen reference (the initial LM: a frozen copy saved with the policy, or with LoRA
    the same LM with its adapters disabled), the per-token penalty
    ``-kl_coef * (log pi - log pi_ref)`` on every reward (fixed or adaptive ``kl_coef``), and logs of
    ``kl``, ``kl_coef``, ``entropy``, skipped non-finite updates and the env's task metrics.

    Args:
        policy: ``"TransformerPolicy"`` (or the class), or any SB3 policy.
        env: An env id (``"textgym/CommonGen-v0"``), an env, or a VecEnv. With a TransformerPolicy a
            TokenVecEnv, a TextEnv or a DummyVecEnv of TextEnvs of one task runs on the fast path.
        *args: SB3's positional arguments (``learning_rate``, ``n_steps``, ...).
        kl_coef: Weight of the per-token penalty ``log pi - log pi_ref`` subtracted from rewards.
        kl_target: If set, ``kl_coef`` adapts so the per-episode KL tracks this value (Ziegler et
            al. 2019). Not SB3's ``target_kl``, which still stops an update's epochs early.
        kl_horizon: Horizon of the adaptive controller, in environment steps.
        n_envs: Parallel episodes when ``env`` is an id.
        env_kwargs: ``gym.make`` keyword arguments when ``env`` is an id.
        fast_path: False runs SB3's own per-step rollouts (one forward per token) instead.
        threads: If set, ``learn`` calls ``torch.set_num_threads(threads)`` (and says so when
            ``verbose``); ``None`` leaves torch's thread count as the caller set it.
        **kwargs: Everything the SB3 algorithm accepts.
    """

    config_class: ClassVar[type]  # the textgym train section whose fields are the defaults
    policy: Any

    def __init__(self, policy: Any, env: Any, *args: Any, kl_coef: float | None = None, kl_target: float | None = None,
                 kl_horizon: int = 10_000, n_envs: int = 1, env_kwargs: dict[str, Any] | None = None,
                 fast_path: bool = True, threads: int | None = None, **kwargs: Any) -> None:
        sb3_init = super().__init__  # type: ignore[misc]
        names = [p for p in inspect.signature(sb3_init).parameters if p not in ("policy", "env")]
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got multiple values for argument {name!r}")
            kwargs[name] = value
        text_policy = self._is_text_policy_class(policy)
        defaults = {f.name: f.default for f in dataclasses.fields(self.config_class)} if text_policy else {}
        kl_coef = defaults.get("kl_coef", 0.05) if kl_coef is None else kl_coef
        kl_target = defaults.get("kl_target") if kl_target is None else kl_target
        for name, value in defaults.items():
            if name not in _TEXT_ARGS:
                kwargs.setdefault(name, value)
        self.kl_controller = make_kl_controller(kl_coef, kl_target, kl_horizon)
        self.metric_buffer: dict[str, deque] = defaultdict(lambda: deque(maxlen=100))
        self.fast_path, self.threads = fast_path, check_threads(threads)
        if text_policy:
            env = make_text_env(env, n_envs=n_envs, env_kwargs=env_kwargs, fast_path=fast_path,
                                device=kwargs.get("device", "auto"), seed=kwargs.get("seed"))
        elif isinstance(env, str) and (n_envs != 1 or env_kwargs):
            from stable_baselines3.common.env_util import make_vec_env

            env = make_vec_env(env, n_envs=n_envs, seed=kwargs.get("seed"), env_kwargs=env_kwargs)
        with warnings.catch_warnings():
            if isinstance(env, TokenVecEnv):  # SB3's per-step minibatch arithmetic does not apply to episodes
                warnings.filterwarnings("ignore", message="You have specified a mini-batch size")
            sb3_init(policy, env, **kwargs)

    @property
    def reference(self) -> th.nn.Module | None:
        """The frozen reference copy of the LM (``None`` with LoRA: see ``policy.reference()``)."""
        return getattr(getattr(self, "policy", None), "reference_lm", None)

    @property
    def kl_coef(self) -> float:
        return self.kl_controller.value

    def _is_text_policy_class(self, policy: Any) -> bool:
        if isinstance(policy, str):
            policy = self.policy_aliases.get(policy)  # type: ignore[attr-defined]
        return isinstance(policy, type) and issubclass(policy, TransformerPolicy)

    def _is_text_policy(self) -> bool:
        return self._is_text_policy_class(self.policy_class)  # type: ignore[attr-defined]

    @staticmethod
    def _wrap_env(env: Any, verbose: int = 0, monitor_wrapper: bool = True) -> VecEnv:
        return wrap_env(env, verbose, monitor_wrapper)

    def uses_fast_path(self) -> bool:
        """True when rollouts are whole-episode KV-cache batches (the rollout buffer holds episodes)."""
        return isinstance(getattr(self, "rollout_buffer", None), EpisodeRolloutBuffer)

    def _setup_model(self) -> None:
        check_algo_args(self)
        if self._is_text_policy() and self.rollout_buffer_class in (None, EpisodeRolloutBuffer, KLPenaltyRolloutBuffer):
            self.rollout_buffer_class = EpisodeRolloutBuffer if isinstance(self.env, TokenVecEnv) else KLPenaltyRolloutBuffer
        super()._setup_model()  # type: ignore[misc]
        if not self._is_text_policy():
            return
        self.policy.init_reference()  # the initial policy, frozen (with LoRA: adapters disabled)
        self.kl_stats = KLStats(self.n_envs)
        if isinstance(self.rollout_buffer, KLPenaltyRolloutBuffer):
            self.rollout_buffer.penalty = self._kl_penalty

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        """SB3's ``set_env``; with a TransformerPolicy, TextEnvs are batched for the fast path as in ``__init__``."""
        if self._is_text_policy() and getattr(self, "fast_path", True):
            env = make_text_env(env, n_envs=1, env_kwargs=None, fast_path=True, device=self.device, seed=None)
        super().set_env(env, force_reset)  # type: ignore[misc]
        if self._is_text_policy() and isinstance(self.env, TokenVecEnv) != self.uses_fast_path():
            self._rebuild_rollout_buffer()

    def _rebuild_rollout_buffer(self) -> None:
        """A rollout buffer of the kind the current env needs (as SB3's ``_setup_model`` builds it)."""
        self.rollout_buffer_class = EpisodeRolloutBuffer if isinstance(self.env, TokenVecEnv) else KLPenaltyRolloutBuffer
        self.rollout_buffer = self.rollout_buffer_class(
            self.n_steps, self.observation_space, self.action_space, device=self.device, gamma=self.gamma,
            gae_lambda=self.gae_lambda, n_envs=self.n_envs, **self.rollout_buffer_kwargs)
        self.kl_stats = KLStats(self.n_envs)
        if isinstance(self.rollout_buffer, KLPenaltyRolloutBuffer):
            self.rollout_buffer.penalty = self._kl_penalty

    def learn(self, *args: Any, **kwargs: Any):
        """SB3's ``learn``; with ``threads`` set, torch first gets that many CPU threads (else they are left alone)."""
        threads = getattr(self, "threads", None)
        if threads is not None:
            set_threads(threads)
            if self.verbose >= 1:  # type: ignore[attr-defined]
                print(f"Using {threads} CPU thread(s) (threads={threads})")
        return super().learn(*args, **kwargs)  # type: ignore[misc]

    # --- rollouts ------------------------------------------------------------------------
    def _kl_penalty(self, obs: dict, actions: np.ndarray, log_prob: th.Tensor, episode_start: np.ndarray) -> np.ndarray:
        obs_t = obs_as_tensor(obs, self.device)
        ref = self.policy.reference_log_prob(obs_t, th.as_tensor(actions, device=self.device))
        kl = (log_prob.detach().float().flatten() - ref.float()).cpu().numpy()  # (n_envs,)
        self.kl_stats.add(kl, episode_start)
        return (self.kl_coef * kl).astype(np.float32)

    def collect_rollouts(self, env: Any, callback: Any, rollout_buffer: Any, n_rollout_steps: int) -> bool:
        """SB3's rollout loop; with an :class:`EpisodeRolloutBuffer`, whole episodes of the N envs in lockstep.

        Callbacks see SB3's contract either way: ``on_step()`` once per step of the N envs, with
        ``num_timesteps`` advanced by ``num_envs`` and ``new_obs``, ``rewards``, ``dones``, ``infos`` in
        ``locals``; ``on_rollout_start/end`` around it; ``on_step()`` returning False stops ``learn``.
        On the fast path envs that finished wait (and count) until the slowest one ends.
        """
        if not isinstance(rollout_buffer, EpisodeRolloutBuffer):
            if not super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps):  # type: ignore[misc]
                return False
            self._record_rollout_stats()
            return True
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        callback.on_rollout_start()
        n_steps = 0

        def on_step(step_locals: dict[str, Any]) -> bool:
            nonlocal n_steps
            self.num_timesteps += env.num_envs
            callback.update_locals({"self": self, "env": env, "callback": callback, "rollout_buffer": rollout_buffer,
                                    "n_rollout_steps": n_rollout_steps, "n_steps": n_steps, **step_locals})
            if not callback.on_step():
                return False
            self._update_info_buffer(step_locals["infos"], step_locals["dones"])
            n_steps += 1
            return True

        while n_steps < n_rollout_steps:
            batch = generate_episodes(self.policy, env, on_step)
            if batch is None:
                return False
            rollout_buffer.add_episodes(batch)
        self._score_episodes(rollout_buffer)
        self._record_rollout_stats()
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    @th.no_grad()
    def _score_episodes(self, buffer: EpisodeRolloutBuffer) -> None:
        """Reference log-probs (one teacher-forced pass per chunk), KL-penalised rewards and GAE."""
        batch = buffer.episodes
        chunks = list(buffer.row_chunks(getattr(self, "batch_size", batch.num_steps)))
        batch.ref_log_probs = th.cat([reference_log_probs(self.policy, batch, rows).float()
                                      for rows in chunks])
        if self.policy.critic_trunk is not None:
            batch.values = th.cat([critic_values(self.policy, batch, rows) for rows in chunks]) * batch.step_mask
        buffer.compute_returns_and_advantage(kl_coef=self.kl_coef)
        kl = (batch.log_probs - batch.ref_log_probs) * batch.step_mask  # (E, T)
        self.kl_stats.tokens.extend(kl[batch.step_mask].tolist())
        self.kl_stats.episodes.extend(kl.sum(-1).tolist())

    def _record_rollout_stats(self) -> None:
        """Log this rollout's KL and task metrics (shown in the table dumped before ``train``); adapt ``kl_coef``."""
        for name, values in self.metric_buffer.items():
            if values:
                self.logger.record(f"rollout/{name}", float(np.mean(values)))
        if not self._is_text_policy():
            return
        tok_kl, ep_kl = self.kl_stats.pop()
        if tok_kl is not None:
            self.logger.record("rollout/kl_per_token", tok_kl)
        if ep_kl is not None:
            self.logger.record("rollout/kl", ep_kl)
            self.kl_controller.update(ep_kl, self.n_steps * self.n_envs)
        self.logger.record("train/kl_coef", self.kl_coef)

    def _update_info_buffer(self, infos: list[dict[str, Any]], dones: np.ndarray | None = None) -> None:
        super()._update_info_buffer(infos, dones)  # type: ignore[misc]
        for info in infos:
            for name, value in info.get("metrics", {}).items():
                self.metric_buffer[name].append(float(value))

    # --- updates -------------------------------------------------------------------------
    def train_episodes(self) -> None:
        """The algorithm's update on the episode buffer (PPO and A2C define it)."""
        raise NotImplementedError

    def train(self) -> None:
        if isinstance(self.rollout_buffer, EpisodeRolloutBuffer):
            self.train_episodes()
        else:
            super().train()  # type: ignore[misc]
        if self._is_text_policy():
            entropy = self.policy.pop_mean_entropy()
            if entropy is not None:
                self.logger.record("train/entropy", entropy)
            self.logger.record("train/skipped_updates", self.policy.skipped_updates)

    # --- saving --------------------------------------------------------------------------
    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "kl_stats", "metric_buffer"]  # type: ignore[misc]

    @classmethod
    def load(cls, path: Any, env: Any = None, device: Any = "auto", custom_objects: Any = None, **kwargs: Any):
        """SB3's ``load``, with the file checked first (see :func:`agents.checkpoints.check_agent_zip`)."""
        if isinstance(path, (str, os.PathLike)):
            path = check_agent_zip(path, custom_objects)
        return super().load(path, env=env, device=device, custom_objects=custom_objects, **kwargs)  # type: ignore[misc]

    def save(self, path: Any, exclude: Any = None, include: Any = None) -> None:
        """SB3's ``save``, written atomically: a crash mid-write never leaves a half checkpoint."""
        if not isinstance(path, (str, os.PathLike)):
            return super().save(path, exclude=exclude, include=include)  # type: ignore[misc]
        final = Path(path)
        if final.suffix == "":
            final = final.with_suffix(".zip")  # SB3's own naming rule
        with atomic_file(final, "wb") as handle:
            super().save(handle, exclude=exclude, include=include)  # type: ignore[misc]
