"""Which env the text agents train on: SB3's wrapping for the stock path, a TokenVecEnv for the fast path.

``agents.PPO`` / ``agents.A2C`` with a TransformerPolicy accept what SB3 accepts (an env id, a
single env, a VecEnv) and turn TextEnvs into one :class:`~textgym.vector.TokenVecEnv`, the batched
env of the fast path, with the same samples and seeds as ``textgym.make_vec`` (env ``i`` seeded
``seed + i``, as SB3's ``make_vec_env`` does).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecMonitor, VecNormalize

from agents.bookkeeping import EpisodeStatisticsRecord, MonitorRecord, RewardNormalizer
from textgym.core import TextEnv
from textgym.gym_vector import GymTokenVectorEnv
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


# The one allow-list: wrappers that leave the MDP as it is (TimeLimit only when it never cuts an episode
# short, VecNormalize only with norm_obs=False). The fast path keeps them and does their bookkeeping
# (agents.bookkeeping); any other wrapper, subclasses of these included (they may change what they
# wrap), sends the env to SB3's per-step path, with a warning.
FAST_PATH_WRAPPERS: tuple[type, ...] = (
    gym.wrappers.OrderEnforcing, gym.wrappers.PassiveEnvChecker, gym.wrappers.TimeLimit,
    gym.wrappers.RecordEpisodeStatistics, Monitor,  # around one env
    VecMonitor, VecNormalize, LengthLimitIsTerminal,  # around a VecEnv
)
_BY_NAME = {cls.__name__: cls for cls in FAST_PATH_WRAPPERS}


@dataclass
class _EnvView:
    """One env of a VecEnv as the fast path needs it: its TextEnv and its wrappers, outermost first
    (``(class, the wrapper object, or None when it lives in another process)``)."""

    text: TextEnv
    wrappers: list[tuple[type, Any]]


def _time_limit_ok(limit: int | None, text: TextEnv) -> bool:
    return limit is None or limit >= text.max_new_tokens  # never cuts an episode short


def _local_view(env: Any) -> tuple[_EnvView | None, str]:
    """The view of an env in this process, or ``None`` and why it cannot run on the fast path."""
    wrappers, inner = [], env
    while isinstance(inner, gym.Wrapper):
        if type(inner) not in FAST_PATH_WRAPPERS:
            return None, f"it is wrapped in {type(inner).__name__}"
        wrappers.append((type(inner), inner))
        inner = inner.env
    if not isinstance(inner, TextEnv):
        return None, f"{type(inner).__name__} is not a textgym TextEnv"
    for cls, wrapper in wrappers:
        if cls is gym.wrappers.TimeLimit and not _time_limit_ok(wrapper._max_episode_steps, inner):
            return None, f"it is wrapped in a TimeLimit of {wrapper._max_episode_steps} steps < max_new_tokens"
    return _EnvView(inner, wrappers), ""


def _remote_view(venv: VecEnv, i: int) -> tuple[_EnvView | None, str]:
    """The view of env ``i`` of a VecEnv whose envs may live in other processes, read through its public
    methods only: a copy of the TextEnv (``get_attr("unwrapped")``), the wrapper names (``env_method("__str__")``,
    e.g. ``<Monitor<TimeLimit<...<GenerationEnv<...>>>>``) checked with ``env_is_wrapped``, and their settings."""
    text = venv.get_attr("unwrapped", indices=[i])[0]
    if not isinstance(text, TextEnv):
        return None, f"{type(text).__name__} is not a textgym TextEnv"
    names = re.findall(r"<(\w+)", venv.env_method("__str__", indices=[i])[0])
    names = names[: names.index(type(text).__name__)] if type(text).__name__ in names else names
    wrappers = []
    for name in names:
        cls = _BY_NAME.get(name)
        if cls is None or not venv.env_is_wrapped(cls, indices=[i])[0]:
            return None, f"it is wrapped in {name}"
        wrappers.append((cls, None))
    if gym.wrappers.TimeLimit in dict(wrappers):
        limit = venv.get_attr("_max_episode_steps", indices=[i])[0]
        if not _time_limit_ok(limit, text):
            return None, f"it is wrapped in a TimeLimit of {limit} steps < max_new_tokens"
    return _EnvView(text, wrappers), ""


def _same_task(a: TextEnv, b: TextEnv) -> bool:
    def key(e: TextEnv) -> tuple:
        return (type(e), [s.id for s in e.samples], e.max_prompt_length, e.max_new_tokens, e.reward_mode,
                e.vocab_size, e.eos_token_id, e.pad_token_id, e.metadata.get("reward"), sorted(e.metric_fns),
                e.group_size)
    return key(a) == key(b)


def _recorders(views: list[_EnvView], venv: VecEnv | None, started: Any) -> list[Any]:
    """The bookkeeping of the per-env wrappers, innermost first (a later one overwrites ``info["episode"]``)."""
    recorders = []
    for depth in reversed(range(len(views[0].wrappers))):
        cls, objects = views[0].wrappers[depth][0], [v.wrappers[depth][1] for v in views]

        def setting(name: str) -> list[Any]:  # from the objects here, else through the VecEnv
            return [getattr(o, name) for o in objects] if objects[0] is not None else venv.get_attr(name)
        if cls is Monitor:
            recorders.append(MonitorRecord(objects, setting("t_start"), setting("info_keywords")))
        elif cls is gym.wrappers.RecordEpisodeStatistics:
            recorders.append(EpisodeStatisticsRecord(objects, setting("_stats_key"), started))
    return recorders


def check_vec_normalize(env: Any) -> None:
    """Refuse ``VecNormalize(norm_obs=True)`` around text envs: observations are token ids, not measurements."""
    inner = env
    while isinstance(inner, VecEnvWrapper):
        if isinstance(inner, VecNormalize) and inner.norm_obs and is_text_env(inner):
            raise ValueError("VecNormalize(norm_obs=True) would rescale token ids, which are indices into the "
                             "vocabulary, not measurements, and the model would read garbage: make it with "
                             "VecNormalize(venv, norm_obs=False, norm_reward=True) (reward scaling works on the fast path)")
        inner = inner.venv


def _unwrap_vec(env: VecEnv) -> tuple[VecEnv | None, list[VecEnvWrapper], str]:
    """The VecEnv inside the allowed VecEnv wrappers, and those wrappers, outermost first."""
    wrappers, inner = [], env
    while isinstance(inner, VecEnvWrapper):
        if type(inner) not in FAST_PATH_WRAPPERS:
            return None, wrappers, f"the VecEnv is wrapped in {type(inner).__name__}"
        wrappers.append(inner)
        inner = inner.venv
    return inner, wrappers, ""


def to_token_vec_env(env: Any, device: Any = "auto") -> tuple[TokenVecEnv | None, str]:
    """``env`` as one TokenVecEnv (the fast path's env), or ``None`` and the reason it cannot be.

    Accepts a TokenVecEnv, the env of ``gym.make_vec`` (unwrapped), a single (possibly
    ``gym.make``-wrapped) TextEnv, or any SB3 VecEnv of
    TextEnvs of one task (``DummyVecEnv``, ``SubprocVecEnv``, what ``make_vec_env`` returns with any
    ``vec_env_cls``), under the wrappers of :data:`FAST_PATH_WRAPPERS`. Seeds that the VecEnv holds
    for its next reset carry over, so env ``i`` sees the samples it would have (those of
    ``textgym.make_vec``). The wrappers' bookkeeping moves to the TokenVecEnv (see
    :mod:`agents.bookkeeping`): episode entries in ``infos``, Monitor files, VecNormalize's reward scaling.

    A VecEnv whose envs live in other processes (``SubprocVecEnv``) is read through its public methods
    (``get_attr``, ``env_method``, ``env_is_wrapped``) and then **closed**: every textgym computation
    runs in this process, so its subprocesses would only sit idle. A ``Monitor`` inside such a
    subprocess still gets its ``episode`` entries in ``infos``, but its CSV file closes with the
    subprocess: put a ``VecMonitor(venv, filename)`` around the VecEnv to keep a file.

    Raises:
        ValueError: A ``VecNormalize(norm_obs=True)`` around text envs.
    """
    if isinstance(env, TokenVecEnv):
        return env, ""
    if isinstance(env, GymTokenVectorEnv):
        return env.engine, ""  # gym.make_vec's env: its engine is the fast path's env
    if not isinstance(env, VecEnv):
        view, why = _local_view(env)
        if view is None:
            return None, why
        venv = TokenVecEnv(view.text, 1, device)
        venv.episode_recorders = _recorders([view], None, venv.episode_start_time)
        return venv, ""
    check_vec_normalize(env)
    inner, vec_wrappers, why = _unwrap_vec(env)
    if inner is None:
        return None, why
    if isinstance(inner, TokenVecEnv):
        return inner, ""
    local = isinstance(inner, DummyVecEnv)
    views = [_local_view(e) if local else _remote_view(inner, i)
             for i, e in enumerate(inner.envs if local else range(inner.num_envs))]
    for view, why in views:
        if view is None:
            return None, why
    first = views[0][0]
    if not all(_same_task(first.text, view.text) for view, _ in views[1:]):
        return None, "its envs do not share one task (samples, lengths, reward)"
    if any([c for c, _ in view.wrappers] != [c for c, _ in first.wrappers] for view, _ in views[1:]):
        return None, "its envs are not wrapped alike"
    venv = TokenVecEnv(first.text, len(views), device)
    # SB3 keeps a VecEnv's pending seeds in private lists (it has no getter); read them once here.
    venv.seed_next_reset(list(getattr(inner, "_seeds", [None] * venv.num_envs)),
                         list(getattr(inner, "_options", [{}] * venv.num_envs)))
    venv.episode_recorders = _recorders([v for v, _ in views], inner, venv.episode_start_time)
    for wrapper in reversed(vec_wrappers):  # innermost first
        if isinstance(wrapper, VecMonitor):  # above a VecNormalize it counts the scaled rewards, as on SB3's path
            venv.episode_recorders.append(MonitorRecord.of(wrapper, venv.num_envs, venv.reward_normalizer is not None))
        elif isinstance(wrapper, VecNormalize):
            venv.reward_normalizer = RewardNormalizer(wrapper)
    if not local:
        inner.close()  # its subprocesses: everything now runs here
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
        if env is None:
            return env
        from agents.observations import check_text_space

        # one error for any non-text env (a Gymnasium vector env's own space is batched: its single env's is read)
        check_text_space(getattr(env, "single_observation_space", env.observation_space), "a text algorithm")
        check_vec_normalize(env)
        if not fast_path:
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
