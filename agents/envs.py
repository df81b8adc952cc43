"""Which env the text agents train on: SB3's wrapping for the stock path, a TokenVecEnv for the fast path.

``agents.PPO`` / ``agents.A2C`` with a TransformerPolicy accept what SB3 accepts (an env id, a
single env, a VecEnv) and turn TextEnvs into one :class:`~textgym.vector.TokenVecEnv`, the batched
env of the fast path, with the same samples and seeds as ``textgym.make_vec`` (env ``i`` seeded
``seed + i``, as SB3's ``make_vec_env`` does).
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecMonitor

from textgym.core import TextEnv
from textgym.vector import TokenVecEnv


class LengthLimitIsTerminal(VecEnvWrapper):
    """Tell SB3 not to bootstrap a value when a text reaches ``max_new_tokens``.

    The score of the whole text is paid at that step, so nothing is left to earn after it;
    bootstrapping ``V(final text)`` on top would count the score twice and reward running long.
    """

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if info.get("TimeLimit.truncated"):
                info["TimeLimit.truncated"] = False
        return obs, rewards, dones, infos


def is_text_env(env: Any) -> bool:
    """True for envs with textgym's ``Dict(input_ids, attention_mask)`` observations."""
    space = getattr(env, "observation_space", None)
    return hasattr(space, "spaces") and "input_ids" in space.spaces


def wrap_env(env: Any, verbose: int = 0, monitor_wrapper: bool = True) -> VecEnv:
    """SB3's ``_wrap_env``, plus :class:`LengthLimitIsTerminal` around text envs (stock path)."""
    if isinstance(env, TokenVecEnv):
        return env  # it already reports episodes and never bootstraps on length
    env = BaseAlgorithm._wrap_env(env, verbose, monitor_wrapper)
    return LengthLimitIsTerminal(env) if is_text_env(env) and not isinstance(env, LengthLimitIsTerminal) else env


# Wrappers that change nothing the fast path would need to reproduce.
_NEUTRAL_WRAPPERS = (Monitor, gym.wrappers.OrderEnforcing, gym.wrappers.PassiveEnvChecker)


def _text_env(env: Any) -> tuple[TextEnv | None, str]:
    """The TextEnv inside ``env`` and ``""``, or ``None`` and why it cannot run on the fast path."""
    inner = env
    while isinstance(inner, gym.Wrapper):
        limit = getattr(inner, "_max_episode_steps", None)
        if isinstance(inner, gym.wrappers.TimeLimit) and limit is not None and limit >= inner.unwrapped.max_new_tokens:
            pass  # never cuts an episode short
        elif not isinstance(inner, _NEUTRAL_WRAPPERS):
            return None, f"it is wrapped in {type(inner).__name__}"
        inner = inner.env
    if not isinstance(inner, TextEnv):
        return None, f"{type(inner).__name__} is not a textgym TextEnv"
    return inner, ""


def _same_task(a: TextEnv, b: TextEnv) -> bool:
    def key(e: TextEnv) -> tuple:
        return (type(e), [s.id for s in e.samples], e.max_prompt_length, e.max_new_tokens, e.reward_mode,
                e.vocab_size, e.eos_token_id, e.pad_token_id, e.metadata.get("reward"), sorted(e.metric_fns))
    return key(a) == key(b)


def to_token_vec_env(env: Any, device: Any = "auto") -> tuple[TokenVecEnv | None, str]:
    """``env`` as one TokenVecEnv (the fast path's env), or ``None`` and the reason it cannot be.

    Accepts a TokenVecEnv, a single (possibly ``gym.make``-wrapped) TextEnv, or a DummyVecEnv of
    TextEnvs of one task (optionally under VecMonitor / :class:`LengthLimitIsTerminal`). Seeds that
    the VecEnv holds for its next reset carry over, so env ``i`` sees the samples it would have.
    """
    if isinstance(env, TokenVecEnv):
        return env, ""
    if not isinstance(env, VecEnv):
        text, why = _text_env(env)
        return (TokenVecEnv(text, 1, device), "") if text is not None else (None, why)
    inner = env
    while isinstance(inner, VecEnvWrapper):
        if not isinstance(inner, (LengthLimitIsTerminal, VecMonitor)):
            return None, f"the VecEnv is wrapped in {type(inner).__name__}"
        inner = inner.venv
    if isinstance(inner, TokenVecEnv):
        return inner, ""
    if not isinstance(inner, DummyVecEnv):
        return None, f"{type(inner).__name__} is not a DummyVecEnv of TextEnvs"
    texts = [_text_env(e) for e in inner.envs]
    for text, why in texts:
        if text is None:
            return None, why
    if not all(_same_task(texts[0][0], text) for text, _ in texts[1:]):
        return None, "its envs do not share one task (samples, lengths, reward)"
    venv = TokenVecEnv(texts[0][0], len(texts), device)
    # SB3 keeps a DummyVecEnv's pending seeds in private lists (it has no getter); read them once here.
    venv.seed_next_reset(list(inner._seeds), list(inner._options))
    return venv, ""


def make_text_env(env: Any, *, n_envs: int, env_kwargs: dict[str, Any] | None, fast_path: bool, device: Any,
                  seed: int | None) -> Any:
    """What a text agent trains on: the fast path's TokenVecEnv when it can, else the env for SB3's path.

    Args:
        env: An env id, an env or a VecEnv (as SB3 accepts), or None.
        n_envs, env_kwargs: Only with an id: number of envs and ``gym.make`` keyword arguments.
        fast_path: False keeps SB3's per-step path (``make_vec_env`` for an id).
        device: Device of the TokenVecEnv's tensors.
        seed: Seed of SB3's ``make_vec_env`` on the stock path.
    """
    if not isinstance(env, str):
        if n_envs != 1 or env_kwargs:
            raise ValueError("n_envs and env_kwargs apply only when env is an id such as 'textgym/CommonGen-v0'; "
                             f"got an env of type {type(env).__name__}")
        if env is not None:
            from agents.observations import check_text_space

            check_text_space(env.observation_space, "a text algorithm")  # one error for any non-text env
        if env is None or not fast_path:
            return env
        venv, why = to_token_vec_env(env, device)
        if venv is None:
            warnings.warn(f"agents: this env runs on SB3's per-step path (one forward per token), not the fast "
                          f"path, because {why}", stacklevel=3)
            return env
        return venv
    import textgym  # noqa: F401  (registers the ids)

    if fast_path:
        return textgym.make_vec(env, n_envs, device=device, **(env_kwargs or {}))
    from stable_baselines3.common.env_util import make_vec_env

    # SB3 asks for render_mode="rgb_array" unless told otherwise; text envs render "ansi" only.
    return make_vec_env(env, n_envs=n_envs, seed=seed, env_kwargs={"render_mode": None, **(env_kwargs or {})})
