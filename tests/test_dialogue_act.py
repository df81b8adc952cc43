"""DailyDialog's packaged dialogue-act reward: the model, how rewards get the act, bad input, the rebuild."""

from __future__ import annotations

import copy
import logging
import pickle

import gymnasium as gym
import numpy as np
import pytest

from textgym.data.base import Sample
from textgym.rewards import References, make_reward
from textgym.rewards.dialogue_act import ACTS, DIALOGUE_ACT_WEIGHTS, DialogueActReward, act_index, load_act_weights


def _turn(i: int, context: str, reply: str, act: object = 2) -> Sample:
    meta = {"dialogue": i, "turn": 1} if act is None else {"dialogue": i, "turn": 1, "act": act}
    return Sample(f"dd-{i}-1", context, (reply,), meta)


def test_references_are_lists_with_fields_that_survive_pickle_and_copy():
    refs = References(["Why not? See."], {"act": 1})
    assert refs == ["Why not? See."] and isinstance(refs, list)
    for other in (pickle.loads(pickle.dumps(refs)), copy.deepcopy(refs)):
        assert other == refs and other.fields == {"act": 1}
    assert References(["x"]).fields == {}


def test_act_labels_names_and_codes():
    assert [act_index(a) for a in ACTS] == [act_index(c) for c in (1, 2, 3, 4)] == [0, 1, 2, 3]
    assert act_index(np.int64(4)) == 3
    for bad in (0, 5, True, "greeting", None, 2.0):
        with pytest.raises(ValueError, match="unknown dialogue act"):
            act_index(bad)


def test_packaged_model_is_small_and_accurate_on_held_out_turns(data_dir):
    from textgym.data import load_samples

    assert DIALOGUE_ACT_WEIGHTS.stat().st_size <= 1_000_000
    _, _, meta = load_act_weights()
    held = [s for s in load_samples("dailydialog", "validation", data_dir) if s.meta.get("act")]
    reward = DialogueActReward(accuracy=True)
    hits = reward([""] * len(held), [s.references[0] for s in held],
                  [References(s.references, s.meta) for s in held])
    accuracy = sum(hits) / len(held)
    assert len(held) == 7030 and accuracy == pytest.approx(meta["heldout_accuracy"], abs=1e-6)
    assert accuracy >= 0.70 > meta["heldout_majority_rate"] + 0.25  # measured 0.75 vs 0.42 (always inform)


def test_probability_and_accuracy_rewards():
    prob, acc = make_reward("dialogue_act"), make_reward("dialogue_act_acc")
    texts = ["Where is the station?", "OK, I will.", "", "Please sit down."]
    refs = [References(["r"], {"act": a}) for a in ("question", "commissive", "inform", "directive")]
    p, a = prob([""] * 4, texts, refs), acc([""] * 4, texts, refs)
    assert all(0.0 <= x <= 1.0 for x in p) and set(a) <= {0.0, 1.0}
    assert min(p[0], p[1], p[3]) > 0.5 and a == [1.0, 1.0, 0.0, 1.0] and p[2] == 0.0  # an empty reply scores 0
    assert acc([""], ["Could you tell me the way?"], [References(["r"], {"act": 3})]) == [1.0]  # DailyDialog: directive
    full = DialogueActReward().probabilities(texts)  # (4, 4)
    assert full.shape == (4, 4) and np.allclose(full.sum(1), 1.0, atol=1e-5)


def test_dailydialog_env_pays_the_act_reward_from_the_sample(smollm_tokenizer):
    from textgym.tasks.dialogue import DialogueEnv

    samples = [_turn(0, "Can you manage chopsticks?", "Why not? See.", act=1)]
    env = DialogueEnv("dailydialog", samples=samples, tokenizer=smollm_tokenizer, max_new_tokens=8,
                      reward={"rougeL": 1.0, "dialogue_act": 1.0, "dialogue_act_acc": 0.0})
    _, info = env.reset(seed=0)
    assert info["references"].fields["act"] == 1  # the env hands the sample's fields over
    for token in smollm_tokenizer("Yes, I can.", add_special_tokens=False)["input_ids"] + [env.eos_token_id]:
        _, reward, terminated, truncated, info = env.step(token)
        if terminated or truncated:
            break
    metrics = info["metrics"]
    assert terminated and set(metrics) >= {"rougeL", "dialogue_act", "dialogue_act_acc"}
    assert metrics["dialogue_act"] > 0.5 and metrics["dialogue_act_acc"] == 1.0  # "Yes, I can." informs
    assert reward == pytest.approx(metrics["rougeL"] + metrics["dialogue_act"])


def test_vector_env_gets_the_act_too(smollm_tokenizer):
    from textgym import make_vec

    question = smollm_tokenizer("Why?", add_special_tokens=False)["input_ids"]
    for act, paid in ((2, lambda r: r > 0.5), (3, lambda r: r < 0.5)):  # "Why?" asks: question, not directive
        samples = [_turn(i, "I'm leaving tomorrow.", "Really?", act=act) for i in range(3)]
        vec = make_vec("textgym/DailyDialog-v0", 2, "cpu", samples=samples, tokenizer=smollm_tokenizer,
                       max_new_tokens=len(question), reward="dialogue_act")
        vec.reset()
        for token in question:
            _, rewards, dones, _ = vec.step(np.full(2, token, dtype=np.int64))
        assert dones.all() and all(paid(r) for r in rewards), (act, rewards)


def test_items_without_an_act_are_left_out_with_a_warning(smollm_tokenizer, caplog):
    from textgym.tasks.dialogue import DialogueEnv

    samples = [_turn(0, "Hi.", "Hello.", act=1), _turn(1, "Hi there.", "Hey.", act=None)]
    with caplog.at_level(logging.WARNING):
        env = DialogueEnv("dailydialog", samples=samples, tokenizer=smollm_tokenizer, reward="dialogue_act")
    assert [s.id for s in env.samples] == ["dd-0-1"] and "left out 1 of 2 samples" in caplog.text
    plain = DialogueEnv("dailydialog", samples=samples, tokenizer=smollm_tokenizer)  # rougeL needs no act
    assert len(plain.samples) == 2


def test_bad_dialogue_input_gets_clear_errors(smollm_tokenizer):
    from textgym.tasks.dialogue import DialogueEnv

    with pytest.raises(ValueError, match=r"needs the sample field\(s\) \['act'\].*DailyDialog"):
        gym.make("textgym/Dialogue-v0", tokenizer=smollm_tokenizer, reward={"rougeL": 1.0, "dialogue_act": 0.5})
    with pytest.raises(ValueError, match=r"sample 'dd-0-1': unknown dialogue act 7; allowed"):
        DialogueEnv("dailydialog", samples=[_turn(0, "Hi.", "Hello.", act=7)], tokenizer=smollm_tokenizer)
    with pytest.raises(ValueError, match="empty source text"):
        DialogueEnv("dailydialog", samples=[_turn(0, "  ", "Hello.")], tokenizer=smollm_tokenizer)
    with pytest.raises(ValueError, match="needs the reference act of every item"):
        make_reward("dialogue_act")([""], ["Hello."], [["Hi."]])  # plain lists carry no act
    with pytest.raises(FileNotFoundError, match="benchmarks/dialogue_act_reward.py"):
        DialogueActReward("/nonexistent/acts.npz")


def test_rebuild_round_trip(tmp_path, data_dir):
    from benchmarks.dialogue_act_reward import build

    out = tmp_path / "acts.npz"
    metrics = build(str(data_dir), out, bits_grid=(10,), l2_grid=(1e-3,), limit=1500, max_iter=25)
    weights, bias, meta = load_act_weights(out)
    assert weights.shape == (4, 1 << 10) and bias.shape == (4,) and meta["bits"] == 10 and meta["seed"] == 0
    assert metrics["n_heldout"] == 1500 and 0.5 <= metrics["heldout_accuracy"] <= 1.0
    refs = [References(["r"], {"act": "question"})]
    assert DialogueActReward(out)([""], ["Where are you going?"], refs)[0] > 0.4
