"""Torch threads: the library leaves them alone unless asked; the command line's default is fixed (issue 23)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

from agents import A2C, PPO
from textgym import threads as tt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

UNUSUAL = 3  # a count no default rule picks on the 2-core test machine


@pytest.fixture
def keep_threads():
    """Restore torch's thread count after the test, whatever it did."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.fixture
def busy_machine(monkeypatch):
    """A load average that the old rule would have answered with 1 thread."""
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))


def _agent(algo, **kwargs):
    tok = tiny_tokenizer()
    if algo is PPO:
        kwargs.setdefault("batch_size", 4)
    return algo("TransformerPolicy", tiny_env(tok), n_steps=4, seed=0, device="cpu",
                policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(tok))), **kwargs)


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_learn_leaves_torch_threads_as_the_user_set_them(algo, keep_threads, busy_machine):
    torch.set_num_threads(UNUSUAL)
    model = _agent(algo)
    model.learn(4)
    assert torch.get_num_threads() == UNUSUAL
    model.learn(4, reset_num_timesteps=False)  # a loop of learn calls keeps it too
    assert torch.get_num_threads() == UNUSUAL


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_threads_argument_sets_them_and_says_so(algo, keep_threads, capsys):
    torch.set_num_threads(1)
    model = _agent(algo, threads=2, verbose=1)
    model.learn(4)
    assert torch.get_num_threads() == 2
    assert "Using 2 CPU thread(s) (threads=2)" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_threads_argument_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"threads must be a positive int or None"):
        _agent(PPO, threads=bad)


def test_evaluate_leaves_torch_threads_alone(tiny_model, keep_threads, busy_machine):
    from textgym.evaluation import evaluate

    torch.set_num_threads(UNUSUAL)
    evaluate("textgym/Generation-v0", tiny_model, split="test", n=2, batch_size=2, device="cpu", progress=False,
             max_new_tokens=3, perplexity=False)
    assert torch.get_num_threads() == UNUSUAL


# --- the command line's default ---------------------------------------------------------------
def test_cli_default_is_all_cores_or_omp_num_threads_whatever_the_load(monkeypatch):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    quiet = tt.resolve_threads(None)
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))  # as after a busy minute of our own
    assert tt.resolve_threads(None) == quiet and quiet[0] == cores == tt.default_threads()
    assert f"all {cores} cores" in quiet[1]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert tt.resolve_threads(None) == (3, "default: $OMP_NUM_THREADS; --threads sets another number")
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")  # not a count: ignored, as OpenMP would
    assert tt.default_threads() == cores
    assert tt.resolve_threads(2) == (2, "--threads 2")


def test_auto_counts_only_other_processes(monkeypatch):
    """(busy, total) ticks of 2 cores over the window; what this process used is not load."""
    monkeypatch.setattr(tt, "available_cores", lambda: [0, 1])
    ticks = iter([(0, 0), (100, 200)])  # 100 busy ticks out of 2 x 100
    own = iter([0, 100])  # ... all of them ours
    monkeypatch.setattr(tt, "_busy_ticks", lambda cpus: next(ticks))
    monkeypatch.setattr(tt, "_own_ticks", lambda: next(own))
    assert tt.idle_cores(sleep=lambda s: None) == (2, 0.0)
    ticks, own = iter([(0, 0), (100, 200)]), iter([0, 0])  # ... all another process's
    assert tt.idle_cores(sleep=lambda s: None) == (1, 1.0)


def test_auto_really_measures_and_says_what_it_chose(monkeypatch):
    if not Path("/proc/stat").is_file():
        pytest.skip("no /proc")
    n, others = tt.idle_cores(window=0.05)
    assert 1 <= n <= len(tt.available_cores()) and others >= 0.0
    monkeypatch.setattr(tt, "idle_cores", lambda: (1, 1.2))
    threads, why = tt.resolve_threads("auto")
    assert threads == 1 and why.startswith("--threads auto: other processes kept 1.2 of")


@pytest.mark.parametrize("text", ["0", "-2", "x", ""])
def test_threads_option_takes_a_positive_count_or_auto(text):
    import argparse

    assert tt.parse_threads("4") == 4 and tt.parse_threads(" AUTO ") == "auto"
    with pytest.raises(argparse.ArgumentTypeError, match="integer >= 1 or 'auto'"):
        tt.parse_threads(text)


def test_train_command_pins_the_default_and_prints_it(monkeypatch, capsys, tmp_path):
    import agents.train
    from agents.cli import train_command

    seen = []
    monkeypatch.setattr(agents.train, "run_training", seen.append)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    train_command(["--out", str(tmp_path / "a")])
    assert seen[-1].threads == 3 and "textgym train: 3 CPU thread(s) (default: $OMP_NUM_THREADS" in capsys.readouterr().out
    monkeypatch.setattr(tt, "idle_cores", lambda: (2, 0.0))
    train_command(["--threads", "auto", "--out", str(tmp_path / "b")])
    assert seen[-1].threads == 2 and "--threads auto" in capsys.readouterr().out
    config = tmp_path / "c.yaml"
    config.write_text("threads: 5\n")
    train_command(["--config", str(config), "--out", str(tmp_path / "c")])  # the file's number stands
    assert seen[-1].threads == 5


def test_eval_command_sets_the_default_and_prints_it(tiny_model, keep_threads, monkeypatch, capsys, tmp_path):
    from textgym.cli import main

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(1)
    assert main(["eval", "--model", tiny_model, "--n", "2", "--batch-size", "2", "--max-new-tokens", "3",
                 "--no-perplexity", "--out", str(tmp_path / "e.json")]) == 0
    assert torch.get_num_threads() == 3
    assert "textgym eval: 3 CPU thread(s) (default: $OMP_NUM_THREADS" in capsys.readouterr().out


# --- benchmarks: sides on different thread counts are not compared ----------------------------
def test_throughput_refuses_rows_on_different_threads():
    from throughput import check_same_threads

    assert check_same_threads({"a": {"threads": 2}, "b": {"threads": 2}}) == 2
    with pytest.raises(ValueError, match="refusing to compare rows that ran on different torch thread counts"):
        check_same_threads({"a": {"threads": 1}, "b": {"threads": 2}})


def test_vs_trl_refuses_systems_on_different_threads():
    from vs_trl import check_same_threads

    check_same_threads({"textgym": {"threads": 1}, "trl-ppo": {"threads": 1}}, 1)
    with pytest.raises(ValueError, match=r"refusing to compare: --threads 1, but .*'trl-ppo': 4"):
        check_same_threads({"textgym": {"threads": 1}, "trl-ppo": {"threads": 4}}, 1)
