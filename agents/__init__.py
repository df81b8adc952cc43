"""SB3-compatible PPO and A2C with a transformer actor-critic policy, for textgym environments."""

from agents.a2c import A2C, A2CConfig
from agents.policies import TransformerPolicy
from agents.ppo import PPO, PPOConfig

__all__ = ["A2C", "A2CConfig", "PPO", "PPOConfig", "TransformerPolicy"]
