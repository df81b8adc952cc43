"""The base every text algorithm extends: text-sized defaults, a frozen reference, the KL penalty, text
metrics, the fast path (whole-episode KV-cache rollouts) as a rollout strategy SB3's loop drives, and the
shared update loop. An algorithm adds its loss (:meth:`TextAlgorithm.episode_loss`) and, where it
differs from GAE, its advantages (:meth:`TextAlgorithm.episode_advantages`)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import warnings
from collections import defaultdict, deque
from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3.common.save_util import recursive_getattr
from stable_baselines3.common.utils import explained_variance, obs_as_tensor

from agents import agent_zip
from agents.buffers import EpisodeBatch, EpisodeRolloutBuffer, KLPenaltyRolloutBuffer, compute_gae
from agents.checkpoints import check_agent_zip
from agents.envs import make_text_env, wrap_env
from agents.groups import episode_returns, group_mean_advantages, grouped, per_step
from agents.kl import KLStats, fluency_bonus, make_kl_controller, token_kl
from agents.policies import TransformerPolicy
from agents.reference import check_rebuilt_reference, reference_record, weights_fingerprint
from agents.rollout import critic_values, evaluate_episodes, generate_episodes, reference_log_probs
from agents.settings import TEXT_ARGS, OnPolicyConfig, check_algo_args, check_algo_kwargs, check_text_args
from textgym.devices import resolve_device
from textgym.fieldtypes import check_arg_types, check_call
from textgym.threads import check_threads, set_threads
from textgym.vector import TokenVecEnv


# The end of the error of anything that needs whole-episode rollouts (critic-free algorithms, NLPO, fluency_coef).
_NEEDS_FAST_PATH = ("it needs the fast path (an env id, a TextEnv, any SB3 VecEnv of TextEnvs, gym.make_vec or "
                    "textgym.make_vec), not SB3's per-step path")


class TextAlgorithm:
    """Mixed in before an SB3 on-policy algorithm (``class PPO(TextAlgorithm, stable_baselines3.PPO)``).

    Adds: defaults taken from :attr:`config_class` (the ``textgym train`` section, one source of
    truth), an env id / TextEnv / DummyVecEnv of TextEnvs turned into the fast path's TokenVecEnv,
    the policy's frozen reference (the initial LM: a frozen copy saved with the policy, or with LoRA
    the same LM with its adapters disabled), the per-token penalty
    ``-kl_coef * (log pi - log pi_ref)`` on every reward (fixed or adaptive ``kl_coef``), and logs of
    ``kl``, ``kl_coef``, ``entropy``, skipped non-finite updates and the env's task metrics.

    The policy must be a :class:`~agents.policies.TransformerPolicy`; for any other policy the plain
    SB3 algorithm is the right tool, and the error says so.

    Args:
        policy: ``"TransformerPolicy"`` (or the class, or a subclass).
        env: An env id (``"textgym/CommonGen-v0"``), an env, or a VecEnv. A TokenVecEnv, ``gym.make_vec``'s
            env, a TextEnv or any SB3 VecEnv of TextEnvs of one task runs on the fast path (see
            :func:`agents.envs.to_token_vec_env`: which wrappers keep it, SubprocVecEnvs are closed).
        *args: SB3's positional arguments (``learning_rate``, ``n_steps``, ...).
        config: The algorithm's config dataclass (e.g. ``PPOConfig(n_steps=16)``): its fields are the
            defaults; keyword arguments given beside it win.
        kl_coef: Weight of the per-token penalty ``log pi - log pi_ref`` subtracted from rewards.
        kl_target: If set, ``kl_coef`` adapts so the per-episode KL tracks this value (Ziegler et
            al. 2019). Not SB3's ``target_kl``, which still stops an update's epochs early.
        kl_horizon: Horizon of the adaptive controller, in environment steps.
        fluency_coef: If > 0, each episode's reward gains this many times its output's mean per-token
            log-likelihood under the reference (``-log`` of its perplexity there), spread over its tokens.
            The KL penalty keeps the policy near the reference's distribution, entropy included; this pays
            for text the reference finds likely, which is what held-out perplexity measures. Fast path only.
        n_envs: Parallel episodes when ``env`` is an id.
        env_kwargs: ``gym.make`` keyword arguments when ``env`` is an id.
        fast_path: False runs SB3's own per-step rollouts (one forward per token) instead.
        group_size: Give each prompt to this many consecutive envs, so a rollout holds ``k``
            completions of every prompt (the critic-free algorithms' baseline; their config sets
            it). With an id it is passed to the env; a built env must have been made with it.
        baseline: PPO and A2C (their config's ``baseline``): ``"critic"`` (GAE on the value head) or
            ``"group_mean"`` (an episode's KL-penalised return minus the mean of its prompt's group,
            the same for all its tokens; needs ``group_size >= 2`` and the fast path; no critic runs).
        threads: If set, ``learn`` calls ``torch.set_num_threads(threads)`` (and says so when
            ``verbose``); ``None`` leaves torch's thread count as the caller set it.
        **kwargs: Everything the SB3 algorithm accepts.
    """

    config_class: ClassVar[type[OnPolicyConfig]]  # the textgym train section whose fields are the defaults
    uses_critic: ClassVar[bool] = True  # False: advantages from group baselines, no value head in the loss
    sb3_defaults: ClassVar[dict[str, Any]] = {}  # SB3 arguments whose SB3 default does not suit a language model
    own_args: ClassVar[tuple[str, ...]] = ()  # config fields the algorithm keeps as attributes (not SB3 arguments)
    fast_path_only: ClassVar[bool] = False  # True: the algorithm needs whole-episode rollouts (NLPO's masks)
    action_masker: Any = None  # restricts the rollout's sampling (NLPO); None: the policy's distribution
    policy: Any

    def __init__(self, policy: Any, env: Any, *args: Any, config: OnPolicyConfig | None = None,
                 kl_coef: float | None = None, kl_target: float | None = None, kl_horizon: int = 10_000,
                 n_envs: int = 1, env_kwargs: dict[str, Any] | None = None, fast_path: bool = True,
                 threads: int | None = None, group_size: int | None = None, baseline: str | None = None,
                 fluency_coef: float | None = None, **kwargs: Any) -> None:
        sb3_init = super().__init__  # type: ignore[misc]
        names = [p for p in inspect.signature(sb3_init).parameters if p not in ("policy", "env")]
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got multiple values for argument {name!r}")
            kwargs[name] = value
        # by annotation: the arguments that have no check of their own below (kl_coef, threads, ... have theirs)
        own = {"kl_horizon": kl_horizon, "n_envs": n_envs, "env_kwargs": env_kwargs, "fast_path": fast_path}
        check_arg_types(TextAlgorithm.__init__, own, type(self).__name__, at_least={"kl_horizon": 1, "n_envs": 1})
        self._check_policy(policy)
        if kwargs.get("rollout_buffer_class") is not None:
            raise ValueError(f"{type(self).__name__} chooses its rollout buffer (episodes on the fast path): "
                             "rollout_buffer_class cannot be set")
        defaults = self._defaults(config)
        kl_coef = defaults.pop("kl_coef") if kl_coef is None else kl_coef
        kl_target = defaults.pop("kl_target") if kl_target is None else kl_target
        self.fluency_coef = defaults.pop("fluency_coef") if fluency_coef is None else fluency_coef
        group_size = defaults.pop("group_size", None) if group_size is None else group_size
        self.baseline = self._check_baseline(defaults.pop("baseline", None) if baseline is None else baseline)
        check_text_args(self.config_class, type(self).__name__, kl_coef=kl_coef, kl_target=kl_target,
                        fluency_coef=self.fluency_coef, baseline=self.baseline)
        self.uses_critic = type(self).uses_critic and self.baseline in (None, "critic")
        self.group_size = self._check_group_size(group_size)
        if isinstance(env, str) and self.group_size is not None:
            env_kwargs = {"group_size": self.group_size, **(env_kwargs or {})}
        for name in self.own_args:
            setattr(self, name, kwargs.pop(name, defaults.pop(name)))
        for name, value in {**self.sb3_defaults, **defaults}.items():
            if name not in TEXT_ARGS:
                kwargs.setdefault(name, value)
        check_algo_kwargs(self.config_class, type(self).__name__, kwargs)  # before SB3's own asserts
        # SB3's other annotated constructor arguments (seed, verbose, policy_kwargs, tensorboard_log, use_sde, ...),
        # by SB3's own annotations and named as given (the config's fields were checked above, with their ranges)
        fields = {f.name for f in dataclasses.fields(self.config_class)}
        check_arg_types(sb3_init, {k: v for k, v in kwargs.items() if k not in fields}, type(self).__name__,
                        at_least={"verbose": 0})
        if "device" in kwargs:
            resolve_device(kwargs["device"])  # "gpu" or a missing device: named here, not by torch deep inside SB3
        self.kl_controller = make_kl_controller(kl_coef, kl_target, kl_horizon)
        self.metric_buffer: dict[str, deque] = defaultdict(lambda: deque(maxlen=100))
        self.fast_path, self.threads = fast_path, check_threads(threads)
        env = make_text_env(env, n_envs=n_envs, env_kwargs=env_kwargs, fast_path=fast_path,
                            device=kwargs.get("device", "auto"), seed=kwargs.get("seed"))
        with warnings.catch_warnings():
            if isinstance(env, TokenVecEnv):  # SB3's per-step minibatch arithmetic does not apply to episodes
                warnings.filterwarnings("ignore", message="You have specified a mini-batch size")
            sb3_init(policy, env, **kwargs)

    def _check_baseline(self, baseline: str | None) -> str | None:
        if baseline is not None and "baseline" not in {f.name for f in dataclasses.fields(self.config_class)}:
            raise TypeError(f"{type(self).__name__} has no baseline option (its advantages are fixed by the algorithm); "
                            "baseline= is for agents.PPO and agents.A2C")
        return baseline

    def _check_group_size(self, group_size: Any) -> int | None:
        least = 1 if self.uses_critic else 2
        if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int)
                                       or group_size < least):
            raise ValueError(f"{type(self).__name__}: group_size must be an integer >= {least}, got {group_size!r}")
        return group_size

    def _check_policy(self, policy: Any) -> None:
        cls = self.policy_aliases.get(policy) if isinstance(policy, str) else policy  # type: ignore[attr-defined]
        if not (isinstance(cls, type) and issubclass(cls, TransformerPolicy)):
            name = type(self).__name__
            raise TypeError(
                f"agents.{name} trains language-model policies: policy must be 'TransformerPolicy' (or a subclass), "
                f"got {policy!r}. For other policies use stable_baselines3.{name}, which agents.{name} extends "
                "unchanged.")

    def _defaults(self, config: OnPolicyConfig | None) -> dict[str, Any]:
        if config is None:
            config = self.config_class()
        elif not isinstance(config, self.config_class):
            raise TypeError(f"config must be a {self.config_class.__name__} for {type(self).__name__}, "
                            f"got {type(config).__name__}")
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}

    @property
    def reference(self) -> th.nn.Module | None:
        """The frozen reference copy of the LM (``None`` with LoRA: see ``policy.reference()``)."""
        return getattr(getattr(self, "policy", None), "reference_lm", None)

    @property
    def kl_coef(self) -> float:
        return self.kl_controller.value

    @staticmethod
    def _wrap_env(env: Any, verbose: int = 0, monitor_wrapper: bool = True) -> Any:
        return wrap_env(env, verbose, monitor_wrapper)

    def get_vec_normalize_env(self) -> Any:
        """SB3's, also on the fast path: the ``VecNormalize`` whose statistics scale the rewards (or None)."""
        normalizer = getattr(self.env, "reward_normalizer", None)
        return normalizer.vec_normalize if normalizer is not None else super().get_vec_normalize_env()  # type: ignore[misc]

    def uses_fast_path(self) -> bool:
        """True when rollouts are whole-episode KV-cache batches (the rollout buffer holds episodes)."""
        return isinstance(getattr(self, "rollout_buffer", None), EpisodeRolloutBuffer)

    def _setup_model(self) -> None:
        check_algo_args(self)
        super()._setup_model()  # type: ignore[misc]
        if not self.uses_critic and self.policy.critic_trunk is not None:
            raise ValueError(f"{type(self).__name__} has no critic: separate_critic=True would train a trunk for nothing")
        self.policy.init_reference()  # the initial policy, frozen (with LoRA: adapters disabled)
        self._check_reference()
        self._build_rollout_buffer()

    def _check_reference(self) -> None:
        """Fingerprint the reference; at load (the zip's record is already in ``__dict__``), check it is the saved one."""
        with self.policy.reference() as reference:
            fingerprint = weights_fingerprint(reference)
        check_rebuilt_reference(getattr(self, "reference_record", None), fingerprint, type(self).__name__)
        self.reference_record = reference_record(
            self.policy.model_name, fingerprint, saved=not self.policy.reference_can_be_rebuilt())

    def _build_rollout_buffer(self) -> None:
        """The rollout buffer the current env needs: episodes on the fast path, SB3's per-step one with the KL penalty else."""
        fast = isinstance(self.env, TokenVecEnv)
        self._check_env_groups(fast)
        self.rollout_buffer_class = EpisodeRolloutBuffer if fast else KLPenaltyRolloutBuffer
        self.rollout_buffer = self.rollout_buffer_class(
            self.n_steps, self.observation_space, self.action_space, device=self.device, gamma=self.gamma,
            gae_lambda=self.gae_lambda, n_envs=self.n_envs, **self.rollout_buffer_kwargs)
        self.kl_stats = KLStats(self.n_envs)
        if not fast:
            self.rollout_buffer.penalty = self._kl_penalty

    def _check_env_groups(self, fast: bool) -> None:
        """The env's group size must be the one asked for; critic-free algorithms need groups on the fast path."""
        if self.env is None:  # loading without an env: set_env checks it later
            return
        name, env_groups = type(self).__name__, getattr(self.env, "group_size", 1)
        if (not self.uses_critic or self.fast_path_only) and not fast:
            why = "masks each step with a lagged copy of the policy" if self.fast_path_only else \
                "compares the k completions of each prompt"
            raise ValueError(f"{name} {why}: {_NEEDS_FAST_PATH}")
        if self.fluency_coef and not fast:
            raise ValueError(f"{name}: fluency_coef={self.fluency_coef} scores whole episodes: {_NEEDS_FAST_PATH}")
        if not self.uses_critic and env_groups < 2:
            raise ValueError(f"{name} needs groups of completions: pass group_size=k (k >= 2) with an env id, "
                             "or make the env with group_size >= 2")
        if self.group_size is not None and fast and env_groups != self.group_size:
            raise ValueError(f"{name}: group_size={self.group_size}, but the env was made with group_size={env_groups}; "
                             f"make it with group_size={self.group_size} (or pass the env id)")

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        """SB3's ``set_env``; TextEnvs are batched for the fast path as in ``__init__``."""
        if getattr(self, "fast_path", True):
            env = make_text_env(env, n_envs=1, env_kwargs=None, fast_path=True, device=self.device, seed=None)
        super().set_env(env, force_reset)  # type: ignore[misc]
        if isinstance(self.env, TokenVecEnv) != self.uses_fast_path():
            self._build_rollout_buffer()

    def learn(self, *args: Any, **kwargs: Any):
        """SB3's ``learn``; with ``threads`` set, torch first gets that many CPU threads (else they are left alone)."""
        # SB3's own annotations check the call (a string or fractional total_timesteps, a callback that is no
        # callable, ...) before its arithmetic fails on them, or silently runs 0 steps
        check_call(super().learn, args, kwargs, f"{type(self).__name__}.learn",  # type: ignore[misc]
                   at_least={"total_timesteps": 1, "log_interval": 1})
        threads = getattr(self, "threads", None)
        if threads is not None:
            set_threads(threads)
            if self.verbose >= 1:  # type: ignore[attr-defined]
                print(f"Using {threads} CPU thread(s) (threads={threads})")
        return super().learn(*args, **kwargs)  # type: ignore[misc]

    # --- rollouts ------------------------------------------------------------------------
    def _kl_penalty(self, obs: dict, actions: np.ndarray, log_prob: th.Tensor, episode_start: np.ndarray) -> np.ndarray:
        """The stock path's per-step penalty ``kl_coef * (log pi - log pi_ref)``, one value per env."""
        obs_t = obs_as_tensor(obs, self.device)
        ref = self.policy.reference_log_prob(obs_t, th.as_tensor(actions, device=self.device))
        kl = token_kl(log_prob.detach().flatten(), ref).cpu().numpy()  # (n_envs,)
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
            batch = generate_episodes(self.policy, env, on_step, masker=self.action_masker)
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
        """Reference log-probs (one teacher-forced pass per chunk), KL-penalised rewards and the advantages."""
        batch = buffer.episodes
        chunks = list(buffer.row_chunks(getattr(self, "batch_size", batch.num_steps)))
        batch.ref_log_probs = th.cat([reference_log_probs(self.policy, batch, rows).float() for rows in chunks])
        if self.policy.critic_trunk is not None:
            batch.values = th.cat([critic_values(self.policy, batch, rows) for rows in chunks]) * batch.step_mask
        if self.fluency_coef:  # part of the task reward every algorithm optimises (GRPO's and RLOO's too)
            batch.raw_rewards = batch.env_rewards if batch.raw_rewards is None else batch.raw_rewards
            fluency = fluency_bonus(batch.ref_log_probs, batch.step_mask, self.fluency_coef)
            batch.env_rewards = batch.env_rewards + fluency
            self.logger.record("rollout/ref_log_likelihood", float(fluency.sum() / self.fluency_coef / len(fluency)))
        kl = token_kl(batch.log_probs, batch.ref_log_probs, batch.step_mask)  # (E, T)
        batch.rewards = batch.env_rewards - self.kl_coef * kl
        batch.advantages, batch.returns = self.episode_advantages(batch)
        self.kl_stats.add_episodes(kl, batch.step_mask)
        raw = batch.env_rewards if batch.raw_rewards is None else batch.raw_rewards  # scores as the env paid them
        self._record_scores(episode_returns(raw, batch.step_mask))

    def _record_scores(self, scores: th.Tensor) -> None:
        """This rollout's sampled task scores ``(E,)``: their mean, and with groups how much of their variance
        lies between prompts (what a prompt-blind baseline cannot remove) and within them (what the actions change)."""
        self.logger.record("rollout/score_mean", float(scores.mean()))
        k = getattr(self.env, "group_size", 1)
        if k > 1 and scores.numel() >= 2 * k:
            groups = grouped(scores, k)  # (G, k)
            self.logger.record("rollout/score_var_within_prompt", float(groups.var(-1).mean()))
            self.logger.record("rollout/score_var_between_prompt", float(groups.mean(-1).var()))

    def episode_advantages(self, batch: EpisodeBatch) -> tuple[th.Tensor, th.Tensor]:
        """``(advantages, returns)``, each ``(E, T)``, of the episodes' KL-penalised ``rewards``: GAE by default,
        the group-mean baseline with ``baseline="group_mean"``."""
        if getattr(self, "baseline", None) == "group_mean":
            returns = episode_returns(batch.rewards, batch.step_mask)  # (E,)
            advantages = group_mean_advantages(returns, self.env.group_size)
            return per_step(advantages, batch.step_mask), per_step(returns, batch.step_mask)
        return compute_gae(batch.rewards, batch.values, batch.step_mask, self.gamma, self.gae_lambda)

    def _record_rollout_stats(self) -> None:
        """Log this rollout's KL and task metrics (shown in the table dumped before ``train``); adapt ``kl_coef``."""
        for name, values in self.metric_buffer.items():
            if values:
                self.logger.record(f"rollout/{name}", float(np.mean(values)))
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
    def episode_loss(self, batch: EpisodeBatch, log_probs: th.Tensor, values: th.Tensor | None,
                     entropy: th.Tensor) -> tuple[th.Tensor, dict[str, Any]]:
        """The algorithm's loss on a minibatch of episodes, and the numbers to log (SB3's ``train/`` names).

        Args:
            batch: The episodes, with the rollout's ``log_probs``, ``values``, ``advantages``, ``returns``.
            log_probs, values, entropy: The current policy's, each ``(e, T)``, from one teacher-forced pass
                (``values`` is None when the algorithm :attr:`uses_critic` not).
        """
        raise NotImplementedError

    def stop_update(self, logs: dict[str, float]) -> bool:
        """True to end this update's epochs before the next gradient step (PPO's ``target_kl``); ``logs``: this minibatch's."""
        return False

    def _gradient_step(self, loss: th.Tensor) -> float:
        """zero_grad, backward, clip to ``max_grad_norm``, step (a non-finite gradient skips the step: see the policy).
        Returns the gradient norm before clipping."""
        optimizer = self.policy.optimizer
        optimizer.zero_grad()
        loss.backward()
        norm = th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        optimizer.step()
        return float(norm)

    def train_episodes(self) -> None:
        """``n_epochs`` passes over episode minibatches of about ``batch_size`` steps (one pass of all when absent)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        logs: dict[str, list[float]] = defaultdict(list)
        stop = False
        for _ in range(getattr(self, "n_epochs", 1)):
            for batch in self.rollout_buffer.get(getattr(self, "batch_size", None)):
                log_probs, values, entropy = evaluate_episodes(self.policy, batch, with_values=self.uses_critic)
                values = None if values is None else values.float()
                loss, parts = self.episode_loss(batch, log_probs.float(), values, entropy.float())
                parts = {key: float(value.detach() if th.is_tensor(value) else value) for key, value in parts.items()}
                for key, value in parts.items():
                    logs[key].append(value)
                if self.stop_update(parts):
                    stop = True
                    break
                logs["grad_norm"].append(self._gradient_step(loss))
            self._n_updates += 1
            if stop:
                break
        episodes = self.rollout_buffer.episodes
        mask = episodes.step_mask
        if self.uses_critic:
            self.logger.record("train/explained_variance", explained_variance(
                episodes.values[mask].cpu().numpy(), episodes.returns[mask].cpu().numpy()))
        for key, values in logs.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def train(self) -> None:
        if isinstance(self.rollout_buffer, EpisodeRolloutBuffer):
            self.train_episodes()
        else:
            super().train()  # type: ignore[misc]
        entropy = self.policy.pop_mean_entropy()
        if entropy is not None:
            self.logger.record("train/entropy", entropy)
        self.logger.record("train/skipped_updates", self.policy.skipped_updates)

    # --- saving --------------------------------------------------------------------------
    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "kl_stats", "metric_buffer"]  # type: ignore[misc]

    @classmethod
    def load(cls, path: Any, env: Any = None, device: Any = "auto", custom_objects: Any = None,
             allow_pickle: bool = False, **kwargs: Any):
        """SB3's ``load`` of the safe zip (:mod:`agents.agent_zip`), with the file checked first
        (:func:`agents.checkpoints.check_agent_zip`). A zip in SB3's own format, whose data is
        unpickled, is refused unless ``allow_pickle=True`` (only for files you trust)."""
        agent_zip.check_path(path, f"{cls.__name__}.load", ("read", "seek"))
        if isinstance(path, (str, os.PathLike)):
            path = check_agent_zip(path, custom_objects, algorithm=cls.__name__)
        sb3_load = functools.partial(super().load, path, env=env, device=device, **kwargs)  # type: ignore[misc]
        return agent_zip.load_agent(sb3_load, path, custom_objects, allow_pickle)

    def set_parameters(self, load_path_or_dict: Any, exact_match: bool = True, device: Any = "auto") -> None:
        """SB3's ``set_parameters``; a path may be a safe zip too (tensors only). An optimizer saved
        with ``include_optimizer=False`` (``None`` here) keeps its current, fresh state."""
        params = agent_zip.parameters_to_set(load_path_or_dict)
        if isinstance(params, dict):
            params = {name: recursive_getattr(self, name).state_dict() if state is None else state
                      for name, state in params.items()}
        try:
            super().set_parameters(params, exact_match=exact_match, device=device)  # type: ignore[misc]
        except RuntimeError as exc:  # e.g. a LoRA save into a policy without LoRA: the file named, not only torch's
            if not isinstance(load_path_or_dict, (str, os.PathLike)):
                raise
            raise ValueError(f"set_parameters: {load_path_or_dict} does not fit this {type(self).__name__} agent "
                             f"({str(exc)[:300]})") from None

    def save(self, path: Any, exclude: Any = None, include: Any = None, include_reference: bool = False,
             include_optimizer: bool = True) -> None:
        """SB3's ``save`` in the safe format (:mod:`agents.agent_zip`), written atomically: a crash
        mid-write never leaves a half checkpoint.

        The zip holds what ``load`` needs to resume (weights, optimizer, counters) but not the frozen
        reference, which ``load`` rebuilds from ``model_name`` and checks against a fingerprint (see
        :mod:`agents.reference`). ``include_reference=True`` stores it too, for a reference whose source
        will not outlive the agent (e.g. an SFT checkpoint that will be deleted). ``include_optimizer=False``
        leaves out the optimizer's state (two thirds of the zip with AdamW): ``load`` then starts it afresh.
        """
        policy = self.policy
        policy.save_reference = include_reference
        self.text_algorithm = type(self).__name__  # the zip names its algorithm (textgym.filekinds reads it)
        self.reference_record = {**self.reference_record, "saved": not policy.reference_can_be_rebuilt()}
        try:
            agent_zip.save_agent(self, path, exclude, include, optimizer=include_optimizer)
        finally:
            policy.save_reference = False
