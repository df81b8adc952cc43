"""Learned rewards: classifier, embedding similarity, reward model (tiny models + the real MiniLM)."""

from __future__ import annotations

import math
import pickle
import random

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from textgym.data import load_samples  # noqa: E402
from textgym.rewards import make_reward  # noqa: E402
from textgym.rewards.learned import ClassifierReward, EmbeddingSimilarityReward, resolve_encoder_path  # noqa: E402
from textgym.rewards.reward_model import RewardModel, RewardModelConfig  # noqa: E402
from textgym.rlhf.store import Preference  # noqa: E402
from textgym.rlhf.train import FitConfig, fit_labels, fit_preferences, pairwise_accuracy, split_by_group  # noqa: E402

TEXTS = ["a lovely, moving film", "dull and far too long", "", "I laughed a lot", "   ", "the worst acting ever"]
PROMPTS = ["Review:"] * len(TEXTS)
REFS = [["a great film"]] * len(TEXTS)


@pytest.fixture(scope="module")
def bert_tokenizer():
    return transformers.AutoTokenizer.from_pretrained(resolve_encoder_path("minilm"))


def tiny_bert(tokenizer, head: bool = False, num_labels: int = 2):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                                     num_labels=num_labels, id2label={i: f"L{i}" for i in range(num_labels)},
                                     label2id={f"L{i}": i for i in range(num_labels)})
    cls = transformers.BertForSequenceClassification if head else transformers.BertModel
    return cls(config).eval()


def one_by_one(reward, prompts, texts, refs):
    return [reward([p], [t], [r])[0] for p, t, r in zip(prompts, texts, refs)]


# --------------------------------------------------------------------------- ClassifierReward
def test_classifier_shape_range_batching_and_empty(bert_tokenizer):
    reward = ClassifierReward(tiny_bert(bert_tokenizer, head=True), bert_tokenizer, device="cpu", batch_size=4)
    scores = reward(PROMPTS, TEXTS, REFS)
    assert len(scores) == len(TEXTS) and all(isinstance(s, float) for s in scores)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[2] == scores[4] == 0.0  # empty texts: empty_score, no model call
    assert scores == pytest.approx(one_by_one(reward, PROMPTS, TEXTS, REFS), abs=1e-5)
    assert reward(PROMPTS, TEXTS, REFS) == scores  # deterministic (eval mode)
    assert reward([], [], []) == []


def test_classifier_labels_weights_and_errors(bert_tokenizer, tmp_path):
    model = tiny_bert(bert_tokenizer, head=True, num_labels=3)
    kw = dict(device="cpu")
    p0, p1, p2 = (ClassifierReward(model, bert_tokenizer, label=i, **kw)(PROMPTS, TEXTS, REFS) for i in range(3))
    for k in (0, 1, 3, 5):
        assert p0[k] + p1[k] + p2[k] == pytest.approx(1.0, abs=1e-5)
    by_name = ClassifierReward(model, bert_tokenizer, label="L2", **kw)(PROMPTS, TEXTS, REFS)
    assert by_name == pytest.approx(p2)
    mix = ClassifierReward(model, bert_tokenizer, weights={"L2": 1.0, 0: -1.0}, **kw)(PROMPTS, TEXTS, REFS)
    assert mix[0] == pytest.approx(p2[0] - p0[0], abs=1e-5)
    with pytest.raises(ValueError, match="say which"):
        ClassifierReward(model, bert_tokenizer, **kw)
    with pytest.raises(ValueError, match="unknown label 'POS'"):
        ClassifierReward(model, bert_tokenizer, label="POS", **kw)
    with pytest.raises(ValueError, match="out of range"):
        ClassifierReward(model, bert_tokenizer, label=7, **kw)
    with pytest.raises(TypeError, match="tokenizer"):
        ClassifierReward(model)
    reward = ClassifierReward(model, bert_tokenizer, label=1, **kw)
    with pytest.raises(ValueError, match="same length"):
        reward(["p"], ["a", "b"], [["r"]])
    # From a folder, by spec, with a label name; pickles as its spec and reloads.
    model.save_pretrained(tmp_path / "clf")
    bert_tokenizer.save_pretrained(tmp_path / "clf")
    spec_reward = make_reward(f"classifier:{tmp_path / 'clf'}#L1")
    assert spec_reward.name.startswith("classifier:") and "L1" in spec_reward.name
    assert spec_reward(PROMPTS, TEXTS, REFS) == pytest.approx(p1, abs=1e-5)
    clone = pickle.loads(pickle.dumps(spec_reward))
    assert clone(PROMPTS, TEXTS, REFS) == pytest.approx(p1, abs=1e-5)


# --------------------------------------------------------------------------- EmbeddingSimilarityReward
def test_embedding_similarity_real_minilm():
    reward = make_reward("embedding:minilm")
    assert isinstance(reward, EmbeddingSimilarityReward) and reward.pooling == "mean"
    refs = [["A cat is sitting on the mat."], ["A cat is sitting on the mat."],
            ["A cat is sitting on the mat.", "Stock prices fell sharply today."], ["x"]]
    gens = ["A cat is sitting on the mat.", "Markets dropped a lot.", "Markets dropped a lot.", ""]
    scores = reward(["p"] * 4, gens, refs)
    assert scores[0] == pytest.approx(1.0, abs=1e-4)
    assert scores[3] == 0.0
    assert -1.0 <= scores[1] < 0.4 < scores[2] <= 1.0  # max over references
    assert scores == pytest.approx(one_by_one(reward, ["p"] * 4, gens, refs), abs=1e-4)
    paraphrase = reward(["p"], ["The cat sits on a rug."], [["A cat is sitting on the mat."]])[0]
    assert paraphrase > scores[1]
    clone = pickle.loads(pickle.dumps(reward))
    assert clone(["p"] * 4, gens, refs) == pytest.approx(scores, abs=1e-5)


# --------------------------------------------------------------------------- RewardModel
def make_tiny_rm(tokenizer, **config) -> RewardModel:
    config.setdefault("encoder", "tiny-bert")
    return RewardModel(RewardModelConfig(**config), tiny_bert(tokenizer), tokenizer, device="cpu")


def test_reward_model_save_load_roundtrip_and_spec(bert_tokenizer, tmp_path):
    rm = make_tiny_rm(bert_tokenizer, input="pair", head_hidden=8, max_length=32)
    scores = rm(PROMPTS, TEXTS, REFS)
    assert len(scores) == len(TEXTS) and scores[2] == 0.0
    assert scores == pytest.approx(one_by_one(rm, PROMPTS, TEXTS, REFS), abs=1e-5)
    rm.save(tmp_path / "rm")
    rm.save(tmp_path / "rm")  # replacing a saved model works (atomic swap)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rm"]
    loaded = RewardModel.load(tmp_path / "rm", device="cpu")
    assert loaded.config.head_hidden == 8 and loaded(PROMPTS, TEXTS, REFS) == pytest.approx(scores, abs=1e-5)
    via_spec = make_reward(f"rm:{tmp_path / 'rm'}")
    assert via_spec is make_reward(f"rm:{tmp_path / 'rm'}")  # loaded once, shared
    assert via_spec(PROMPTS, TEXTS, REFS) == pytest.approx(scores, abs=1e-5)
    assert pickle.loads(pickle.dumps(via_spec))(PROMPTS, TEXTS, REFS) == pytest.approx(scores, abs=1e-5)
    mix = make_reward({f"rm:{tmp_path / 'rm'}": 1.0, "rougeL": 0.5})
    assert len(mix(PROMPTS, TEXTS, REFS)) == len(TEXTS)
    with pytest.raises(FileNotFoundError, match="train-rm"):
        make_reward(f"rm:{tmp_path / 'nothing'}")
    with pytest.raises(ValueError, match="input must be"):
        RewardModelConfig(input="both")


def test_missing_sentiment_model_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="textgym rlhf train-sentiment --data-dir"):
        make_reward("rm:imdb-sentiment")


def test_fine_tuned_encoder_learns_a_keyword_preference(bert_tokenizer):
    """The full path (encoder trained, no cache) on an easy oracle: 'great' beats 'awful'."""
    rng = random.Random(0)
    words = "the film plot actor scene music story camera light end".split()

    def text(word):
        body = rng.sample(words, 5)
        body.insert(rng.randrange(6), word)
        return " ".join(body)

    prefs = [Preference("Review:", text("great"), text("awful")) for _ in range(48)]
    train, held = prefs[:32], prefs[32:]
    rm = make_tiny_rm(bert_tokenizer, input="generation", max_length=16)
    before = pairwise_accuracy(rm, held)
    metrics = fit_preferences(rm, train, config=FitConfig(n_epochs=15, batch_size=8, learning_rate=1e-2,
                                                         encoder_learning_rate=1e-3, train_encoder=True))
    assert metrics["n_train"] == 32 and rm.config.output == "score"
    assert pairwise_accuracy(rm, held) >= max(0.9, before)
    assert not any(p.requires_grad for p in rm.encoder.parameters())  # back to eval, frozen


def test_fit_labels_and_errors(bert_tokenizer):
    rm = make_tiny_rm(bert_tokenizer, input="generation", max_length=16)
    texts = [f"{w} movie" for w in ("great", "awful") * 12]
    labels = [1, 0] * 12
    metrics = fit_labels(rm, texts, labels, config=FitConfig(n_epochs=80, batch_size=8))
    assert metrics["train_accuracy"] == 1.0 and rm.config.output == "probability"
    probs = rm(["p"] * 2, ["great movie", "awful movie"], [["r"]] * 2)
    assert 0 <= probs[1] < 0.5 < probs[0] <= 1
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        fit_labels(rm, ["a"], [2])
    with pytest.raises(ValueError, match="no preferences"):
        fit_preferences(rm, [])


# --------------------------------------------------------------------------- oracle validation
def test_reward_model_learns_hidden_oracle_real_minilm(data_dir):
    """A hidden oracle prefers the positive review's continuation; held-out accuracy >> chance."""
    samples = load_samples("imdb", "train", data_dir=data_dir)
    pos = [s for s in samples if s.meta["label"] == 1][:240]
    neg = [s for s in samples if s.meta["label"] == 0][:240]
    rng = random.Random(0)
    prefs = [Preference(f"Continue this movie review: {p.source}", p.references[0], n.references[0])
             for p, n in zip(pos, neg)]
    rng.shuffle(prefs)
    train, held = split_by_group(prefs, [p.prompt for p in prefs], 0.25, seed=0)
    rm = RewardModel(RewardModelConfig(input="generation", max_length=64), device="auto")
    fit_preferences(rm, train, config=FitConfig(n_epochs=60, seed=0))
    accuracy = pairwise_accuracy(rm, held)
    print(f"oracle held-out pairwise accuracy: {accuracy:.3f} on {len(held)} pairs")
    assert len(held) == 60 and accuracy >= 0.65  # chance is 0.5; 0.65 is > 2.3 standard errors above


# --------------------------------------------------------------------------- IMDB-v0 default reward
@pytest.fixture
def sentiment_cache(quick_sentiment_cache, monkeypatch):
    monkeypatch.setenv("TEXTGYM_CACHE", str(quick_sentiment_cache[0]))
    return quick_sentiment_cache


def test_quick_sentiment_model_and_imdb_rm_reward(sentiment_cache, smollm_tokenizer, data_dir):
    cache, metrics = sentiment_cache
    assert (cache / "reward_models" / "imdb-sentiment" / "reward_model.json").is_file()
    for key in ("heldout_accuracy", "heldout_accuracy_imdb", "heldout_accuracy_sentence_polarity",
                "heldout_accuracy_movie_reviews", "heldout_accuracy_imdb_continuations"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["heldout_accuracy"] > 0.6  # tiny subset; the full model is far better
    env = gym.make("textgym/IMDB-v0", tokenizer=smollm_tokenizer, data_dir=str(data_dir), max_new_tokens=4,
                   reward="rm:imdb-sentiment")  # the trained route stays an option
    assert env.unwrapped.reward_fn.name == "rm:imdb-sentiment"
    env.reset(seed=0)
    ids = smollm_tokenizer(" a wonderful, moving and funny film", add_special_tokens=False)["input_ids"][:4]
    assert len(ids) == 4
    for token in ids:
        _, reward, term, trunc, info = env.step(token)
    assert trunc or term
    assert 0.0 <= info["score"] <= 1.0 and math.isfinite(reward)
    assert pickle.loads(pickle.dumps(env.unwrapped)).reward_fn.name == "rm:imdb-sentiment"
