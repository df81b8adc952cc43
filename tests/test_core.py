"""TextEnv mechanics and bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded

import textgym  # noqa: F401  (registers the ids)
from textgym.core import TextEnv
from textgym.data.base import Sample

SAMPLES = [
    Sample("a", "dog, ball, throw", ("The boy throws a ball to his dog.", "A dog catches the ball.")),
    Sample("b", "cook, kitchen, pasta", ("She cooks pasta in the kitchen.",)),
]


@pytest.fixture
def env(smollm_tokenizer):
    return TextEnv(SAMPLES, smollm_tokenizer, reward="rougeL", max_prompt_length=48, max_new_tokens=12,
                   prompt_template="plain", instruction="Use these words: {source}\n")


def tokens(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_observation_layout(env, smollm_tokenizer):
    obs, info = env.reset(options={"sample_index": 0})
    prompt = tokens(smollm_tokenizer, "Use these words: dog, ball, throw\n")
    ids, mask = obs["input_ids"], obs["attention_mask"]
    assert ids.shape == mask.shape == (60,)
    np.testing.assert_array_equal(ids[48 - len(prompt) : 48], prompt)  # left-padded prompt
    assert mask[: 48 - len(prompt)].sum() == 0 and mask[48 - len(prompt) : 48].all() and not mask[48:].any()
    obs, *_ = env.step(prompt[0])
    assert obs["input_ids"][48] == prompt[0] and obs["attention_mask"][48] == 1 and not obs["attention_mask"][49:].any()
    assert info["prompt_text"] == "Use these words: dog, ball, throw\n"


def test_eos_terminates_and_reports_text(env, smollm_tokenizer):
    env.reset(options={"sample_index": 1})
    for t in tokens(smollm_tokenizer, "She cooks pasta"):
        assert env.step(t)[1:4] == (0.0, False, False)
    obs, reward, terminated, truncated, info = env.step(smollm_tokenizer.eos_token_id)
    assert terminated and not truncated
    assert info["generation"] == "She cooks pasta" and info["references"] == list(SAMPLES[1].references)
    assert 0.0 < reward == info["metrics"]["rougeL"] < 1.0
    assert obs["attention_mask"].sum() == (obs["input_ids"][:48] != smollm_tokenizer.pad_token_id).sum() + 4


def test_truncation_at_max_new_tokens(env):
    env.reset(seed=0)
    for i in range(12):
        _, _, terminated, truncated, info = env.step(100 + i)
    assert truncated and not terminated and info["num_tokens"] == 12


def test_dense_rewards_sum_to_terminal_score(smollm_tokenizer):
    kwargs = dict(reward={"bleu": 0.5, "rouge1": 1.0}, max_prompt_length=48, max_new_tokens=16)
    dense = TextEnv(SAMPLES, smollm_tokenizer, reward_mode="dense", **kwargs)
    terminal = TextEnv(SAMPLES, smollm_tokenizer, **kwargs)
    for text in ("The boy throws a ball", "A dog catches the ball.", "kitchen dog xyz"):
        sums = []
        for env in (dense, terminal):
            env.reset(options={"sample_index": 0})
            steps = [env.step(t) for t in tokens(smollm_tokenizer, text) + [smollm_tokenizer.eos_token_id]]
            sums.append(sum(s[1] for s in steps))
            final = steps[-1][4]["score"]
            if env is dense:
                assert sum(s[1] != 0 for s in steps[:-1]) >= 2  # credit is spread over the steps
        assert sums[0] == pytest.approx(sums[1]) == pytest.approx(final)
        assert final > 0


def test_immediate_eos_scores_zero(env, smollm_tokenizer):
    env.reset(seed=1)
    _, reward, terminated, _, info = env.step(smollm_tokenizer.eos_token_id)
    assert terminated and reward == 0.0 and info["generation"] == ""


@pytest.mark.parametrize(
    "action, error",
    [(49152, ValueError), (-1, ValueError), (3.0, TypeError), (np.float32(2), TypeError), ("5", TypeError),
     (True, TypeError), (np.array([1, 2]), ValueError)],
)
def test_bad_actions(env, action, error):
    env.reset(seed=0)
    with pytest.raises(error, match="action"):
        env.step(action)


def test_integer_like_actions_accepted(env):
    env.reset(seed=0)
    for action in (5, np.int64(6), np.array(7), np.array([8], dtype=np.int32)):
        env.step(action)


def test_step_before_reset_and_after_end(smollm_tokenizer, env):
    fresh = TextEnv(SAMPLES, smollm_tokenizer)
    with pytest.raises(ResetNeeded, match="before reset"):
        fresh.step(1)
    env.reset(seed=0)
    env.step(smollm_tokenizer.eos_token_id)
    with pytest.raises(ResetNeeded, match="after the episode ended"):
        env.step(1)


def test_unknown_reward_kwarg_and_options(smollm_tokenizer, data_dir):
    with pytest.raises(ValueError, match="bleurt"):
        TextEnv(SAMPLES, smollm_tokenizer, reward="bleurt")
    with pytest.raises(TypeError, match="allowed"):
        gym.make("textgym/Generation-v0", tokenizer=smollm_tokenizer, temprature=0.7)
    with pytest.raises(ValueError, match="reward_mode"):
        TextEnv(SAMPLES, smollm_tokenizer, reward_mode="sparse")
    with pytest.raises(ValueError, match="max_new_tokens"):
        TextEnv(SAMPLES, smollm_tokenizer, max_new_tokens=0)
    env = TextEnv(SAMPLES, smollm_tokenizer)
    with pytest.raises(ValueError, match="sample_index"):
        env.reset(options={"sample_index": 2})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"index": 0})


def test_unknown_dataset_and_missing_files(smollm_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="commongen"):
        gym.make("textgym/Generation-v0", tokenizer=smollm_tokenizer, dataset="wikitext")
    with pytest.raises(FileNotFoundError, match=r"samsum.*test\.json"):
        gym.make("textgym/SAMSum-v0", tokenizer=smollm_tokenizer, data_dir=str(tmp_path), split="test")


@pytest.mark.parametrize("source", ["", "   \n\t "])
def test_empty_source_rejected(smollm_tokenizer, source):
    with pytest.raises(ValueError, match="empty source"):
        TextEnv([Sample("x", source, ("ref",))], smollm_tokenizer)


def test_no_samples_or_references_rejected(smollm_tokenizer):
    with pytest.raises(ValueError, match="empty"):
        TextEnv([], smollm_tokenizer)
    with pytest.raises(ValueError, match="reference"):
        TextEnv([Sample("x", "src", ())], smollm_tokenizer)


def test_huge_source_is_truncated_to_the_budget(smollm_tokenizer):
    huge = "word " * 20_000  # 100k characters
    for side, keep in (("right", "start"), ("left", "end")):
        samples = [Sample("h", "BEGIN " + huge + " END", ("ref",))]
        env = TextEnv(samples, smollm_tokenizer, max_prompt_length=64, prompt_template="Text: {source}\nOut:",
                      truncation_side=side)
        obs, info = env.reset(seed=0)
        assert 62 <= obs["attention_mask"][:64].sum() <= 64  # fills its budget, give or take a merge at the cut
        assert info["prompt_text"].startswith("Text:") and info["prompt_text"].endswith("\nOut:")
        assert ("BEGIN" in info["prompt_text"]) == (keep == "start")
        assert ("END" in info["prompt_text"]) == (keep == "end")


def test_non_ascii_text_round_trips(smollm_tokenizer):
    ref = "Café au lait à Zürich, 東京 and naïve émojis 🎉."
    env = TextEnv([Sample("u", "Ünïcode sourcé 東京", (ref,))], smollm_tokenizer, reward="bleu", max_new_tokens=48)
    _, info = env.reset(seed=0)
    assert "東京" in info["prompt_text"]
    for t in tokens(smollm_tokenizer, ref):
        env.step(t)
    *_, info = env.step(smollm_tokenizer.eos_token_id)
    assert info["generation"] == ref and info["score"] == pytest.approx(1.0)


def test_template_and_tokenizer_errors(smollm_tokenizer, gpt2_tokenizer_dir):
    from transformers import AutoTokenizer

    with pytest.raises(ValueError, match="slot"):
        TextEnv(SAMPLES, smollm_tokenizer, prompt_template="no slot here")
    with pytest.raises(ValueError, match="too small"):
        TextEnv(SAMPLES, smollm_tokenizer, max_prompt_length=10)  # the chat template alone is longer
    gpt2 = AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir))
    assert gpt2.pad_token is None
    env = TextEnv(SAMPLES, gpt2)  # no pad token: EOS pads, documented; no chat template: plain prompt
    obs, _ = env.reset(seed=0)
    assert obs["input_ids"][0] == gpt2.eos_token_id and env.action_space.n == len(gpt2)
    assert gpt2.pad_token is None  # not mutated
    with pytest.raises(ValueError, match="chat_template"):
        TextEnv(SAMPLES, gpt2, prompt_template="chat")
    no_eos = AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir))
    no_eos.eos_token = None
    with pytest.raises(ValueError, match="eos_token"):
        TextEnv(SAMPLES, no_eos)
    with pytest.raises(TypeError, match="tokenizer"):
        TextEnv(SAMPLES, tokenizer=42)


def test_ansi_render(smollm_tokenizer):
    env = TextEnv(SAMPLES, smollm_tokenizer, render_mode="ansi", prompt_template="plain", instruction="Q: {source}\nA:")
    env.reset(options={"sample_index": 0})
    for t in tokens(smollm_tokenizer, " A dog"):
        env.step(t)
    assert env.render() == "Q: dog, ball, throw\nA:A dog"
    with pytest.raises(ValueError, match="render_mode"):
        TextEnv(SAMPLES, smollm_tokenizer, render_mode="human")


def test_metadata_records_sacrebleu_signature(smollm_tokenizer):
    env = TextEnv(SAMPLES, smollm_tokenizer, reward="bleu")
    assert "nrefs" in env.metadata["signature_bleu"] and env.metadata["reward"] == "bleu"
