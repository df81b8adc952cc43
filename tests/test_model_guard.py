"""Every model load passes one guard (textgym.models.load_model): a folder whose weights would be newly
initialised for the class that loads it is refused, naming the folder, what it holds and what was expected."""

from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")


def _bert_config():
    return transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=32)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Config-built tiny models of each kind, saved once per module."""
    root = tmp_path_factory.mktemp("models")
    transformers.BertModel(_bert_config()).save_pretrained(root / "encoder")
    transformers.BertForSequenceClassification(_bert_config()).save_pretrained(root / "classifier")
    llama = transformers.LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, tie_word_embeddings=False)
    transformers.LlamaForCausalLM(llama).save_pretrained(root / "lm")
    transformers.LlamaModel(llama).save_pretrained(root / "lm_trunk")
    return root


def test_right_kinds_load(folders):
    from textgym.models import load_causal_lm, load_model

    assert load_causal_lm(folders / "lm").config.model_type == "llama"
    load_model("AutoModelForSequenceClassification", folders / "classifier")
    load_model("AutoModel", folders / "classifier")  # an encoder may come from a classifier (its head is ignored)
    load_model("AutoModel", folders / "encoder")


@pytest.mark.parametrize("kind, folder, holds", [
    ("AutoModelForSequenceClassification", "encoder", "BertModel"),
    ("AutoModelForSequenceClassification", "lm", "LlamaForCausalLM"),
    ("AutoModelForCausalLM", "classifier", "BertForSequenceClassification"),
    ("AutoModelForCausalLM", "lm_trunk", "LlamaModel"),
])
def test_wrong_kind_is_refused(folders, kind, folder, holds):
    from textgym.models import load_model

    with pytest.raises(ValueError, match=rf"folder .*{folder} holds .*{holds}.*was expected") as err:
        load_model(kind, folders / folder)
    assert str(folders / folder) in str(err.value)


def test_every_user_facing_loader_passes_the_guard(folders):
    from textgym.rewards import make_reward
    from textgym.rewards.reward_model import RewardModel, RewardModelConfig

    with pytest.raises(ValueError, match="classifier folder .* holds .*BertModel"):
        make_reward(f"classifier:{folders / 'encoder'}")
    with pytest.raises(ValueError, match="model folder .* holds .*BertForSequenceClassification"):
        from agents.policies import TransformerPolicy  # noqa: F401  (policy, reference, --model, --init: load_causal_lm)
        from textgym.models import load_causal_lm

        load_causal_lm(folders / "classifier")
    RewardModel(RewardModelConfig(encoder=str(folders / "classifier")), device="cpu")  # an encoder: the head is ours


def test_allow_list_is_the_only_exception():
    from textgym.models import ALLOWED_NEW_WEIGHTS, check_loading_info

    check_loading_info({"missing_keys": {f"{ALLOWED_NEW_WEIGHTS[0]}weight"}}, "x", "AutoModelForCausalLM")
    with pytest.raises(ValueError, match="score.weight"):
        check_loading_info({"missing_keys": {"score.weight"}}, "x", "AutoModelForSequenceClassification")
