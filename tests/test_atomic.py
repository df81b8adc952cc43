"""Fault injection for every atomic write: kill the writer between each pair of file operations;
a reader sees the old or the new state, and the next write cleans up what the killed one left."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import textgym.io as tio


class Killed(BaseException):
    """A kill -9 stand-in: raised at the k-th file operation; after it, no operation runs."""


def _inject(monkeypatch, kill_at: int) -> list[str]:
    """Make the k-th file operation (0-based) of textgym.io 'kill' the writer; count operations."""
    ops: list[str] = []
    dead = [False]

    def wrap(name, fn):
        def run(*args, **kwargs):
            if dead[0]:
                raise Killed(name)  # a killed process runs no cleanup
            if len(ops) == kill_at:
                dead[0] = True
                raise Killed(name)
            ops.append(name)
            return fn(*args, **kwargs)

        return staticmethod(run)

    fs = tio._FileSystem
    for name in ("replace", "rmtree", "unlink", "fsync", "exchange"):
        monkeypatch.setattr(fs, name, wrap(name, getattr(fs, name)))
    return ops


def _write_folder(text: str):
    def write(folder):
        (folder / "a.txt").write_text(text)
        (folder / "b.txt").write_text(text)

    return write


def _read_folder(dest) -> str:
    tio.read_dir(dest)
    a, b = (dest / "a.txt").read_text(), (dest / "b.txt").read_text()
    assert a == b, "a reader saw a mix of two versions"
    return a


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_atomic_dir_survives_a_kill_between_any_two_operations(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(tio._FileSystem, "exchange", staticmethod(lambda a, b: False))
    dest = tmp_path / "ckpt"
    tio.atomic_dir(dest, _write_folder("old"))
    # Count the operations of one clean write, then kill at each of them in turn.
    with monkeypatch.context() as m:
        ops = _inject(m, 10**9)
        tio.atomic_dir(dest, _write_folder("old"))
        total = len(ops)
    assert total >= 2
    for k in range(total + 1):
        with monkeypatch.context() as m:
            _inject(m, k)
            try:
                tio.atomic_dir(dest, _write_folder("new"))
            except Killed:
                pass
        assert _read_folder(dest) in ("old", "new"), k
        tio.atomic_dir(dest, _write_folder("old"))  # the next write works and cleans up
        leftovers = [p.name for p in tmp_path.iterdir() if p.name != "ckpt"]
        assert _read_folder(dest) == "old"
        assert all(str(os.getpid()) in name for name in leftovers), leftovers  # only this process's own


@pytest.mark.parametrize("writer", ["atomic_write", "atomic_write_json"])
def test_atomic_file_survives_a_kill_between_any_two_operations(tmp_path, monkeypatch, writer):
    dest = tmp_path / "f.json"
    getattr(tio, writer)(dest, "old" if writer == "atomic_write" else {"v": "old"})
    before = dest.read_bytes()
    for k in range(4):
        with monkeypatch.context() as m:
            _inject(m, k)
            try:
                getattr(tio, writer)(dest, "new" if writer == "atomic_write" else {"v": "new"})
            except Killed:
                pass
        assert dest.read_bytes() in (before, b"new", b'{\n  "v": "new"\n}\n'), k
        dest.write_bytes(before)


def test_orphans_of_dead_writers_are_removed_at_the_next_save(tmp_path):
    dest = tmp_path / "agent.zip"
    code = ("import os, sys; import textgym.io as t; from pathlib import Path; d = Path(sys.argv[1]);"
            "f = t._tmp_name(d, '.tmp'); f.write_bytes(b'x' * 1000);"
            "g = t._tmp_name(d.with_name('ckpt'), '.tmp'); g.mkdir(); (g / 'w').write_text('x')")
    subprocess.run([sys.executable, "-c", code, str(dest)], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    alive = tio._tmp_name(dest, ".tmp")  # this process is alive: its temporary file must stay
    alive.write_bytes(b"mine")
    stranger = tmp_path / ".agent.zip.notapid.tmp"
    stranger.write_bytes(b"not ours")
    assert len(list(tmp_path.iterdir())) == 4
    tio.atomic_write(dest, b"zip")
    tio.atomic_dir(tmp_path / "ckpt", _write_folder("x"))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["agent.zip", "ckpt", alive.name, stranger.name])


def test_failed_write_leaves_the_old_state_and_no_temporary(tmp_path):
    dest = tmp_path / "ckpt"
    tio.atomic_dir(dest, _write_folder("old"))

    def broken(folder):
        (folder / "a.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        tio.atomic_dir(dest, broken)
    assert _read_folder(dest) == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_checkpoint_and_agent_saves_use_the_atomic_helpers(tmp_path, monkeypatch):
    """save_checkpoint, agents' save, the eval JSON and summary.json all go through textgym.io."""
    import agents.agent_zip
    import agents.checkpoints
    import agents.train
    import textgym.cli

    assert agents.checkpoints.atomic_dir is tio.atomic_dir
    assert agents.agent_zip.atomic_file is tio.atomic_file
    assert agents.train.atomic_write_json is tio.atomic_write_json
    assert textgym.cli.atomic_write_json is tio.atomic_write_json


def test_a_real_kill_minus_9_during_saves_leaves_a_readable_folder(tmp_path):
    dest = tmp_path / "ckpt"
    code = ("import sys, textgym.io as t; from pathlib import Path; d = Path(sys.argv[1]); i = 0\n"
            "while True:\n"
            "    i += 1\n"
            "    def w(f, i=i):\n"
            "        [(f / f'{k}.txt').write_text(str(i) * 2000) for k in 'ab']\n"
            "    t.atomic_dir(d, w)\n"
            "    print(i, flush=True)\n")
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", code, str(dest)], stdout=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": os.getcwd()})
        for _ in range(5):
            proc.stdout.readline()
        proc.kill()
        proc.wait()
        text = _read_folder(dest)
        assert text and set(text) <= set("0123456789")


def test_an_agent_save_that_fails_midway_leaves_the_old_zip(tiny_model, tmp_path, monkeypatch):
    """The zip is written into a temporary sibling: a failure while writing the optimizer keeps the old one."""
    import agents.agent_zip
    from agents import PPO

    from tiny import tiny_env, tiny_tokenizer

    from textgym.vector import TokenVecEnv

    env = TokenVecEnv(tiny_env(tiny_tokenizer()), 2, device="cpu")
    model = PPO("TransformerPolicy", env, n_steps=2, seed=0, policy_kwargs=dict(model_name=tiny_model))
    model.save(tmp_path / "agent.zip")
    before = (tmp_path / "agent.zip").read_bytes()

    def broken(handle, state):
        raise OSError("disk full")

    monkeypatch.setattr(agents.agent_zip, "write_optimizer", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "agent.zip")
    assert (tmp_path / "agent.zip").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.zip"]
    PPO.load(tmp_path / "agent.zip", env=model.env)
