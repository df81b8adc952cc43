"""The task catalogue: one record per id, and every table that names a data set derived from it."""

from __future__ import annotations

import dataclasses

import pytest

import textgym
from textgym import catalogue
from textgym.catalogue import MAX_TOKENS, TASKS, Task, TaskPreset, dataset_task, find_task
from textgym.data import builtin, hub, loaders


def test_every_format_a_record_names_has_its_parser():
    for task in TASKS:
        if task.packaged:
            assert task.dataset in builtin.BUILTIN_DATASETS and task.hub is None
            continue
        assert {f.parser for f in task.files.values()} <= set(loaders.PARSERS), task.env_id
        assert task.hub is None or task.hub.rows in hub.ROW_MAPPERS, task.env_id
        assert any(s in task.files for s in task.shipped), task.env_id


def test_registry_presets_and_data_tables_derive_from_the_records():
    assert [e.env_id for e in textgym.ENVS] == [t.env_id for t in TASKS]
    assert set(loaders.KNOWN_DATASETS) == {t.dataset for t in TASKS}
    assert set(hub.HUB_SOURCES) == {t.dataset for t in TASKS if t.hub}
    for task in TASKS:
        env_class = _env_class(catalogue.FAMILIES[task.family])
        assert env_class.PRESETS[task.dataset] is task.preset
        assert find_task(task.env_id) is task and dataset_task(task.dataset) is task
    assert find_task("CartPole-v1") is None
    with pytest.raises(ValueError, match="unknown dataset 'squad'; known: builtin_generation"):
        dataset_task("squad")


def _env_class(entry_point: str) -> type:
    import importlib

    module, _, name = entry_point.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: [t[0], t[0]], "duplicate env_id"),
    (lambda t: [dataclasses.replace(t[0], family="poetry")], "family 'poetry'"),
    (lambda t: [dataclasses.replace(t[3], files={"train": t[3].files["train"]})], "every split"),
    (lambda t: [dataclasses.replace(t[0], preset=dataclasses.replace(t[0].preset, max_new_tokens=MAX_TOKENS + 1))],
     "lengths must be in"),
])
def test_a_bad_record_is_refused_with_its_id(change, message):
    with pytest.raises(ValueError, match=message):
        catalogue._check(tuple(change(TASKS)))


def test_version_bumps_the_id():
    task = Task("Toy", "generation", "toy", TaskPreset("{source}", "bleu", (), 8, 8), version=1)
    assert task.env_id == "textgym/Toy-v1" and task.packaged
