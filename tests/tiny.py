"""Tiny word-level tokenizer, task and model config, for fast agent tests (no downloads)."""

from __future__ import annotations

from textgym.core import TextEnv
from textgym.data.base import Sample

WORDS = ["good", "bad", "cat", "dog", "sun", "rain", "red", "blue", "big", "small", "run", "sit"]


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", ":", "say", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def tiny_env(tokenizer=None, max_new_tokens: int = 4, **kwargs) -> TextEnv:
    """Reward is easy to raise: ROUGE-1 against 'good good good good' rewards saying 'good'."""
    samples = [Sample(f"s{i}", f"say {w}", ("good good good good",)) for i, w in enumerate(WORDS[:4])]
    kwargs.setdefault("reward", "rouge1")
    return TextEnv(samples, tokenizer or tiny_tokenizer(), max_prompt_length=10, max_new_tokens=max_new_tokens,
                   prompt_template="{source} :", **kwargs)


def tiny_llama_config(vocab_size: int, **overrides) -> dict:
    config = {"model_type": "llama", "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 64, "tie_word_embeddings": True}
    config.update(overrides)
    return config


def uneven_env(tokenizer=None, max_new_tokens: int = 4, reward_mode: str = "terminal") -> TextEnv:
    """Prompts of 3 to 7 tokens in a 12-token window: left padding that differs by row."""
    sources = ["say good", "say bad cat", "say sun rain red", "say big small run sit dog"]
    return TextEnv([Sample(f"s{i}", s, ("good good",)) for i, s in enumerate(sources)], tokenizer or tiny_tokenizer(),
                   max_prompt_length=12, max_new_tokens=max_new_tokens, prompt_template="{source} :",
                   reward="rouge1", reward_mode=reward_mode)
