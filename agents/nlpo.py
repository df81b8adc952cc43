"""agents.NLPO: PPO whose actions are masked to the top-p tokens of a lagged copy of the policy
(Natural Language Policy Optimization, Ramamurthy et al. 2022, RL4LMs)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch as th
from torch import nn

from agents import seq2seq
from agents.policies import TransformerPolicy, sampling_logits
from agents.ppo import PPO, PPOConfig
from agents.settings import ranged


@dataclass
class NLPOConfig(PPOConfig):
    """agents.NLPO hyperparameters: PPO's, plus the mask's nucleus and how often its policy is synced.

    ``top_mask``: each step may sample only the smallest set of tokens holding this much of the mask
    policy's probability. ``target_update_iterations``: the mask policy is a copy of the policy taken
    every this many rollouts (and at the start), so the mask lags the policy it restricts.
    """

    top_mask: float = ranged(0.9, 0, 1, low_open=True)
    target_update_iterations: int = ranged(5, 1)


class TopPMasker:
    """The mask policy: a frozen copy of the policy's LM whose top-p nucleus bounds each step's actions.

    The copy decodes beside the policy in the rollout (its own KV cache: one more forward per token).
    :meth:`sync` copies the policy's current weights into it. With LoRA the copy holds the adapters
    too (base weights included: the mask policy costs one more copy of the LM in memory).
    """

    def __init__(self, policy: TransformerPolicy, top_mask: float) -> None:
        self.lm = copy.deepcopy(policy.lm).eval().requires_grad_(False)
        self.trunk: nn.Module = self.lm.base_model
        self.top_mask, self.temperature, self.n_actions = top_mask, policy.temperature, policy.n_actions

    @th.no_grad()
    def sync(self, policy: TransformerPolicy) -> None:
        """Make the mask policy the policy as it is now."""
        self.lm.load_state_dict(policy.lm.state_dict())

    @th.no_grad()
    def allowed(self, hidden: th.Tensor) -> th.Tensor:
        """``(N, H) -> (N, V)`` bool: the mask policy's top-``top_mask`` nucleus after ``hidden``."""
        logits = seq2seq.output_logits(self.lm, hidden)[..., : self.n_actions]  # as the policy's head computes them
        masked = sampling_logits(logits, self.temperature, None, self.top_mask)
        return masked > th.finfo(masked.dtype).min


class NLPO(PPO):
    """PPO on a masked action space: each step samples only among the tokens in the top-p nucleus of a
    mask policy, a copy of the policy synced every ``target_update_iterations`` rollouts.

    The mask keeps the policy away from the long tail of unlikely tokens, where a reward model is easily
    fooled, while letting it move freely among plausible ones; as the mask policy is synced, the
    plausible set follows the policy. The rollout's masks are kept with the episodes, so the update
    scores the same distributions the rollout sampled (the ratio starts at 1); the KL penalty is
    against the unmasked reference, as in RL4LMs. Use it to compare with GRUE/RL4LMs results, or when
    PPO's text drifts into unlikely tokens (rising perplexity) before its reward rises.

    Same constructor, ``learn``, ``predict``, ``save``/``load``, callbacks and logger as
    :class:`agents.PPO`; hyperparameters default to :class:`NLPOConfig`. Needs the fast path. Each
    rollout token costs a second forward (the mask policy's). ``predict`` samples from the unmasked
    policy. The lagged copy is not saved: a loaded NLPO's mask policy is the saved policy.

    Example::

        model = NLPO("TransformerPolicy", "textgym/CommonGen-v0", n_envs=8, top_mask=0.9)
        model.learn(384)
    """

    config_class = NLPOConfig
    own_args: ClassVar[tuple[str, ...]] = ("top_mask", "target_update_iterations")
    fast_path_only = True

    def _setup_model(self) -> None:
        super()._setup_model()
        self.action_masker = TopPMasker(self.policy, self.top_mask)
        self._rollouts_since_sync = 0

    def train(self) -> None:
        super().train()
        self._rollouts_since_sync += 1
        if self._rollouts_since_sync >= self.target_update_iterations:
            self.action_masker.sync(self.policy)
            self._rollouts_since_sync = 0
        self.logger.record("train/mask_policy_age", self._rollouts_since_sync)  # updates since the last sync

    def set_parameters(self, *args: Any, **kwargs: Any) -> None:
        """SB3's ``set_parameters`` (``load`` calls it); the mask policy becomes the loaded policy."""
        super().set_parameters(*args, **kwargs)
        self.action_masker.sync(self.policy)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "action_masker"]
