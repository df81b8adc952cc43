"""agents.A2C: stable-baselines3 A2C for language models on textgym envs."""

from __future__ import annotations

from typing import Any, ClassVar

from stable_baselines3 import A2C as SB3A2C

from agents.base import TextAlgorithmMixin
from agents.policies import TransformerPolicy


class A2C(TextAlgorithmMixin, SB3A2C):
    """SB3's A2C with a KL penalty against the frozen initial policy.

    Same API as ``stable_baselines3.A2C`` plus the ``"TransformerPolicy"`` alias. Defaults for
    language models: ``learning_rate=1e-5``, ``n_steps=32``, ``gamma=1.0``, ``ent_coef=0``, and
    Adam-style optimisation (SB3's RMSprop default is for Atari).

    Args:
        kl_coef, kl_target, kl_horizon: As in :class:`agents.PPO`.
        **kwargs: Everything ``stable_baselines3.A2C`` accepts.
    """

    policy_aliases: ClassVar[dict[str, type]] = {**SB3A2C.policy_aliases, "TransformerPolicy": TransformerPolicy}

    def __init__(
        self,
        policy: Any,
        env: Any,
        learning_rate: Any = 1e-5,
        n_steps: int = 32,
        gamma: float = 1.0,
        use_rms_prop: bool = False,
        *,
        kl_coef: float = 0.05,
        kl_target: float | None = None,
        kl_horizon: int = 10_000,
        **kwargs: Any,
    ) -> None:
        self._init_text(kl_coef, kl_target, kl_horizon)
        super().__init__(policy, env, learning_rate=learning_rate, n_steps=n_steps, gamma=gamma,
                         use_rms_prop=use_rms_prop, **kwargs)
