"""Checkpoint folders and saved agents: periodic steps, pruning by step, and clear errors for a
missing, truncated or orphaned agent zip."""

from __future__ import annotations

import json
import zipfile

import pytest

from agents.checkpoints import check_agent_zip, next_checkpoint_step, prune_checkpoints


def test_next_checkpoint_never_loops_and_pruning_goes_by_step(tmp_path):
    assert next_checkpoint_step(1165, 500) == 1500 and next_checkpoint_step(0, 1) == 1
    with pytest.raises(ValueError, match="every"):
        next_checkpoint_step(10, -5)
    with pytest.raises(ValueError, match="keep"):
        prune_checkpoints(tmp_path, -1, 10)
    for step in (960, 80, 160, 1200):  # 960 and 1200 are stale, from an older, longer run
        (tmp_path / f"step_{step:08d}").mkdir()
    (tmp_path / "step_2").mkdir()  # names need not be zero-padded
    prune_checkpoints(tmp_path, 2, current_step=160)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000080", "step_00000160"]


def test_agent_zip_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.zip does not exist$"):
        check_agent_zip(tmp_path / "nope.zip")
    with pytest.raises(FileNotFoundError, match="nope does not exist"):
        check_agent_zip(tmp_path / "nope")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="bad.zip is not a readable zip"):
        check_agent_zip(bad)
    gone = tmp_path / "gone.zip"
    with zipfile.ZipFile(gone, "w") as archive:
        archive.writestr("data", json.dumps({"policy_kwargs": {"model_name": str(tmp_path / "deleted-model")}}))
    with pytest.raises(FileNotFoundError, match="deleted-model, which no longer exists"):
        check_agent_zip(gone)
    assert check_agent_zip(gone, {"policy_kwargs": {"model_name": None}}) == gone


def test_ppo_load_of_a_missing_file_says_so(tmp_path):
    from agents import PPO

    with pytest.raises(FileNotFoundError, match=r"nope.zip does not exist$"):
        PPO.load(str(tmp_path / "nope.zip"))
