"""textgym: Gymnasium token-level text environments for reinforcement learning on language models.

Importing the package registers every environment id (``textgym/...-v0``) with Gymnasium; the
heavy libraries (torch, transformers, metrics) load only when an environment is made.
"""

from __future__ import annotations

from dataclasses import dataclass

from gymnasium.envs.registration import register, registry

from textgym.catalogue import FAMILIES, TASKS

__version__ = "0.1.0"


@dataclass(frozen=True)
class EnvInfo:
    """One registered id: what it is, for tables and the command line."""

    env_id: str
    family: str
    dataset: str
    entry_point: str


# Derived from the catalogue (one record per task); add a task there, not here.
ENVS: tuple[EnvInfo, ...] = tuple(
    EnvInfo(task.env_id, task.family, task.dataset, FAMILIES[task.family]) for task in TASKS
)

for _env in ENVS:
    if _env.env_id not in registry:
        # gym.make_vec(id, num_envs=N) -> the batched env (textgym.gym_vector); "sync"/"async" stay Gymnasium's.
        register(id=_env.env_id, entry_point=_env.entry_point, kwargs={"dataset": _env.dataset},
                 vector_entry_point=f"textgym.gym_vector:{_env.family}_vector_env")


def check_env_id(env_id: object) -> str:
    """Return ``env_id`` if it is a registered id of a textgym text environment, else raise ValueError.

    >>> check_env_id("CartPole-v1")
    Traceback (most recent call last):
    ...
    ValueError: env id 'CartPole-v1' is not a textgym text environment; use one of the registered textgym ids: textgym/Generation-v0, textgym/Summarization-v0, textgym/Dialogue-v0, textgym/CommonGen-v0, textgym/IMDB-v0, textgym/CNNDailyMail-v0, textgym/SAMSum-v0, textgym/DialogSum-v0, textgym/DailyDialog-v0
    """
    from gymnasium.envs.registration import load_env_creator

    known = "registered textgym ids: " + ", ".join(e.env_id for e in ENVS)
    if not isinstance(env_id, str) or env_id not in registry:
        raise ValueError(f"unknown env id {env_id!r}; {known}")
    entry = registry[env_id].entry_point
    try:
        creator = load_env_creator(entry) if isinstance(entry, str) else entry
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"env id {env_id!r} cannot be loaded ({exc})") from None
    from textgym.core import TextEnv

    if not (isinstance(creator, type) and issubclass(creator, TextEnv)):
        raise ValueError(f"env id {env_id!r} is not a textgym text environment; use one of the {known}")
    return env_id


def __getattr__(name: str):
    # make_vec pulls in torch and SB3: import it on first use, keeping `import textgym` cheap.
    if name == "make_vec":
        from textgym.gym_vector import make_vec

        return make_vec
    raise AttributeError(f"module 'textgym' has no attribute {name!r}")


__all__ = ["ENVS", "EnvInfo", "__version__", "check_env_id", "make_vec"]
