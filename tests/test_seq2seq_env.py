"""The seq2seq observation layout of every env (encoder-decoder models): spaces, checkers, vector envs and the
errors that name the layout and the model kind; config-built tiny T5 and BART, no download."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer
from tiny_seq2seq import START, save_tiny_seq2seq, tiny_seq2seq_config, tiny_seq2seq_env

from agents import PPO
from textgym.vector import TokenVecEnv

KINDS = pytest.mark.parametrize("kind", ["t5", "bart"])


def policy_kwargs(kind: str, tok):
    return dict(model_name=None, model_config=tiny_seq2seq_config(kind, len(tok)))

# --- the layout --------------------------------------------------------------------------------
def test_seq2seq_observation_layout():
    env = tiny_seq2seq_env("t5", max_new_tokens=3)
    obs, info = env.reset(seed=0)
    assert set(obs) == {"input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask"}
    assert obs["input_ids"].shape == (10,) and obs["decoder_input_ids"].shape == (4,)
    n = int(obs["attention_mask"].sum())
    assert obs["attention_mask"][:n].all() and not obs["attention_mask"][n:].any()  # source right-padded
    assert obs["decoder_input_ids"][0] == START["t5"] and obs["decoder_attention_mask"].tolist() == [1, 0, 0, 0]
    word = env.tokenizer.convert_tokens_to_ids("good")
    obs, *_ = env.step(word)
    assert obs["decoder_input_ids"][:2].tolist() == [START["t5"], word] and obs["decoder_attention_mask"][:2].all()
    # Same actions, rewards and infos as the causal layout.
    causal = tiny_env(env.tokenizer, max_new_tokens=3)
    causal.reset(seed=0)
    for e in (env, causal):
        e.reset(seed=3)
    a = [env.step(word)[1:] for _ in range(3)]
    b = [causal.step(word)[1:] for _ in range(3)]
    assert [x[:3] for x in a] == [x[:3] for x in b] and a[-1][3]["generation"] == b[-1][3]["generation"]


def test_vector_env_matches_single_env_in_seq2seq_layout():
    env = tiny_seq2seq_env("bart", max_new_tokens=3)
    venv = TokenVecEnv(tiny_seq2seq_env("bart", max_new_tokens=3), 2, device="cpu")
    venv.seed(5)
    obs = venv.reset()
    single, _ = env.reset(seed=5)
    for key in single:
        np.testing.assert_array_equal(obs[key][0], single[key])
    venv.step_async(np.array([5, 5]))
    obs, *_ = venv.step_wait()
    single, *_ = env.step(5)
    for key in single:
        np.testing.assert_array_equal(obs[key][0], single[key])


@KINDS
def test_env_checkers_in_both_layouts_from_a_model_folder(kind, tmp_path):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    folder = save_tiny_seq2seq(kind, tmp_path / kind)
    for layout, keys in (("auto", 4), ("seq2seq", 4)):
        env = gym.make("textgym/Summarization-v0", tokenizer=folder, layout=layout, max_prompt_length=48).unwrapped
        gym_check(env)
        sb3_check(env, warn=False)
        assert len(env.observation_space.spaces) == keys
        assert env.layout.decoder_start_token_id == START[kind]  # the model config's
    env = gym.make("textgym/Summarization-v0", tokenizer=tiny_tokenizer()).unwrapped  # the default stays causal
    gym_check(env)
    sb3_check(env, warn=False)
    assert set(env.observation_space.spaces) == {"input_ids", "attention_mask"}


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    return save_tiny_seq2seq("t5", tmp_path_factory.mktemp("models") / "t5")


@pytest.mark.parametrize("env_id", [e.env_id for e in __import__("textgym").ENVS])
def test_every_id_passes_the_checkers_in_the_seq2seq_layout(env_id, t5_folder, data_dir, monkeypatch, tmp_path):
    import pickle

    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check
    from test_registry import DATASET, SHIPPED_SPLIT

    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path / "fresh-cache"))  # as a fresh install (IMDB-v0's reward)
    env = gym.make(env_id, tokenizer=t5_folder, layout="auto", data_dir=str(data_dir), max_prompt_length=48,
                   split=SHIPPED_SPLIT[DATASET[env_id]] + "[:8]").unwrapped
    assert env.layout.seq2seq
    gym_check(env)
    sb3_check(env, warn=False)
    obs, _ = env.reset(seed=0)
    assert obs["input_ids"].shape == (48,) and obs["decoder_input_ids"].shape == (1 + env.max_new_tokens,)
    pickle.loads(pickle.dumps(env)).reset(seed=0)
    vec = __import__("textgym").make_vec(env_id, 2, device="cpu", api="gymnasium", tokenizer=t5_folder, layout="auto",
                                         data_dir=str(data_dir), max_prompt_length=48,
                                         split=SHIPPED_SPLIT[DATASET[env_id]] + "[:8]")
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)
    obs, *_ = vec.step(np.array([3, 4]))
    assert vec.observation_space.contains(obs)


def test_bad_layouts_say_which_layout_and_model_kind(tmp_path, tiny_model):
    import gymnasium as gym

    folder = save_tiny_seq2seq("t5", tmp_path / "t5")
    with pytest.raises(ValueError, match="layout='seq2seq'.*causal model"):
        tiny_env(tiny_model, layout="seq2seq")  # a llama's tokenizer folder
    with pytest.raises(ValueError, match="layout='causal'.*seq2seq model"):
        tiny_env(folder, layout="causal", decoder_start_token_id=0)
    with pytest.raises(ValueError, match="layout='seq2seq' needs the encoder-decoder model's decoder start token"):
        tiny_env(tiny_tokenizer(), layout="seq2seq")  # no config beside a bare tokenizer
    with pytest.raises(ValueError, match="layout must be one of"):
        gym.make("textgym/Generation-v0", tokenizer=folder, layout="encoder")
    tok = tiny_tokenizer()
    with pytest.raises(ValueError, match="layout='causal' but .* is a seq2seq model"):
        PPO("TransformerPolicy", TokenVecEnv(tiny_env(tok), 2, device="cpu"), policy_kwargs=policy_kwargs("t5", tok))
    with pytest.raises(ValueError, match="layout='seq2seq' but .* is a causal model"):
        PPO("TransformerPolicy", TokenVecEnv(tiny_seq2seq_env("t5", tok), 2, device="cpu"),
            policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(tok))))
    from textgym.core import TextEnv

    samples = tiny_env(tok).samples
    long_source = TokenVecEnv(TextEnv(samples, tok, layout="seq2seq", decoder_start_token_id=1, max_prompt_length=80),
                              2, device="cpu")
    with pytest.raises(ValueError, match="layout='seq2seq'.*seq2seq model's encoder \\(bart\\) takes at most 64"):
        PPO("TransformerPolicy", long_source, policy_kwargs=policy_kwargs("bart", tok))


def test_the_source_carries_the_tokenizers_special_tokens_within_the_budget():
    """BART-style tokenizers wrap a text in ``<s> ... </s>`` (T5's add ``</s>``): the encoder sees them as in pre-training,
    and a long source is cut so that they still fit."""
    from tiny import WORDS
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from textgym.core import TextEnv
    from textgym.data.base import Sample

    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", "<s>", ":", "say", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 3), ("</s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>")
    samples = [Sample("short", "say good", ("good",)), Sample("long", "say " + " ".join(WORDS * 3), ("good",))]
    env = TextEnv(samples, tok, max_prompt_length=12, max_new_tokens=2, prompt_template="{source} :",
                  layout="seq2seq", decoder_start_token_id=1)
    for index in (0, 1):
        obs, info = env.reset(options={"sample_index": index})
        ids = obs["input_ids"][obs["attention_mask"].astype(bool)].tolist()
        assert ids[0] == 3 and ids[-1] == 1 and ids[-2] == vocab[":"] and len(ids) <= 12
    assert len(ids) == 12  # the long one fills the budget, special tokens included
