"""SB3-compatible text RL algorithms with a transformer policy, for textgym environments.

PPO and A2C (actor-critic), RLOO and GRPO (critic-free, group baselines), all on one base
(:class:`agents.base.TextAlgorithm`).
"""

from agents.a2c import A2C, A2CConfig
from agents.grpo import GRPO, GRPOConfig
from agents.policies import TransformerPolicy
from agents.ppo import PPO, PPOConfig
from agents.rloo import RLOO, RLOOConfig

# ``textgym train --algo NAME`` (and the leaderboard's methods) -> the algorithm class.
ALGORITHMS = {"ppo": PPO, "a2c": A2C, "rloo": RLOO, "grpo": GRPO}

__all__ = ["A2C", "A2CConfig", "ALGORITHMS", "GRPO", "GRPOConfig", "PPO", "PPOConfig", "RLOO", "RLOOConfig",
           "TransformerPolicy"]
