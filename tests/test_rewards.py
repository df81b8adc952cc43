"""Metric rewards, weighted mixes and the reward registry (textgym.rewards)."""

from __future__ import annotations

import copy
import json
import math
import pickle
import random
import subprocess
import sys

import pytest

from textgym.rewards import (
    BLEUReward,
    CHRFReward,
    RewardFn,
    RougeReward,
    WeightedReward,
    available_reward_prefixes,
    available_rewards,
    bleu,
    chrf,
    make_reward,
    register_reward,
    register_reward_prefix,
    rouge1,
    rouge2,
    rougeL,
    rougeLsum,
    score_and_components,
    score_components,
)
from textgym.rewards import overlap, registry
from textgym.rewards.overlap import split_sentences

METRICS = [bleu, chrf, rouge1, rouge2, rougeL, rougeLsum]
ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
ids = [m.name for m in METRICS]

# Small hand-written corpus: summaries, dialogue turns, CNN/DM-style multi-line highlights.
TEXTS = [
    "The cat sat on the mat.",
    "A cat was sitting on a mat in the sun. It looked happy!",
    "Zully Broussard decided to give a kidney to a stranger.\nA new computer program helped "
    "her donation spur transplants for six kidney patients.",
    "Broussard gave her kidney to a stranger, and six patients got transplants.",
    "Hey, are you coming to the party tonight? I'll bring the snacks.",
    "I can't make it tonight, sorry. Maybe next week?",
    "Stocks fell 3% on Monday after the central bank raised rates by 0.5 points.",
    "The central bank's rate rise sent stocks lower on Monday.",
    "running runners ran quickly",
    "Ça va très bien, merci ! Et toi ?",
]


def _random_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    vocab = ("the a cat cats dog mat sat sitting on in of and , . ! ? running ran runs 42 3.5 "
             "Bank bank's rates rate don't ça va — \"quoted\" (paren)").split()
    out = []
    for _ in range(n):
        words = rng.choices(vocab, k=rng.randint(0, 25))
        text = " ".join(words)
        if rng.random() < 0.2:
            text = text.replace(". ", ".\n")
        out.append(text)
    return out


def _sacrebleu_score(kind: str, hyp: str, refs: list[str]) -> float:
    import sacrebleu

    if kind == "bleu":
        metric = sacrebleu.metrics.BLEU(effective_order=True)
    else:
        metric = sacrebleu.metrics.CHRF()
    return metric.sentence_score(hyp, refs).score / 100.0


def _rouge_score(kind: str, hyp: str, refs: list[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
    if kind == "rougeLsum":  # our documented sentence splitting, then the library as is
        hyp = split_sentences(hyp)
        refs = [r if "\n" in r else split_sentences(r) for r in refs]
    return scorer.score_multi(refs, hyp)[kind].fmeasure


def _library_score(kind: str, hyp: str, refs: list[str]) -> float:
    if kind in ("bleu", "chrf"):
        return _sacrebleu_score(kind, hyp, refs)
    return _rouge_score(kind, hyp, refs)


# --------------------------------------------------------------------------- edge semantics


@pytest.mark.parametrize("metric", METRICS, ids=ids)
@pytest.mark.parametrize("text", TEXTS + ["hello", "!!!", "42"])
def test_identical_text_scores_one(metric, text):
    assert metric(["prompt"], [text], [[text]]) == [1.0]
    # Also among other references, and with surrounding whitespace.
    assert metric(["prompt"], [f"  {text}\n"], [["something else entirely", text]]) == [1.0]


@pytest.mark.parametrize("metric", METRICS, ids=ids)
@pytest.mark.parametrize("gen", ["", " ", "\n\t  "])
def test_empty_generation_scores_zero(metric, gen):
    assert metric(["p"], [gen], [["The cat sat on the mat."]]) == [0.0]


@pytest.mark.parametrize("metric", METRICS, ids=ids)
def test_scores_are_floats_in_unit_interval(metric):
    gens, refs = _random_texts(1, 80), _random_texts(2, 160)
    references = [[refs[2 * i] or "x", refs[2 * i + 1]] for i in range(80)]
    scores = metric(["p"] * 80, gens, references)
    assert len(scores) == 80
    assert all(type(s) is float and 0.0 <= s <= 1.0 for s in scores)
    assert any(0.0 < s < 1.0 for s in scores)  # not degenerate


def test_empty_batch():
    for metric in METRICS:
        assert metric([], [], []) == []


# --------------------------------------------------------------------------- library agreement


@pytest.mark.parametrize("kind", ["bleu", "chrf"] + ROUGE_TYPES)
def test_matches_library_called_directly(kind):
    metric = make_reward(kind)
    gens = TEXTS + _random_texts(3, 40)
    pool = TEXTS + _random_texts(4, 40)
    rng = random.Random(5)
    refs = [rng.sample(pool, rng.randint(1, 4)) for _ in gens]
    got = metric(["p"] * len(gens), gens, refs)
    for g, r, value in zip(gens, refs, got):
        if not g.strip() or any(g.strip() == x.strip() for x in r):
            continue  # our documented 0.0 / 1.0 rules
        expected = min(max(_library_score(kind, g, r), 0.0), 1.0)
        assert value == pytest.approx(expected, rel=1e-12, abs=1e-12), (g, r)


def test_hand_computed_values():
    # ROUGE-1 with stemming: "cats running" -> [cat, run]; "the cat runs" -> [the, cat, run].
    # 2 matches: P = 2/2, R = 2/3, F1 = 2PR/(P+R) = 0.8.
    assert rouge1(["p"], ["cats running"], [["the cat runs"]]) == [pytest.approx(0.8)]
    # ROUGE-2: bigrams (the cat), (cat sat) both match; P = 2/2, R = 2/5 -> F1 = 4/7.
    assert rouge2(["p"], ["the cat sat"], [["the cat sat on the mat"]]) == [pytest.approx(4 / 7)]
    # ROUGE-L: LCS("the mat sat", "the mat is red") = "the mat": P = 2/3, R = 2/4 -> F1 = 4/7,
    # better than against "a cat sat on the mat" (P = 2/3, R = 2/6 -> 4/9): max over refs.
    assert rougeL(["p"], ["the mat sat"], [["a cat sat on the mat", "the mat is red"]]) == [
        pytest.approx(4 / 7)]
    # BLEU, effective order: 1- and 2-gram precisions are 100%, 3-grams absent;
    # brevity penalty exp(1 - 3/2).
    assert bleu(["p"], ["the cat"], [["the cat sat"]]) == [pytest.approx(math.exp(-0.5))]
    # chrF (beta 2, whitespace dropped): "ab" vs "abcd", effective orders 1 and 2:
    # avg P = 1, avg R = (2/4 + 1/3) / 2 = 5/12, F2 = 5 P R / (4 P + R) = 25/53.
    assert chrf(["p"], ["ab"], [["abcd"]]) == [pytest.approx(25 / 53)]


def test_rouge_l_fast_lcs_is_exact():
    # The bit-parallel LCS must equal rouge-score's DP on repetitive token sequences.
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rng = random.Random(0)
    vocab = "a b c d e".split()
    for _ in range(500):
        gen = " ".join(rng.choices(vocab, k=rng.randint(1, 40)))
        ref = " ".join(rng.choices(vocab, k=rng.randint(1, 70)))
        if gen != ref:
            assert rougeL(["p"], [gen], [[ref]]) == [scorer.score(ref, gen)["rougeL"].fmeasure]


def test_reference_cache_does_not_change_scores():
    gens, refs = TEXTS, [[t, TEXTS[0]] for t in reversed(TEXTS)]
    prompts = ["p"] * len(gens)
    for fresh, uncached in ((BLEUReward(), BLEUReward(ref_cache_size=0)),
                            (CHRFReward(), CHRFReward(ref_cache_size=0))):
        first = fresh(prompts, gens, refs)
        assert fresh(prompts, gens, refs) == first == uncached(prompts, gens, refs)


# --------------------------------------------------------------------------- multi-ref, batching


@pytest.mark.parametrize("metric", [chrf, rouge1, rouge2, rougeL, rougeLsum], ids=lambda m: m.name)
def test_multi_reference_takes_the_max(metric):
    gen = "Broussard gave a kidney to a stranger; six patients got new kidneys."
    refs = [TEXTS[2], TEXTS[3], TEXTS[0]]
    singles = [metric(["p"], [gen], [[r]])[0] for r in refs]
    assert metric(["p"], [gen], [refs]) == [pytest.approx(max(singles))]
    assert metric(["p"], [gen], [refs[::-1]]) == metric(["p"], [gen], [refs])


def test_bleu_multi_reference_is_sacrebleu_multi_reference():
    gen, refs = TEXTS[1], [TEXTS[0], TEXTS[3]]
    assert bleu(["p"], [gen], [refs]) == [pytest.approx(_sacrebleu_score("bleu", gen, refs))]
    assert bleu(["p"], [gen], [refs])[0] >= bleu(["p"], [gen], [refs[:1]])[0]


@pytest.mark.parametrize("metric", METRICS, ids=ids)
def test_batch_equals_one_by_one(metric):
    gens = TEXTS + _random_texts(6, 20)
    refs = [[TEXTS[(i + 1) % len(TEXTS)], TEXTS[(i + 3) % len(TEXTS)]] for i in range(len(gens))]
    prompts = [f"prompt {i}" for i in range(len(gens))]
    batched = metric(prompts, gens, refs)
    single = [metric([p], [g], [r])[0] for p, g, r in zip(prompts, gens, refs)]
    assert batched == single


@pytest.mark.parametrize("metric", METRICS, ids=ids)
def test_inputs_not_mutated(metric):
    prompts, gens = ["p1", "p2"], ["The cats sat. Then ran!", "hello"]
    refs = [["the cat sat", "a dog ran"], ("hello there",)]
    before = copy.deepcopy((prompts, gens, refs))
    metric(prompts, gens, refs)
    assert (prompts, gens, refs) == before


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("metric", METRICS, ids=ids)
def test_bad_batches_are_rejected_with_the_item(metric):
    with pytest.raises(ValueError, match=r"same length, got 2, 1 and 2"):
        metric(["a", "b"], ["x"], [["r"], ["r"]])
    with pytest.raises(ValueError, match=r"references\[1\].*got a str"):
        metric(["a", "b"], ["x", "y"], [["r"], "r"])
    with pytest.raises(ValueError, match=r"references\[0\].*empty"):
        metric(["a"], ["x"], [[]])
    with pytest.raises(ValueError, match=r"references\[0\]\[1\] must be a str, got NoneType"):
        metric(["a"], ["x"], [["r", None]])
    with pytest.raises(ValueError, match=r"references\[0\].*got int"):
        metric(["a"], ["x"], [3])
    with pytest.raises(TypeError, match=r"generations\[1\] must be a str"):
        metric(["a", "b"], ["x", 5], [["r"], ["r"]])
    with pytest.raises(TypeError, match=r"generations must be a sequence"):
        metric(["a"], "x", [["r"]])


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="rouge_type"):
        RougeReward("rougeX")
    with pytest.raises(ValueError, match="ref_cache_size"):
        BLEUReward(ref_cache_size=-1)


# --------------------------------------------------------------------------- misc behaviour


def test_split_sentences_and_rouge_lsum_references():
    assert split_sentences("A b. C d! E? F") == "A b.\nC d!\nE?\nF"
    assert split_sentences("3.5 points.\nNext") == "3.5 points.\nNext"
    # A reference with newlines is kept as it is: it is the CNN/DailyMail convention.
    gen = "Zully Broussard decided to give a kidney to a stranger. A new program helped."
    assert rougeLsum(["p"], [gen], [[TEXTS[2]]]) == [
        pytest.approx(_rouge_score("rougeLsum", gen, [TEXTS[2]]))]


def test_signatures():
    import sacrebleu

    ref = sacrebleu.metrics.BLEU(effective_order=True)
    ref.sentence_score("a", ["a"])
    sig = ref.get_signature()
    sig.update("nrefs", "var")
    assert overlap.BLEU_SIGNATURE == bleu.signature == sig.format()
    version = sacrebleu.__version__
    assert bleu.signature == f"nrefs:var|case:mixed|eff:yes|tok:13a|smooth:exp|version:{version}"
    assert chrf.signature == overlap.CHRF_SIGNATURE
    assert chrf.signature == f"nrefs:var|case:mixed|eff:yes|nc:6|nw:0|space:no|version:{version}"
    assert "stem:porter" in rougeL.signature and "type:rougeL" in rougeL.signature
    with pytest.raises(AttributeError):
        overlap.NOT_A_SIGNATURE  # noqa: B018


@pytest.mark.parametrize("reward", METRICS + [make_reward({"bleu": 0.5, "rougeLsum": 1.0})],
                         ids=lambda r: r.name)
def test_rewards_pickle_and_still_score(reward):
    args = (["p"], ["The cat sat. It was happy."], [["the cat sat on the mat", "it was happy"]])
    expected = reward(*args)  # after first use: library objects and caches exist
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.name == reward.name and clone(*args) == expected


def test_importing_rewards_is_cheap():
    code = ("import sys, textgym.rewards; "
            "heavy = [m for m in ('sacrebleu', 'rouge_score', 'nltk') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- WeightedReward


def test_weighted_reward_arithmetic_and_components():
    gens = ["the cat sat", "the cat", "", "a dog"]
    refs = [["the cat sat"], ["the cat sat"], ["x"], ["the cat sat on the mat"]]
    prompts = ["p"] * 4
    mix = WeightedReward({"bleu": bleu, "rougeL": rougeL, "chrf": chrf},
                         {"bleu": 0.5, "rougeL": 2, "chrf": -0.25})
    assert mix.name == "0.5*bleu+2.0*rougeL-0.25*chrf"
    assert isinstance(mix, RewardFn)
    parts = mix.score_components(prompts, gens, refs)
    assert list(parts) == ["bleu", "rougeL", "chrf"]
    for key, fn in (("bleu", bleu), ("rougeL", rougeL), ("chrf", chrf)):
        assert parts[key] == fn(prompts, gens, refs)
    expected = [0.5 * b + 2.0 * r - 0.25 * c
                for b, r, c in zip(parts["bleu"], parts["rougeL"], parts["chrf"])]
    assert mix(prompts, gens, refs) == pytest.approx(expected)
    assert mix(prompts, gens, refs)[0] == pytest.approx(0.5 + 2.0 - 0.25)
    assert mix(prompts, gens, refs)[2] == 0.0
    total, comps = score_and_components(mix, prompts, gens, refs)
    assert total == mix(prompts, gens, refs) and comps == parts
    assert score_components(mix, prompts, gens, refs) == parts


def test_score_components_of_a_single_reward():
    args = (["p"], ["the cat"], [["the cat sat"]])
    assert score_components(rouge1, *args) == {"rouge1": rouge1(*args)}
    assert score_and_components(bleu, *args) == (bleu(*args), {"bleu": bleu(*args)})


def test_weighted_reward_copies_and_checks_its_inputs():
    components, weights = {"bleu": bleu}, {"bleu": 1}
    mix = WeightedReward(components, weights)
    weights["bleu"] = 5.0
    components["chrf"] = chrf
    assert mix.weights == {"bleu": 1.0} and list(mix.components) == ["bleu"]
    assert mix.name == "1.0*bleu"
    with pytest.raises(ValueError, match="at least one"):
        WeightedReward({}, {})
    with pytest.raises(ValueError, match=r"missing weights for \['chrf'\]"):
        WeightedReward({"bleu": bleu, "chrf": chrf}, {"bleu": 1.0})
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            WeightedReward({"bleu": bleu}, {"bleu": bad})
    for bad in ("1.0", None, True):
        with pytest.raises(TypeError, match="finite number"):
            WeightedReward({"bleu": bleu}, {"bleu": bad})
    with pytest.raises(TypeError, match="not a RewardFn"):
        WeightedReward({"bleu": len}, {"bleu": 1.0})


def test_weighted_reward_checks_component_output_length():
    class Broken:
        name = "broken"

        def __call__(self, prompts, generations, references):
            return [0.0]

    mix = WeightedReward({"broken": Broken()}, {"broken": 1.0})
    with pytest.raises(ValueError, match="'broken' returned 1 scores for 2"):
        mix(["p", "p"], ["a", "b"], [["a"], ["b"]])


# --------------------------------------------------------------------------- registry


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_NAMED", dict(registry._NAMED))
    monkeypatch.setattr(registry, "_PREFIXED", dict(registry._PREFIXED))


def test_make_reward_from_names_mappings_and_objects():
    assert set(ROUGE_TYPES + ["bleu", "chrf"]) <= set(available_rewards())
    for metric in METRICS:
        assert make_reward(metric.name) is metric
        assert make_reward(metric) is metric
    mix = make_reward(json.loads('{"bleu": 1, "rougeL": 0.5}'))  # as it comes from gym.make
    assert isinstance(mix, WeightedReward) and mix.name == "1.0*bleu+0.5*rougeL"
    assert mix.components == {"bleu": bleu, "rougeL": rougeL}
    args = (["p"], ["the cat"], [["the cat sat"]])
    assert mix(*args) == [pytest.approx(bleu(*args)[0] + 0.5 * rougeL(*args)[0])]
    assert make_reward(mix) is mix


def test_make_reward_errors_name_what_is_allowed():
    with pytest.raises(ValueError, match=r"'blue' \(did you mean 'bleu'\?\).*rougeL"):
        make_reward("blue")
    with pytest.raises(ValueError, match="at least one"):
        make_reward({})
    with pytest.raises(ValueError, match="unknown reward 'meteor'.*available names"):
        make_reward({"bleu": 1.0, "meteor": 1.0})
    with pytest.raises(ValueError, match="finite"):
        make_reward({"bleu": float("nan")})
    with pytest.raises(TypeError, match="finite number"):
        make_reward({"bleu": "1"})
    for bad in (None, 3, ["bleu", "rougeL"], ("bleu",)):
        with pytest.raises(TypeError, match=r"\(str\), a \{name: weight\} mapping or a RewardFn"):
            make_reward(bad)
    with pytest.raises(TypeError, match="keys must be reward names"):
        make_reward({1: 1.0})


def test_register_reward_and_prefix(clean_registry):
    seen = []

    def rm_factory(arg):
        seen.append(arg)
        return RougeReward("rouge1")

    register_reward_prefix("test-rm", rm_factory)
    assert "test-rm:" in available_reward_prefixes()
    assert make_reward("test-rm:/path/to/model:v2").name == "rouge1"
    assert seen == ["/path/to/model:v2"]  # everything after the first ':'
    mix = make_reward({"test-rm:/m": 1.0, "bleu": 0.1})
    assert list(mix.components) == ["test-rm:/m", "bleu"]
    with pytest.raises(ValueError, match="needs an argument after 'test-rm:'"):
        make_reward("test-rm:")
    with pytest.raises(ValueError, match="already registered"):
        register_reward_prefix("test-rm:", rm_factory)
    register_reward_prefix("test-rm:", rm_factory, overwrite=True)
    with pytest.raises(ValueError, match="unknown reward 'clf:x'.*'test-rm:<arg>'"):
        make_reward("clf:x")

    register_reward("rouge3", lambda: RougeReward("rouge3"))
    assert "rouge3" in available_rewards() and make_reward("rouge3").name == "rouge3"
    with pytest.raises(ValueError, match="already registered"):
        register_reward("bleu", lambda: bleu)
    with pytest.raises(ValueError, match="without ':'"):
        register_reward("a:b", lambda: bleu)
    with pytest.raises(TypeError, match="callable"):
        register_reward("x", "not callable")
    register_reward("broken", lambda: 42)
    with pytest.raises(TypeError, match="did not return a RewardFn"):
        make_reward("broken")


def test_registry_fixture_restores_state():
    assert "test-rm:" not in available_reward_prefixes() and "broken" not in available_rewards()
