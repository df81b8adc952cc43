"""agents.RLOO: REINFORCE with a leave-one-out group baseline (Ahmadian et al. 2024), no critic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch as th
from stable_baselines3 import A2C as SB3A2C

from agents.base import TextAlgorithm
from agents.buffers import EpisodeBatch
from agents.groups import episode_returns, leave_one_out_advantages, per_step
from agents.losses import k3_kl, masked_mean, normalize
from agents.policies import TransformerPolicy
from agents.settings import OnPolicyConfig, chosen, ranged

# Where RLOO charges the KL to the reference: in each episode's return (Ahmadian et al.), or as a loss term (as GRPO).
KL_PENALTIES = ("reward", "loss")


@dataclass
class RLOOConfig(OnPolicyConfig):
    """agents.RLOO hyperparameters; ``gamma``, ``gae_lambda`` and ``vf_coef`` are unused (no critic).

    ``kl_penalty="reward"`` subtracts ``kl_coef`` times the episode's sampled log-ratio sum from its return;
    ``"loss"`` leaves the return the task score and adds ``kl_coef`` times the per-token ``k3`` KL to the loss.
    """

    learning_rate: float = ranged(1e-5, 0)
    n_steps: int = ranged(16, 1)
    group_size: int = ranged(4, 2)
    normalize_advantage: bool = False
    kl_penalty: str = chosen("reward", KL_PENALTIES)


class RLOO(TextAlgorithm, SB3A2C):
    """REINFORCE whose baseline is the mean return of the other ``k - 1`` completions of the same prompt.

    Each episode's return is its task score minus ``kl_coef`` times its summed KL to the reference;
    its advantage, the same for all its tokens, is that return minus the mean of the others in its
    group. One gradient step per rollout. No value head is trained or run in the update. Use it when
    the reward is a sequence score and a critic would mostly learn the prompt (the baseline here is
    the prompt's own average, with no bias and nothing to fit).

    Same constructor, ``learn``, ``predict``, ``save``/``load``, callbacks and logger as
    :class:`agents.PPO`; hyperparameters default to :class:`RLOOConfig` (``group_size=4``: each prompt
    goes to 4 consecutive envs, so ``n_envs`` must be a multiple of it). ``normalize_advantage=True``
    scales the rollout's advantages to unit variance, which makes the step size independent of the
    reward's scale (a sentiment probability varies by about 0.1 between samples). Needs the fast path.

    ``kl_penalty="loss"`` moves the KL out of the return into the loss (GRPO's way). Where the
    completions of a prompt score alike, ``kl_coef`` times the sampled log-ratio sum in the return is as
    large as the score differences the baseline compares and can hold the reward flat (CommonGen-v0 at
    0.05): lower ``kl_coef`` or charge the KL in the loss; on CommonGen dev runs both learned
    (benchmarks/README.md, "RLOO on CommonGen-v0").

    Example::

        model = RLOO("TransformerPolicy", "textgym/IMDB-v0", n_envs=16)  # 4 prompts x 4 completions
        model.learn(512)
    """

    config_class = RLOOConfig
    uses_critic = False
    sb3_defaults: ClassVar[dict[str, Any]] = {"use_rms_prop": False}
    own_args: ClassVar[tuple[str, ...]] = ("kl_penalty",)
    kl_penalty: str
    policy_aliases: ClassVar[dict[str, type]] = {**SB3A2C.policy_aliases, "TransformerPolicy": TransformerPolicy}

    def episode_advantages(self, batch: EpisodeBatch) -> tuple[th.Tensor, th.Tensor]:
        rewards = batch.env_rewards if self.kl_penalty == "loss" else batch.rewards  # (E, T), KL-penalised or not
        returns = episode_returns(rewards, batch.step_mask)  # (E,)
        advantages = leave_one_out_advantages(returns, self.env.group_size)
        return per_step(advantages, batch.step_mask), per_step(returns, batch.step_mask)

    def episode_loss(self, batch: EpisodeBatch, log_probs: th.Tensor, values: th.Tensor | None,
                     entropy: th.Tensor) -> tuple[th.Tensor, dict[str, Any]]:
        """``-A * log pi`` averaged over the rollout's tokens, plus the entropy bonus (and the KL term with
        ``kl_penalty="loss"``)."""
        mask = batch.step_mask.float()
        advantages = normalize(batch.advantages, mask) if self.normalize_advantage else batch.advantages
        policy_loss = -masked_mean(advantages * log_probs, mask)
        entropy_loss = -masked_mean(entropy, mask)
        loss = policy_loss + self.ent_coef * entropy_loss
        logs = {"policy_loss": policy_loss, "entropy_loss": entropy_loss}
        if self.kl_penalty == "loss":
            logs["kl_to_reference"] = kl = k3_kl(log_probs, batch.ref_log_probs, mask)
            loss = loss + self.kl_coef * kl
        return loss, {**logs, "loss": loss}
