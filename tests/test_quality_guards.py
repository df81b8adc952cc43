"""The quality guards every evaluation carries (perplexity, diversity, repetition, length), the
repetition penalty, and the losses that score only generated tokens."""

from __future__ import annotations

import math

import pytest

from textgym.rewards import make_reward, repetition_rate


# --- repetition ------------------------------------------------------------------------------
def test_repetition_rate_definition():
    assert repetition_rate("") == 0.0 and repetition_rate("one two three four") == 0.0
    assert repetition_rate("The movie is good. The movie is good.") == pytest.approx(2 / 6)
    assert repetition_rate("a b a b a b", n=2) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="positive integer"):
        repetition_rate("a b", n=0)


def test_repetition_penalty_mixes_into_any_reward():
    mix = make_reward({"bleu": 1.0, "repetition": -0.5})
    looped = "the cat sat the cat sat the cat sat"
    clean = "the cat sat on the warm mat today"
    ref = [["the cat sat on the warm mat today"]]
    penalised, unpenalised = mix(["p"], [looped], ref)[0], make_reward("bleu")(["p"], [looped], ref)[0]
    assert penalised == pytest.approx(unpenalised - 0.5 * repetition_rate(looped)) and penalised < unpenalised
    assert mix(["p"], [clean], ref)[0] == pytest.approx(1.0)  # no repeats, no penalty


# --- evaluation guards -------------------------------------------------------------------------
def test_every_evaluation_carries_the_quality_guards(tiny_model):
    from textgym.evaluation import evaluate

    result = evaluate("textgym/Generation-v0", tiny_model, split="test", n=4, batch_size=4, device="cpu",
                      progress=False, max_new_tokens=6)
    metrics = result.metrics
    assert {"perplexity", "distinct_1", "distinct_2", "repetition", "mean_tokens"} <= set(metrics)
    texts = [r["generation"] for r in result.records]
    assert metrics["repetition"] == pytest.approx(sum(map(repetition_rate, texts)) / len(texts))
    # NaN exactly when no output has a token to score (the untrained tiny model often writes only <unk>s)
    assert math.isnan(metrics["perplexity"]) == (not any(t.strip() for t in texts))
    assert math.isnan(metrics["perplexity"]) or metrics["perplexity"] > 1.0
    assert "perplexity" not in evaluate("textgym/Generation-v0", tiny_model, split="test", n=2, device="cpu",
                                        progress=False, max_new_tokens=4, perplexity=False).metrics


def test_perplexity_scores_only_the_generation_with_the_head_on_those_positions():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from textgym.perplexity import generation_perplexity
    from tiny import tiny_llama_config, tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(**tiny_llama_config(len(tok)))).eval()
    prompts, texts = ["say good cat dog sun rain :", "say bad :"], ["good good", "cat"]
    nll, n = 0.0, 0
    for prompt, text in zip(prompts, texts):  # by hand: full logits, one text at a time
        p_ids, g_ids = tok(prompt)["input_ids"], tok(text)["input_ids"]
        with torch.no_grad():
            log_probs = lm(input_ids=torch.tensor([p_ids + g_ids])).logits[0].log_softmax(-1)
        nll -= sum(float(log_probs[len(p_ids) - 1 + k, t]) for k, t in enumerate(g_ids))
        n += len(g_ids)
    result = generation_perplexity(lm, tok, prompts, texts, batch_size=2)
    assert result["scored_tokens"] == n == 3
    assert result["nll_per_token"] == pytest.approx(nll / n, abs=1e-5)


def test_sft_loss_with_the_head_on_target_positions_only_matches_full_logits():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from agents.policies import position_ids
    from agents.sft import Example, collate, token_nll
    from tiny import tiny_llama_config

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(**tiny_llama_config(64)))
    batch = collate([Example([5, 6, 7, 8], [9, 10]), Example([11, 12], [13, 14, 15])], pad_id=0,
                    device=torch.device("cpu"))
    nll, count = token_nll(lm, batch)
    grads = torch.autograd.grad(nll, [lm.model.layers[0].self_attn.q_proj.weight, lm.lm_head.weight])
    mask = batch["attention_mask"]  # by hand: full (B, T, V) logits and the ignore index
    logits = lm(input_ids=batch["input_ids"], attention_mask=mask, position_ids=position_ids(mask)).logits
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(),
                                                 ignore_index=-100, reduction="sum")
    expected_grads = torch.autograd.grad(expected, [lm.model.layers[0].self_attn.q_proj.weight, lm.lm_head.weight])
    assert count == 5
    assert float(nll) == pytest.approx(float(expected), rel=1e-5)
    for got, want in zip(grads, expected_grads):
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)
