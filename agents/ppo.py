"""agents.PPO: stable-baselines3 PPO for language models on textgym envs."""

from __future__ import annotations

from typing import Any, ClassVar

from stable_baselines3 import PPO as SB3PPO

from agents.base import TextAlgorithmMixin
from agents.policies import TransformerPolicy


class PPO(TextAlgorithmMixin, SB3PPO):
    """SB3's PPO with a KL penalty against the frozen initial policy.

    Same constructor, ``learn``, ``predict``, ``save``/``load``, callbacks and logger as
    ``stable_baselines3.PPO``; the policy alias ``"TransformerPolicy"`` is added. Defaults suit
    language models rather than control: ``learning_rate=1e-5``, ``n_steps=256``, ``batch_size=64``,
    ``n_epochs=4``, ``gamma=1.0`` (episodes are short texts), ``ent_coef=0``.

    Args:
        kl_coef: Weight of the per-token penalty ``log pi - log pi_ref`` subtracted from rewards.
        kl_target: If set, ``kl_coef`` adapts so the per-episode KL tracks this value (Ziegler et
            al. 2019). Not SB3's ``target_kl``, which still stops an update's epochs early.
        kl_horizon: Horizon of the adaptive controller, in environment steps.
        **kwargs: Everything ``stable_baselines3.PPO`` accepts.
    """

    policy_aliases: ClassVar[dict[str, type]] = {**SB3PPO.policy_aliases, "TransformerPolicy": TransformerPolicy}

    def __init__(
        self,
        policy: Any,
        env: Any,
        learning_rate: Any = 1e-5,
        n_steps: int = 256,
        batch_size: int = 64,
        n_epochs: int = 4,
        gamma: float = 1.0,
        *,
        kl_coef: float = 0.05,
        kl_target: float | None = None,
        kl_horizon: int = 10_000,
        **kwargs: Any,
    ) -> None:
        self._init_text(kl_coef, kl_target, kl_horizon)
        super().__init__(policy, env, learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size,
                         n_epochs=n_epochs, gamma=gamma, **kwargs)
