"""Tests for the built-in, zero-download corpora (textgym.data.builtin)."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from textgym.data.base import Sample
from textgym.data.builtin import BUILTIN_DATASETS, SPLITS, load_builtin, split_of

FILES = {
    "builtin_generation": "generation.jsonl",
    "builtin_summarization": "summarization.jsonl",
    "builtin_dialogue": "dialogue.jsonl",
}

# Irregular forms a reference may use instead of the concept's base form.
IRREGULAR = {
    "blow": ("blew",), "build": ("built",), "buy": ("bought",), "catch": ("caught",),
    "child": ("children",), "draw": ("drew",), "drink": ("drank",), "drive": ("drove",),
    "eat": ("ate",), "fall": ("fell",), "feed": ("fed",), "fly": ("flew",), "grow": ("grew",),
    "light": ("lit",), "meet": ("met",), "pay": ("paid",), "ride": ("rode",), "ring": ("rang",),
    "run": ("ran",), "sell": ("sold",), "shine": ("shone",), "shoot": ("shot",),
    "sing": ("sang",), "sit": ("sat",), "swim": ("swam",), "take": ("took",),
    "tell": ("told",), "wake": ("woke",), "wear": ("wore",), "win": ("won",),
    "write": ("wrote",),
}


def _raw(name: str) -> list[dict]:
    path = resources.files("textgym.data") / "builtin" / FILES[name]
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _mentions(reference: str, concept: str) -> bool:
    """True if a word of the reference starts with the concept's stem or an irregular form."""
    stem = concept[:4] if len(concept) >= 6 else concept[:3]
    forms = {stem, *IRREGULAR.get(concept, ())}
    if concept.endswith("y"):  # carry -> carried, cry -> cries
        forms.add(concept[:-1] + "i")
    words = re.findall(r"[a-z]+", reference.lower())
    return any(word.startswith(form) for word in words for form in forms)


def _words(text: str) -> int:
    return len(text.split())


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_files_have_unique_prefixed_ids(name):
    ids = [item["id"] for item in _raw(name)]
    assert len(ids) == len(set(ids))
    prefix = {"builtin_generation": "gen-", "builtin_summarization": "sum-",
              "builtin_dialogue": "dlg-"}[name]
    assert all(i.startswith(prefix) for i in ids)


def test_item_counts():
    assert len(_raw("builtin_generation")) >= 150
    assert len(_raw("builtin_summarization")) >= 60
    assert len(_raw("builtin_dialogue")) >= 60


def test_generation_items_are_well_formed():
    seen = set()
    for item in _raw("builtin_generation"):
        concepts = item["concepts"]
        assert 3 <= len(concepts) <= 5, item["id"]
        assert all(re.fullmatch(r"[a-z]+", c) for c in concepts), item["id"]
        key = frozenset(concepts)
        assert key not in seen, f"duplicate concept set {sorted(key)}"
        seen.add(key)
        assert 2 <= len(item["references"]) <= 3, item["id"]
        for ref in item["references"]:
            assert 6 <= _words(ref) <= 20, (item["id"], ref)


def test_every_generation_reference_uses_every_concept():
    missing = [
        (item["id"], concept, ref)
        for item in _raw("builtin_generation")
        for ref in item["references"]
        for concept in item["concepts"]
        if not _mentions(ref, concept)
    ]
    assert not missing, missing[:10]


def test_concept_check_is_meaningful():
    assert _mentions("She threw the ball.", "throw")
    assert _mentions("The children ran home.", "run")
    assert _mentions("He carried two bags.", "carry")
    assert not _mentions("The cat slept all day.", "dog")
    assert not _mentions("A bird sang.", "ring")


def test_summarization_items_are_well_formed():
    items = _raw("builtin_summarization")
    chats = [i for i in items if re.match(r"^[A-Z][A-Za-z.]*: ", i["document"])]
    # Roughly half news-like paragraphs, half "Name: line" chats.
    assert 0.3 * len(items) <= len(chats) <= 0.7 * len(items)
    for item in items:
        assert 60 <= _words(item["document"]) <= 180, item["id"]
        assert 12 <= _words(item["summary"]) <= 35, item["id"]
    for chat in chats:
        lines = chat["document"].split("\n")
        assert len(lines) >= 4
        assert all(re.match(r"^[A-Z][A-Za-z.]*: \S", line) for line in lines), chat["id"]


def test_dialogue_items_are_well_formed():
    for item in _raw("builtin_dialogue"):
        assert item["topic"].strip()
        assert 4 <= len(item["turns"]) <= 8, item["id"]
        for turn in item["turns"]:
            assert 4 <= _words(turn) <= 30, (item["id"], turn)
            assert "\n" not in turn
            assert not re.match(r"^[A-Z][a-z]*: ", turn), (item["id"], turn)


# ----------------------------------------------------------------------------- splits


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_every_split_non_empty_and_disjoint(name):
    ids = {split: [s.id for s in load_builtin(name, split)] for split in SPLITS}
    for split in SPLITS:
        assert ids[split], f"{name}/{split} is empty"
        assert len(ids[split]) == len(set(ids[split])), "ids must be unique within a split"
    train, val, test = (set(ids[s]) for s in SPLITS)
    assert not train & val
    assert not train & test
    assert not val & test


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_splits_cover_all_items_roughly_80_10_10(name):
    items = _raw(name)
    counts = {split: 0 for split in SPLITS}
    for item in items:
        counts[split_of(item["id"])] += 1
    assert sum(counts.values()) == len(items)
    assert 0.65 <= counts["train"] / len(items) <= 0.92
    assert counts["validation"] >= 3
    assert counts["test"] >= 3


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_splits_are_deterministic_and_fresh(name):
    for split in SPLITS:
        first = load_builtin(name, split)
        second = load_builtin(name, split)
        assert first == second
        assert first is not second  # a fresh list each call
        first.clear()
        assert load_builtin(name, split) == second


def test_split_of_is_pinned():
    # A change here means every user's splits moved: don't.
    assert [split_of(f"gen-{i:04d}") for i in range(1, 13)] == [
        "train", "train", "train", "test", "train", "test",
        "train", "train", "validation", "train", "validation", "train",
    ]
    assert [split_of(f"dlg-{i:03d}") for i in range(1, 7)] == [
        "validation", "train", "train", "train", "train", "test",
    ]


def test_dialogue_turns_never_cross_splits():
    where: dict[str, set[str]] = {}
    for split in SPLITS:
        for sample in load_builtin("builtin_dialogue", split):
            where.setdefault(sample.meta["dialogue"], set()).add(split)
    assert len(where) == len(_raw("builtin_dialogue"))
    assert all(len(splits) == 1 for splits in where.values())


# ----------------------------------------------------------------------------- mapping


def test_generation_mapping():
    raw = {item["id"]: item for item in _raw("builtin_generation")}
    samples = [s for split in SPLITS for s in load_builtin("builtin_generation", split)]
    assert len(samples) == len(raw)
    for sample in samples:
        item = raw[sample.id]
        assert isinstance(sample, Sample)
        assert sample.source == ", ".join(item["concepts"])
        assert sample.references == tuple(item["references"])
        assert sample.meta == {"concepts": item["concepts"]}


def test_summarization_mapping():
    raw = {item["id"]: item for item in _raw("builtin_summarization")}
    samples = [s for split in SPLITS for s in load_builtin("builtin_summarization", split)]
    assert len(samples) == len(raw)
    for sample in samples:
        assert sample.source == raw[sample.id]["document"]
        assert sample.references == (raw[sample.id]["summary"],)


def test_dialogue_expansion():
    raw = _raw("builtin_dialogue")
    by_id = {item["id"]: item for item in raw}
    samples = [s for split in SPLITS for s in load_builtin("builtin_dialogue", split)]
    assert len(samples) == sum(len(item["turns"]) - 1 for item in raw)
    assert len({s.id for s in samples}) == len(samples)
    for sample in samples:
        item = by_id[sample.meta["dialogue"]]
        i = sample.meta["turn"]
        assert 1 <= i < len(item["turns"])
        assert sample.id == f"{item['id']}-t{i}"
        assert sample.source == "\n".join(item["turns"][:i])
        assert sample.references == (item["turns"][i],)
        assert sample.meta["topic"] == item["topic"]


# ----------------------------------------------------------------------------- errors


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="builtin_generation"):
        load_builtin("commongen")


def test_unknown_split_raises():
    with pytest.raises(ValueError, match="validation"):
        load_builtin("builtin_dialogue", "dev")


def test_default_split_is_train():
    assert load_builtin("builtin_summarization") == load_builtin("builtin_summarization", "train")
