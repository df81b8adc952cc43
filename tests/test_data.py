"""Data loaders: the real files of shared/data (read-only) and hand-made files in tmp_path."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import types
from pathlib import Path

import pytest

from textgym.data import (
    BUILTIN_DATASETS,
    DATASETS,
    KNOWN_DATASETS,
    DataError,
    Sample,
    detokenize,
    load_samples,
)
from textgym.data import hub, loaders

# (dataset, split, number of Samples) for every split shipped in shared/data.
SHIPPED = [
    ("commongen", "train", 27069),  # 39,069 lines in 27,069 runs of identical concept lines
    ("commongen", "validation", 993),
    ("imdb", "train", 4000),
    ("cnn_dailymail", "validation", 800),
    ("samsum", "validation", 818),
    ("dialogsum", "validation", 500),
    ("dailydialog", "train", 54046),  # sum over dialogues of (turns - 1)
    ("dailydialog", "validation", 7030),
]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text("utf-8").rstrip("\n").split("\n")


# --------------------------------------------------------------------------- real data


@pytest.mark.parametrize(("dataset", "split", "count"), SHIPPED)
def test_shipped_split_counts_and_structure(data_dir, dataset, split, count):
    samples = load_samples(dataset, split, data_dir=data_dir)
    assert len(samples) == count
    assert len({s.id for s in samples}) == count
    for s in samples:
        assert isinstance(s, Sample)
        assert isinstance(s.source, str) and s.source.strip()
        assert isinstance(s.references, tuple) and s.references
        assert all(isinstance(r, str) and r.strip() for r in s.references)


def test_all_real_datasets_have_a_shipped_split():
    assert {d for d, _, _ in SHIPPED} == set(DATASETS)
    assert set(KNOWN_DATASETS) == set(DATASETS) | set(BUILTIN_DATASETS)


def test_commongen_train_groups_consecutive_lines(data_dir):
    lines = _lines(data_dir / "commongen" / "commongen.train.src_alpha.txt")
    runs = [1]
    for prev, line in zip(lines, lines[1:]):
        if line == prev:
            runs[-1] += 1
        else:
            runs.append(1)
    samples = load_samples("commongen", "train", data_dir=data_dir)
    assert [len(s.references) for s in samples] == runs
    assert samples[0].source == ", ".join(lines[0].split())
    assert samples[0].meta["concepts"] == lines[0].split()


def test_commongen_dev_strips_pos_tags(data_dir):
    samples = load_samples("commongen", "validation", data_dir=str(data_dir))
    assert sum(len(s.references) for s in samples) == 4018
    assert not any("_N" in s.source or "_V" in s.source or "#" in s.source for s in samples)
    assert all(s.source == ", ".join(s.meta["concepts"]) for s in samples)


def _dialogue_turn_counts(path: Path, tsv: bool) -> list[int]:
    counts = []
    for line in _lines(path):
        text = line.split("\t")[0] if tsv else line
        counts.append(sum(1 for part in text.split("__eou__") if part.strip()))
    return counts


@pytest.mark.parametrize(("split", "name", "tsv"), [
    ("train", "dialogues_text_En.txt", False),
    ("validation", "en_dev_human.txt", True),
])
def test_dailydialog_expands_every_turn(data_dir, split, name, tsv):
    counts = _dialogue_turn_counts(data_dir / "dailydialog" / name, tsv)
    samples = load_samples("dailydialog", split, data_dir=data_dir)
    assert len(samples) == sum(n - 1 for n in counts if n > 1)
    first = [s for s in samples if s.meta["dialogue"] == 0]
    assert [s.meta["turn"] for s in first] == list(range(1, counts[0]))
    # Each context is the previous context plus the previous reference.
    for a, b in zip(first, first[1:]):
        assert b.source == a.source + "\n" + a.references[0]
    assert all(" __eou__" not in s.source and "’" not in s.references[0] for s in samples)
    assert all(isinstance(s.meta["topic"], int) for s in samples)


def test_dailydialog_train_labels_only_when_aligned(data_dir):
    samples = load_samples("dailydialog", "train", data_dir=data_dir)
    labelled = [s for s in samples if "emotion" in s.meta]
    assert labelled
    assert all(0 <= s.meta["emotion"] <= 6 and 1 <= s.meta["act"] <= 4 for s in labelled)
    # Some dialogues have more labels than turns in this copy; those keep no per-turn labels.
    assert all("act" not in s.meta for s in samples if "emotion" not in s.meta)


def test_imdb_continuation_items(data_dir):
    samples = load_samples("imdb", "train", data_dir=data_dir)
    assert {s.meta["label"] for s in samples} == {0, 1}
    for s in samples:
        assert len(s.source.split()) == loaders.IMDB_PROMPT_WORDS
        assert 0 < len(s.references[0].split()) <= loaders.IMDB_CONTINUATION_WORDS
        assert "<br" not in s.source + s.references[0]


def test_cnn_highlights_keep_newlines_and_csv_ids(data_dir):
    samples = load_samples("cnn_dailymail", "validation", data_dir=data_dir)
    assert all(len(s.id) == 40 for s in samples)
    assert sum("\n" in s.references[0] for s in samples) > len(samples) // 2


@pytest.mark.parametrize("dataset", ["samsum", "dialogsum"])
def test_summary_ids(data_dir, dataset):
    samples = load_samples(dataset, "validation", data_dir=data_dir)
    assert samples[0].id == f"{dataset}-validation-0"
    assert samples[-1].id == f"{dataset}-validation-{len(samples) - 1}"


def test_cached_loads_are_fresh_lists_and_fast(data_dir):
    loaders._load_cached.cache_clear()
    for dataset in ("commongen", "dailydialog"):
        start = time.perf_counter()
        first = load_samples(dataset, "train", data_dir=data_dir)
        assert time.perf_counter() - start < 5.0  # ~0.2 s and ~0.6 s on a dev machine
        second = load_samples(dataset, "train", data_dir=data_dir)
        assert first == second and first is not second
        first.clear()
        assert load_samples(dataset, "train", data_dir=data_dir) == second


# --------------------------------------------------------------------------- unshipped splits


def test_missing_split_names_the_file_then_loads_when_present(tmp_path, data_dir):
    (tmp_path / "samsum").mkdir()
    shutil.copy(data_dir / "samsum" / "validation.json", tmp_path / "samsum")
    with pytest.raises(FileNotFoundError) as info:
        load_samples("samsum", "test", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path.resolve() / "samsum" / "test.json") in message
    assert "samsum" in message and "'test'" in message and "validation.json" in message
    rows = [{"instruction": "i", "dialogue": "A: hi\nB: hello", "summary": "They greet."}]
    _write(tmp_path / "samsum" / "test.json", json.dumps(rows))
    (sample,) = load_samples("samsum", "test", data_dir=tmp_path)
    assert sample == Sample("samsum-test-0", "A: hi\nB: hello", ("They greet.",))


def test_edited_file_is_reparsed(tmp_path):
    row = {"dialogue": "a", "summary": "b"}
    path = _write(tmp_path / "dialogsum" / "test.json", json.dumps([row]))
    assert len(load_samples("dialogsum", "test", data_dir=tmp_path)) == 1
    path.write_text(json.dumps([row] * 3), encoding="utf-8")
    assert len(load_samples("dialogsum", "test", data_dir=tmp_path)) == 3


def test_missing_dataset_folder_says_what_data_dir_must_hold(tmp_path):
    with pytest.raises(FileNotFoundError, match="one folder per data set"):
        load_samples("cnn_dailymail", "validation", data_dir=tmp_path)


def test_commongen_pair_and_test_jsonl(tmp_path):
    folder = tmp_path / "commongen"
    _write(folder / "commongen.train.src_alpha.txt", "dog run\ndog run\ncat sit\ndog run\n")
    _write(folder / "commongen.train.tgt.txt", "A dog runs.\nDogs run.\nA cat sits.\nRun, dog.")
    samples = load_samples("commongen", "train", data_dir=tmp_path)
    assert [s.source for s in samples] == ["dog, run", "cat, sit", "dog, run"]
    assert samples[0].references == ("A dog runs.", "Dogs run.")
    assert [s.id for s in samples] == [f"commongen-train-{k}" for k in range(3)]
    row = {"concept_set": "ice_cream_N#eat_V#cold_A", "scene": ["Eat the cold ice cream."]}
    _write(tmp_path / "commongen" / "commongen.test.jsonl", json.dumps(row) + "\n")
    (test,) = load_samples("commongen", "test", data_dir=tmp_path)
    assert test.source == "ice_cream, eat, cold"
    assert test.references == ("Eat the cold ice cream.",)


def test_dailydialog_hand_made_train_and_test(tmp_path):
    folder = tmp_path / "dailydialog"
    text = "Hi ! __eou__ Hello . __eou__ I ’ m Al . __eou__\nOne . __eou__ Two .\n"
    _write(folder / "dialogues_text_En.txt", text)
    with pytest.raises(FileNotFoundError, match="en_test_human.txt"):
        load_samples("dailydialog", "test", data_dir=tmp_path)
    bare = load_samples("dailydialog", "train", data_dir=tmp_path)
    assert [(s.source, s.references[0]) for s in bare] == [
        ("Hi!", "Hello."), ("Hi!\nHello.", "I'm Al."), ("One.", "Two.")
    ]
    assert bare[0].meta == {"dialogue": 0, "turn": 1}  # no metadata files: nothing invented
    _write(folder / "dialogues_topic.txt", "3\n5\n")
    _write(folder / "dialogues_emotion.txt", "0 4 0\n0 0 1\n")  # second line misaligned
    _write(folder / "dialogues_act.txt", "2 1 1\n3 4 1\n")
    labelled = load_samples("dailydialog", "train", data_dir=tmp_path)
    assert labelled[1].meta == {"dialogue": 0, "turn": 2, "topic": 3, "emotion": 0, "act": 1}
    assert labelled[2].meta == {"dialogue": 1, "turn": 1, "topic": 5}
    _write(folder / "en_test_human.txt", "Yes . __eou__ No ? __eou__\t2\t1 2\t0 6\n")
    (test,) = load_samples("dailydialog", "test", data_dir=tmp_path)
    assert (test.id, test.source, test.references) == ("dailydialog-test-0-1", "Yes.", ("No?",))
    assert test.meta == {"dialogue": 0, "topic": 2, "turn": 1, "emotion": 6, "act": 2}


def test_imdb_hand_made_test_split(tmp_path):
    long_review = "First<br /><br />second " + " ".join(f"w{i}" for i in range(60))
    rows = f'id,sentiment,review\n1_7,1,"{long_review}"\n2_3,0,too short\n'
    _write(tmp_path / "imdb" / "test.csv", rows)
    (sample,) = load_samples("imdb", "test", data_dir=tmp_path)
    assert sample.id == "imdb-1_7" and sample.meta == {"label": 1}
    assert sample.source == "First second w0 w1 w2 w3 w4 w5 w6 w7"
    assert sample.references[0].split() == [f"w{i}" for i in range(8, 48)]


# --------------------------------------------------------------------------- errors


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="known: commongen.*builtin_dialogue"):
        load_samples("squad")
    with pytest.raises(ValueError, match="allowed: train, validation, test"):
        load_samples("samsum", "dev")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_samples("builtin_poetry")


def test_malformed_files_name_the_file(tmp_path):
    src = _write(tmp_path / "commongen" / "commongen.train.src_alpha.txt", "a b\nc d\n")
    _write(tmp_path / "commongen" / "commongen.train.tgt.txt", "only one\n")
    with pytest.raises(ValueError, match=re.escape(str(src))):
        load_samples("commongen", "train", data_dir=tmp_path)
    bad = _write(tmp_path / "commongen" / "commongen.test.jsonl", '{"concept_set": "a_N"}\n')
    with pytest.raises(DataError, match=re.escape(f"{bad}:1")):
        load_samples("commongen", "test", data_dir=tmp_path)
    _write(tmp_path / "dailydialog" / "en_test_human.txt", "Hi . __eou__ Yo .\t1\t1 1\n")
    with pytest.raises(DataError, match="4 tab-separated fields"):
        load_samples("dailydialog", "test", data_dir=tmp_path)
    csv_file = _write(tmp_path / "cnn_dailymail" / "test.csv", "article,summary\nx,y\n")
    with pytest.raises(DataError, match=re.escape(f"{csv_file}: missing column")):
        load_samples("cnn_dailymail", "test", data_dir=tmp_path)


def test_data_dir_resolution(tmp_path, monkeypatch):
    _write(tmp_path / "dialogsum" / "test.json", json.dumps([{"dialogue": "d", "summary": "s"}]))
    monkeypatch.setenv("TEXTGYM_DATA_DIR", str(tmp_path))
    assert load_samples("dialogsum", "test")[0].references == ("s",)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_samples("dialogsum", "test", data_dir=tmp_path / "nope")
    monkeypatch.setenv("TEXTGYM_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"\$TEXTGYM_DATA_DIR"):
        load_samples("dialogsum", "test")


def test_no_data_dir_falls_back_to_hub_and_names_the_extra(monkeypatch):
    monkeypatch.delenv("TEXTGYM_DATA_DIR", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    hub._load_hub_cached.cache_clear()
    with pytest.raises(ImportError, match=r'pip install "textgym\[hub\]"'):
        load_samples("samsum", "validation")


def test_builtin_names_dispatch_lazily(monkeypatch):
    calls = []
    fake = types.ModuleType("textgym.data.builtin")
    item = Sample("b-0", "x", ("y",))
    fake.load_builtin = lambda name, split: calls.append((name, split)) or [item]
    monkeypatch.setitem(sys.modules, "textgym.data.builtin", fake)
    assert load_samples("builtin_dialogue", "validation", data_dir="/ignored") == [item]
    assert calls == [("builtin_dialogue", "validation")]


# --------------------------------------------------------------------------- detokenizer


@pytest.mark.parametrize(("raw", "clean"), [
    ("The kitchen stinks . ", "The kitchen stinks."),
    ("Now he ’ s eating . I ’ Ve tried !", "Now he's eating. I've tried!"),
    ("I don ' t know , do you ?", "I don't know, do you?"),
    ("At 8: 30 : $ 16 . 50 ( or 20 % less ) ...", "At 8:30: $16.50 (or 20% less)..."),
    ("It was 15 , 000 on May 2 , 2003 .", "It was 15,000 on May 2, 2003."),
    ("the ladies ' room , a ' quoted ' word", "the ladies ' room, a ' quoted ' word"),
    ("It ' s five o ’ clock", "It's five o'clock"),
])
def test_detokenize(raw, clean):
    assert detokenize(raw) == clean


# --------------------------------------------------------------------------- hub row mapping


def test_hub_commongen_rows():
    rows = [
        {"concept_set_idx": 0, "concepts": ["dog", "run"], "target": "A dog runs."},
        {"concept_set_idx": 0, "concepts": ["dog", "run"], "target": "Dogs run."},
        {"concept_set_idx": 1, "concepts": ["cat", "sit"], "target": "A cat sits."},
    ]
    samples = hub.rows_to_samples("commongen", "train", rows)
    assert [(s.id, s.source, s.references) for s in samples] == [
        ("commongen-train-0", "dog, run", ("A dog runs.", "Dogs run.")),
        ("commongen-train-1", "cat, sit", ("A cat sits.",)),
    ]
    with pytest.raises(DataError, match="not public"):
        hub.commongen_from_rows([{"concept_set_idx": 5, "concepts": ["a"], "target": ""}], "test")


def test_hub_imdb_cnn_and_summary_rows():
    text = "a<br />b " + "c " * 60
    imdb = hub.imdb_from_rows([{"text": text, "label": 0}, {"text": text, "label": -1}], "train")
    assert len(imdb) == 1 and imdb[0].id == "imdb-train-0" and imdb[0].source.startswith("a b c")
    row = {"article": " Body. ", "highlights": "One .\nTwo .", "id": "ab12"}
    (cnn,) = hub.cnn_from_rows([row], "test")
    assert cnn == Sample("ab12", "Body.", ("One .\nTwo .",))
    row = {"id": "13818513", "dialogue": "Amanda: hi\r\nJerry: hey", "summary": "Greeting. "}
    (samsum,) = hub.rows_to_samples("samsum", "validation", [row])
    assert samsum.id == "samsum-validation-0"
    assert (samsum.source, samsum.references) == ("Amanda: hi\nJerry: hey", ("Greeting.",))
    assert samsum.meta == {"hub_id": "13818513"}


def test_hub_dailydialog_rows():
    turns = ["Hi ! ", " How ’ s it going ? ", "Fine . "]
    row = {"dialog": turns, "act": [2, 2, 1], "emotion": [0, 0, 4]}
    samples = hub.rows_to_samples("dailydialog", "train", [row])
    assert [(s.source, s.references[0]) for s in samples] == [
        ("Hi!", "How's it going?"),
        ("Hi!\nHow's it going?", "Fine."),
    ]
    assert samples[1].meta == {"dialogue": 0, "turn": 2, "emotion": 4, "act": 1}
    with pytest.raises(ValueError, match="no hub source"):
        hub.rows_to_samples("squad", "train", [])
