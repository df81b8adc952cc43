"""SB3-compatible PPO and A2C with a transformer actor-critic policy, for textgym environments."""

from agents.a2c import A2C
from agents.policies import TransformerPolicy
from agents.ppo import PPO

__all__ = ["A2C", "PPO", "TransformerPolicy"]
