"""Files are checked for what they are before use: a missing model or tokenizer, a corrupt reward
model or data file, or a malformed CommonGen scene is an error naming the file."""

from __future__ import annotations

import json

import pytest

from textgym.data.loaders import DataError, _parse_commongen_jsonl


def test_model_and_tokenizer_errors_name_the_name(tmp_path, monkeypatch):
    from textgym.models import load_causal_lm, load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="'no-such-org/no-such-model' is not a local folder"):
        load_tokenizer("no-such-org/no-such-model")
    with pytest.raises(FileNotFoundError, match="holds no tokenizer files"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_causal_lm(tmp_path)


def test_corrupt_reward_model_files_are_named(tmp_path):
    from textgym.rewards.reward_model import RewardModel

    folder = tmp_path / "rm"
    folder.mkdir()
    (folder / "reward_model.json").write_text('{"head_hidden": ')
    with pytest.raises(ValueError, match="reward_model.json is not valid JSON"):
        RewardModel.load(folder)
    (folder / "reward_model.json").write_bytes(b'{"x": "\xff"}')
    with pytest.raises(ValueError, match="not valid UTF-8"):
        RewardModel.load(folder)


def test_corrupt_data_files_are_named(tmp_path):
    from textgym.data.loaders import DataError, _parse_imdb, _parse_summary_json

    imdb = tmp_path / "train.csv"
    imdb.write_bytes(b"id,sentiment,review\n1,1,good \xff\xfe film\n")
    with pytest.raises(DataError, match="train.csv is not valid UTF-8"):
        _parse_imdb(imdb, "train")
    summ = tmp_path / "samsum" / "train.json"
    summ.parent.mkdir()
    summ.write_text('[{"dialogue": "a", "summary": ')
    with pytest.raises(DataError, match="train.json"):
        _parse_summary_json(summ, "train")


def test_commongen_scene_as_a_string_is_a_data_error(tmp_path):
    path = tmp_path / "commongen.jsonl"
    path.write_text(json.dumps({"concept_set": "dog_N#run_V", "scene": "A dog runs."}) + "\n")
    with pytest.raises(DataError, match=r"commongen.jsonl:1: 'scene' must be a list"):
        _parse_commongen_jsonl(path, "train")
    path.write_text(json.dumps({"concept_set": "dog_N#run_V", "scene": ["A dog runs.", 3]}) + "\n")
    with pytest.raises(DataError, match="list of reference sentences"):
        _parse_commongen_jsonl(path, "train")
