"""Issue 12: the packaged IMDB sentiment reward, the quality guards, and split slices."""

from __future__ import annotations

import logging
import math
import time

import gymnasium as gym
import pytest

import textgym
from textgym.data import load_samples, parse_split
from textgym.data.splits import slice_items
from textgym.rewards import make_reward, repetition_rate

IDS = [e.env_id for e in textgym.ENVS]
SHIPPED = {"builtin_generation": "train", "builtin_summarization": "train", "builtin_dialogue": "train",
           "commongen": "validation", "imdb": "train", "cnn_dailymail": "validation", "samsum": "validation",
           "dialogsum": "validation", "dailydialog": "validation"}


# --------------------------------------------------------------------------- split slices
@pytest.mark.parametrize("spec, size, expected", [
    ("validation[:700]", 818, (0, 700)), ("validation[700:]", 818, (700, 818)), ("train[90%:]", 4000, (3600, 4000)),
    ("train[:10%]", 3995, (0, 400)), ("train[-100:]", 50, (0, 50)), ("test[10:5]", 20, (10, 10)),
    ("train[ 5 : 7 ]", 20, (5, 7)), ("train[:]", 3, (0, 3)), ("train[100%:]", 7, (7, 7)),
])
def test_slice_bounds(spec, size, expected):
    sl = parse_split(spec).slice(size)
    assert (sl.start, sl.stop) == expected


@pytest.mark.parametrize("bad", ["train[", "train[:10%%]", "train[1.5:]", "train[10]", "train[a:b]", "train[:101%]",
                                 "train[-5%:]", "[:10]", "train[:10][2:]", ""])
def test_malformed_slices_are_clear_errors(bad):
    with pytest.raises(ValueError, match="malformed split"):
        parse_split(bad)


@pytest.mark.parametrize("size", [*range(0, 23), 818, 3995, 4000])
def test_percent_slices_are_disjoint_and_cover(size):
    items = list(range(size))
    for pct in range(101):
        head, tail = (slice_items(items, parse_split(s)) for s in (f"train[:{pct}%]", f"train[{pct}%:]"))
        assert head + tail == items and abs(len(head) - pct * size / 100) <= 0.5


@pytest.mark.parametrize("env_id", IDS)
def test_every_id_takes_a_slice(env_id, smollm_tokenizer, data_dir):
    dataset = next(e.dataset for e in textgym.ENVS if e.env_id == env_id)
    split = SHIPPED[dataset]
    full = load_samples(dataset, split, data_dir)
    env = gym.make(env_id, split=f"{split}[-3:]", tokenizer=smollm_tokenizer, data_dir=str(data_dir),
                   reward="bleu").unwrapped
    assert [s.id for s in env.samples] == [s.id for s in full[-3:]]
    assert env.metadata["split"] == f"{split}[-3:]"


def test_unknown_split_name_in_a_slice(data_dir):
    with pytest.raises(ValueError, match="allowed: train, validation, test, each optionally sliced"):
        load_samples("samsum", "dev[:10]", data_dir)


def test_imdb_validation_falls_back_to_the_held_out_slice_and_says_so(data_dir, caplog):
    from textgym.data.loaders import _warn_fallback

    _warn_fallback.cache_clear()  # the warning is logged once per process and folder
    with caplog.at_level(logging.WARNING, logger="textgym.data.loaders"):
        held = load_samples("imdb", "validation", data_dir)
    assert "using the held-out slice 'train[90%:]'" in caplog.text
    train = load_samples("imdb", "train[:90%]", data_dir)
    assert len(held) >= 200 and not {s.id for s in held} & {s.id for s in train}
    assert len(held) + len(train) == len(load_samples("imdb", "train", data_dir))


def test_a_shipped_validation_split_does_not_fall_back(data_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="textgym.data.loaders"):
        load_samples("samsum", "validation", data_dir)
    assert "held-out slice" not in caplog.text


# --------------------------------------------------------------------------- repetition
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


# --------------------------------------------------------------------------- evaluation guards
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


# --------------------------------------------------------------------------- the packaged sentiment model
def test_imdb_v0_works_with_a_fresh_cache(tmp_path, monkeypatch, smollm_tokenizer, data_dir):
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path / "empty"))
    env = gym.make("textgym/IMDB-v0", tokenizer=smollm_tokenizer, data_dir=str(data_dir), max_new_tokens=6)
    assert env.unwrapped.reward_fn.name == "sentiment"
    env.reset(seed=0)
    for token in smollm_tokenizer(" a wonderful, moving and funny film", add_special_tokens=False)["input_ids"][:6]:
        _, reward, terminated, truncated, info = env.step(token)
    assert truncated and info["metrics"]["sentiment"] == reward > 0.5


def _heldout(data_dir):
    from textgym.rlhf.builtin_sentiment import _continuations, imdb_slices
    from textgym.rlhf.sentiment import load_sentiment_corpus

    held = imdb_slices(data_dir, load_sentiment_corpus(data_dir)["imdb"])["heldout"]
    return [(t, y) for _, t, y in held], _continuations(held)


def test_packaged_sentiment_model_accuracy_size_and_speed(data_dir):
    import torch

    from textgym.rewards.sentiment import SENTIMENT_WEIGHTS, SentimentReward

    assert SENTIMENT_WEIGHTS.stat().st_size <= 1_000_000
    reward = SentimentReward()
    reviews, continuations = _heldout(data_dir)  # imdb train[90%:], never trained on
    accuracy = {name: sum((p > 0.5) == bool(y) for p, (_, y) in zip(reward([""] * len(items), [t for t, _ in items],
                                                                           [[""]] * len(items)), items)) / len(items)
                for name, items in (("reviews", reviews), ("continuations", continuations))}
    print(f"packaged sentiment model, held-out accuracy: {accuracy}")
    assert len(reviews) == len(continuations) == 400
    assert accuracy["reviews"] >= 0.85
    assert accuracy["continuations"] >= 0.70  # measured 0.73-0.74; the 0.80 target is not reached
    batch = [t for t, _ in continuations[:32]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reward.logits(batch)  # warm (loads the weights)
        start = time.perf_counter()
        reward([""] * 32, batch, [[""]] * 32)
        assert time.perf_counter() - start <= 0.5
    finally:
        torch.set_num_threads(threads)


def test_build_sentiment_model_round_trip(tmp_path, data_dir):
    from textgym.rewards.sentiment import SentimentReward, load_sentiment_weights
    from textgym.rlhf.builtin_sentiment import build_sentiment_model

    out = tmp_path / "s.npz"
    metrics = build_sentiment_model(data_dir, out, bits=14, windows=1, l2_grid=(1e-3,), limit=300, max_iter=30)
    weights, bias, meta = load_sentiment_weights(out)
    assert weights.shape == (1 << 14,) and meta["heldout"] == "imdb train[90%:]" and meta["bits"] == 14
    assert 0.6 <= metrics["heldout_accuracy_reviews"] <= 1.0 and metrics["n_heldout_reviews"] == 400
    assert SentimentReward(out)([""], ["an awful, boring mess"], [[""]])[0] < 0.5


def test_missing_sentiment_weights_name_the_command(tmp_path):
    from textgym.rewards.sentiment import SentimentReward

    with pytest.raises(FileNotFoundError, match="textgym rlhf build-sentiment"):
        SentimentReward(tmp_path / "nope.npz")


def test_train_command_on_imdb_falls_back_to_the_held_out_slice(tiny_model, tmp_path, data_dir, monkeypatch, caplog):
    """`textgym train --env textgym/IMDB-v0` used to fail at once: IMDB has no validation split."""
    import json

    from textgym.cli import main

    monkeypatch.setenv("TEXTGYM_DATA_DIR", str(data_dir))
    out = tmp_path / "ppo-imdb"
    from textgym.data.loaders import _warn_fallback

    _warn_fallback.cache_clear()
    with caplog.at_level(logging.WARNING, logger="textgym.data.loaders"):
        rc = main(["train", "--env", "textgym/IMDB-v0", "--model", tiny_model, "--out", str(out), "--threads", "1",
                   "--no-progress", "--total-timesteps", "8", "--num-envs", "2", "--set", "ppo.n_steps=4",
                   "--set", "ppo.batch_size=8", "--set", "eval.n=2", "--set", "eval.batch_size=2",
                   "--set", "env.max_new_tokens=4", "--set", "env.train_split=train[:90%]"])
    assert rc == 0 and "using the held-out slice 'train[90%:]'" in caplog.text
    summary = json.loads((out / "summary.json").read_text())
    assert {"sentiment", "repetition", "perplexity", "distinct_2", "mean_tokens"} <= set(summary["after"])


@pytest.mark.parametrize("kwargs, message", [({"bits": 30}, "bits must be an integer in"),
                                             ({"windows": -1}, "windows must be"), ({"l2_grid": ()}, "l2_grid")])
def test_build_sentiment_model_rejects_bad_settings(kwargs, message, tmp_path):
    from textgym.rlhf.builtin_sentiment import build_sentiment_model

    with pytest.raises(ValueError, match=message):
        build_sentiment_model(tmp_path, tmp_path / "x.npz", **kwargs)
