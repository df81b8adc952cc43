"""Tiny config-built T5 and BART policies for the seq2seq tests (no downloads)."""

from __future__ import annotations

from tiny import tiny_env, tiny_tokenizer

# pad = 0, eos = 1 in the tiny word-level tokenizer; T5 starts the decoder from pad, BART from eos.
START = {"t5": 0, "bart": 1}


def tiny_seq2seq_config(kind: str, vocab_size: int, **overrides) -> dict:
    """A config dict of a tiny T5 or BART (``model_type`` included, as ``model_config`` takes it)."""
    if kind == "t5":
        config = {"model_type": "t5", "vocab_size": vocab_size, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2,
                  "num_decoder_layers": 2, "num_heads": 4, "relative_attention_num_buckets": 8,
                  "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, "dropout_rate": 0.0}
    elif kind == "bart":
        config = {"model_type": "bart", "vocab_size": vocab_size, "d_model": 32, "encoder_layers": 2,
                  "decoder_layers": 2, "encoder_attention_heads": 4, "decoder_attention_heads": 4,
                  "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 64,
                  "decoder_start_token_id": 1, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 0,
                  "forced_eos_token_id": None, "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0}
    else:
        raise ValueError(kind)
    config.update(overrides)
    return config


def tiny_seq2seq_env(kind: str, tokenizer=None, **kwargs):
    """The tiny task in the seq2seq layout with ``kind``'s decoder start token."""
    return tiny_env(tokenizer or tiny_tokenizer(), layout="seq2seq", decoder_start_token_id=START[kind], **kwargs)


def save_tiny_seq2seq(kind: str, folder, tokenizer=None, **overrides) -> str:
    """A randomly initialised tiny model with its tokenizer saved beside it, like any hub folder.

    With another tokenizer than the tiny one, the config takes its EOS (and BART starts the decoder from it)."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    tok = tokenizer or tiny_tokenizer()
    if tokenizer is not None:
        overrides = {"eos_token_id": tok.eos_token_id, **({"decoder_start_token_id": tok.eos_token_id}
                                                         if kind == "bart" else {}), **overrides}
    if kind == "t5":
        overrides.pop("max_position_embeddings", None)  # relative positions: no limit
    cfg = tiny_seq2seq_config(kind, len(tok), **overrides)
    model = AutoModelForSeq2SeqLM.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)
