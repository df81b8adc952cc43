"""SB3-compatible text RL algorithms with a transformer policy, for textgym environments.

PPO and A2C (actor-critic, or a group-mean baseline), RLOO and GRPO (critic-free, group baselines),
NLPO (PPO with RL4LMs' top-p action mask), all on one base
(:class:`agents.base.TextAlgorithm`).
"""

from agents.a2c import A2C, A2CConfig
from agents.grpo import GRPO, GRPOConfig
from agents.nlpo import NLPO, NLPOConfig
from agents.policies import TransformerPolicy
from agents.ppo import PPO, PPOConfig
from agents.rloo import RLOO, RLOOConfig

# ``textgym train --algo NAME`` (and the leaderboard's methods) -> the algorithm class.
ALGORITHMS = {"ppo": PPO, "a2c": A2C, "rloo": RLOO, "grpo": GRPO, "nlpo": NLPO}

__all__ = ["A2C", "A2CConfig", "ALGORITHMS", "GRPO", "GRPOConfig", "NLPO", "NLPOConfig", "PPO", "PPOConfig", "RLOO",
           "RLOOConfig", "TransformerPolicy"]
