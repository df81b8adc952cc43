"""The public names of textgym, textgym.rewards and agents are pinned: removing one is a breaking change."""

from __future__ import annotations

import importlib

import pytest

# Names may be added (update the set); removing or renaming one breaks users' imports.
PUBLIC = {
    "textgym": {"ENVS", "EnvInfo", "__version__", "check_env_id", "make_vec"},
    "textgym.rewards": {
        "BLEUReward", "CHRFReward", "ClassifierReward", "EmbeddingSimilarityReward", "RepetitionPenalty", "RewardFn",
        "RewardModel", "RougeReward", "WeightedReward", "available_reward_prefixes", "available_rewards", "bleu",
        "chrf", "make_reward", "register_reward", "register_reward_prefix", "repetition_rate", "rouge1", "rouge2",
        "rougeL", "rougeLsum", "score_and_components", "score_components"},
    "agents": {"A2C", "A2CConfig", "ALGORITHMS", "GRPO", "GRPOConfig", "NLPO", "NLPOConfig", "PPO", "PPOConfig",
               "RLOO", "RLOOConfig", "TransformerPolicy"},
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_are_pinned_and_importable(module):
    mod = importlib.import_module(module)
    assert set(mod.__all__) >= PUBLIC[module], f"{module} lost public names: {PUBLIC[module] - set(mod.__all__)}"
    for name in mod.__all__:
        assert getattr(mod, name) is not None


def test_old_import_paths_keep_working():
    """Paths that the README or earlier releases showed: the same objects as the new ones."""
    from textgym.rewards import ClassifierReward, EmbeddingSimilarityReward, RewardModel
    from textgym.rewards import learned, reward_model
    from textgym.vector import TokenVecEnv

    import textgym

    assert learned.RewardModel is reward_model.RewardModel is RewardModel
    assert learned.ClassifierReward is ClassifierReward and learned.EmbeddingSimilarityReward is EmbeddingSimilarityReward
    assert textgym.make_vec("textgym/Generation-v0", 1, device="cpu", tokenizer=_tok()).__class__ is TokenVecEnv


def _tok():
    from tiny import tiny_tokenizer

    return tiny_tokenizer()
