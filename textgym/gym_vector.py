"""The Gymnasium face of :class:`~textgym.vector.TokenVecEnv`, and the ``vector_entry_point`` of every id.

``gym.make_vec("textgym/SAMSum-v0", num_envs=8)`` returns a :class:`GymTokenVectorEnv`: the N
episodes as tensors on one device, with Gymnasium 1.x's ``VectorEnv`` API and the same
observations, rewards, flags and infos as ``gym.make_vec(..., vectorization_mode="sync")`` (a
``SyncVectorEnv`` of single ``TextEnv``s, which ``"sync"`` and ``"async"`` still give).
:func:`make_vec` (``textgym.make_vec``) builds either face of the engine from an id.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.registration import load_env_creator

from textgym.catalogue import FAMILIES
from textgym.core import TextEnv
from textgym.fieldtypes import check_arg_types
from textgym.vector import TokenVecEnv


class GymTokenVectorEnv(gym.vector.VectorEnv):
    """The TokenVecEnv engine behind Gymnasium's ``VectorEnv`` API (auto-reset in the same step).

    Env ``i`` behaves as a ``TextEnv`` seeded with ``seed + i``. Infos follow Gymnasium's vector
    convention (a dict of per-env arrays with ``"_key"`` masks, as ``SyncVectorEnv`` builds them):
    finished episodes are reset within the step; their last observation and info are in
    ``infos["final_obs"]`` / ``infos["final_info"]`` (masks ``"_final_obs"`` / ``"_final_info"``),
    and the new episode's reset info is merged at the top level.

    Args:
        env: A configured TextEnv whose task, tokenizer, reward and lengths are used.
        num_envs: Parallel episodes.
        device: Where the token tensors live (``"auto"``: CUDA when available).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, env: TextEnv, num_envs: int, device: Any = "auto") -> None:
        self.engine = TokenVecEnv(env, num_envs, device)
        self.num_envs = num_envs
        self.render_mode = None
        self.single_observation_space = self.engine.observation_space
        self.single_action_space = self.engine.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    @property
    def device(self) -> Any:
        """The device of the token tensors."""
        return self.engine.device

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Start a new episode in every env: seeds ``seed + i`` for an int, one per env for a list."""
        seeds = self.engine.seeds_per_env(seed)
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options must be one dict for every env (gymnasium's vector API), got {type(options).__name__}")
        super().reset(seed=seeds[0])
        infos: dict[str, Any] = {}
        for i in range(self.num_envs):
            infos = self._add_info(infos, self.engine.reset_env(i, seeds[i], options), i)
        return self.engine.observations(), infos

    def step(self, actions: Any):
        """One token per env; rewards are float64, ``(N,)``, as Gymnasium's own vector envs give them."""
        self.engine.step_async(np.asarray(actions))
        obs, rewards, terminated, truncated, step_infos = self.engine.step_with_flags()
        infos: dict[str, Any] = {}
        for i, info in enumerate(step_infos):
            if info:
                info = dict(info)
                info.pop("TimeLimit.truncated", None)  # SB3's key: not part of TextEnv's info
                final_obs = info.pop("terminal_observation")
                infos = self._add_info(infos, {"final_obs": final_obs, "final_info": info}, i)
                infos = self._add_info(infos, self.engine.reset_infos[i], i)
        return obs, rewards.astype(np.float64), terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        self.engine.close()


def make_vec(env_id: str, num_envs: int = 8, device: str | torch.device = "auto", *,
             api: str = "sb3", **kwargs: Any) -> TokenVecEnv | GymTokenVectorEnv:
    """Build a batched env from any registered textgym id.

    Args:
        env_id: e.g. ``"textgym/SAMSum-v0"``.
        num_envs: Parallel episodes.
        device: Where the token tensors live (``"auto"``: CUDA when available).
        api: ``"sb3"`` for SB3's VecEnv (what ``agents.PPO``/``A2C`` use), ``"gymnasium"`` for a
            Gymnasium ``VectorEnv``.
        **kwargs: The id's keyword arguments (``split``, ``data_dir``, ``reward``, ...).
    """
    check_arg_types(make_vec, {"env_id": env_id, "num_envs": num_envs, "device": device, "api": api})
    if api not in ("sb3", "gymnasium"):
        raise ValueError(f"api must be 'sb3' or 'gymnasium', got {api!r}")
    env = gym.make(env_id, **kwargs).unwrapped
    if api == "sb3":
        return TokenVecEnv(env, num_envs, device)
    return GymTokenVectorEnv(env, num_envs, device)


def _vector_entry_point(family: str):
    entry_point = FAMILIES[family]

    def make(num_envs: int = 1, *, device: Any = "auto", **kwargs: Any) -> GymTokenVectorEnv:
        env = load_env_creator(entry_point)(**kwargs)
        return GymTokenVectorEnv(env, num_envs, device)

    make.__name__ = make.__qualname__ = f"{family}_vector_env"
    make.__doc__ = (f"``gym.make_vec``'s creator for the {family} ids: ``num_envs`` episodes on ``device``; "
                    "the other keyword arguments are the env's (``dataset``, ``tokenizer``, ``reward``, ...).")
    return make


# One creator per family, named as textgym/__init__.py registers them: ``textgym.gym_vector:<family>_vector_env``.
for _family in FAMILIES:
    globals()[f"{_family}_vector_env"] = _vector_entry_point(_family)

