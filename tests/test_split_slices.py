"""Split slices as in Hugging Face datasets (``validation[:700]``, ``train[90%:]``) on every id,
and IMDB's held-out slice standing in for its missing validation split."""

from __future__ import annotations

import logging

import gymnasium as gym
import pytest

import textgym
from textgym.data import load_samples, parse_split
from textgym.data.splits import slice_items

IDS = [e.env_id for e in textgym.ENVS]
SHIPPED = {"builtin_generation": "train", "builtin_summarization": "train", "builtin_dialogue": "train",
           "commongen": "validation", "imdb": "train", "cnn_dailymail": "validation", "samsum": "validation",
           "dialogsum": "validation", "dailydialog": "validation"}


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
