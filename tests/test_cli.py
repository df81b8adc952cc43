"""The textgym command line with tiny models: train -> checkpoint -> eval, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from textgym.cli import main

FAST = ["--threads", "1", "--no-progress", "--set", "eval.n=4", "--set", "eval.batch_size=4",
        "--set", "env.max_new_tokens=6"]


@pytest.fixture(scope="module")
def sft_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "sft"
    rc = main(["train", "--algo", "sft", "--model", tiny_model, "--out", str(out), "--seed", "1",
               "--set", "sft.epochs=0.5", "--set", "sft.learning_rate=0.001", *FAST])
    assert rc == 0
    return out


def test_sft_writes_a_loadable_checkpoint_and_learns(sft_run, tiny_model):
    final = sft_run / "final"
    assert (final / "config.json").is_file() and (final / "tokenizer.json").is_file()
    meta = json.loads((final / "textgym_checkpoint.json").read_text())
    assert meta["algo"] == "sft" and meta["base_model"] == tiny_model and meta["seed"] == 1
    assert meta["sft"]["final_loss"] < meta["sft"]["first_loss"]  # a high learning rate on a tiny model
    summary = json.loads((sft_run / "summary.json").read_text())
    assert set(summary["before"]) >= {"bleu", "rouge1", "rouge2", "rougeL", "distinct_1", "distinct_2", "mean_tokens"}
    assert len(summary["samples_after"]) == 4
    assert list((sft_run / "tb").rglob("events.out.tfevents.*"))
    assert not [p for p in sft_run.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_ppo_from_sft_then_eval_checkpoint(sft_run, tiny_model, tmp_path, capsys):
    out = tmp_path / "ppo"
    rc = main(["train", "--init", str(sft_run / "final"), "--total-timesteps", "48", "--num-envs", "4",
               "--out", str(out), "--set", "ppo.n_steps=4", "--set", "ppo.batch_size=8",
               "--set", "checkpoint.every=16", "--set", "checkpoint.keep=1", "--set", "checkpoint.save_agent=true", *FAST])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "held-out metrics" in printed and "before" in printed and "reference:" in printed
    # the starting point is printed before training, the comparison after it
    assert printed.index("held-out metrics before training") < printed.index("held-out metrics:")
    meta = json.loads((out / "final" / "textgym_checkpoint.json").read_text())
    assert meta["base_model"] == tiny_model and meta["init"] == str(sft_run / "final") and meta["timesteps"] >= 48
    assert (out / "final" / "agent.zip").is_file()
    curve = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    # a row per rollout: 4 envs x 6-token episodes = 24 steps each, so 2 rollouts reach 48
    assert [row["timesteps"] for row in curve] == [24, 48] and "ep_rew_mean" in curve[-1]
    assert all("kl" in row and "kl_per_token" in row for row in curve)
    # periodic checkpoints: only the last kept, and none at the final step (final/ holds those weights)
    steps = [int(p.name.split("_")[1]) for p in (out / "checkpoints").iterdir()]
    assert steps == [24] and meta["timesteps"] == 48
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rollout_tokens_per_s"] > 0 and summary["stats"]["timesteps"] >= 48
    assert summary["stats"]["fast_path"] and 0 < summary["stats"]["rollout_tokens"] <= summary["stats"]["timesteps"]
    # One TensorBoard folder per run: SB3's training scalars and the evaluation in out/tb itself.
    assert [p.parent for p in (out / "tb").rglob("events.out.tfevents.*")] == [out / "tb"]

    report = tmp_path / "eval.json"
    rc = main(["eval", "--checkpoint", str(out / "final"), "--n", "3", "--batch-size", "3",
               "--max-new-tokens", "6", "--out", str(report)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "perplexity" in printed and f"base model {tiny_model}" in printed
    payload = json.loads(report.read_text())
    assert payload["base_model"] == tiny_model and len(payload["records"]) == 3
    assert set(payload["metrics"]) >= {"bleu", "rouge1", "rouge2", "rougeL", "mean_tokens", "distinct_1",
                                       "distinct_2", "perplexity"}


def test_a2c_runs_with_a_config_file_and_flags_override(tiny_model, tmp_path):
    config = tmp_path / "a2c.yaml"
    config.write_text("algo: a2c\nnum_envs: 2\ntotal_timesteps: 1000\na2c:\n  n_steps: 4\n"
                      "eval:\n  before: false\ncheckpoint:\n  save_agent: false\n")
    out = tmp_path / "a2c"
    rc = main(["train", "--config", str(config), "--model", tiny_model, "--total-timesteps", "16", "--out", str(out),
               *FAST])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["algo"] == "a2c" and summary["config"]["total_timesteps"] == 16  # flag beat the file
    assert summary["before"] is None and summary["after"] is not None
    assert not (out / "final" / "agent.zip").exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "--env", "textgym/Nope-v0"], "unknown env id 'textgym/Nope-v0'; registered textgym ids"),
    (["train", "--init", "/no/such/checkpoint"], "checkpoint folder /no/such/checkpoint does not exist"),
    (["train", "--set", "ppo.learning_rat=1"], r"unknown config key(s) ['ppo.learning_rat']"),
    (["train", "--set", "num_envs=many"], "num_envs: expected int, got 'many'"),
    (["train", "--config", "/no/such.yaml"], "config file /no/such.yaml does not exist"),
    (["eval", "--checkpoint", "/no/such/ckpt"], "checkpoint /no/such/ckpt does not exist"),
    (["eval", "--env", "textgym/Nope-v0"], "unknown env id"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_checkpoint_that_is_a_run_folder_points_to_final(sft_run, capsys):
    assert main(["eval", "--checkpoint", str(sft_run)]) == 2
    err = capsys.readouterr().err
    assert "not a model checkpoint" in err and str(sft_run / "final") in err


def test_argparse_rejects_model_and_checkpoint_together(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--model", "a", "--checkpoint", "b"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_train_is_listed_and_has_its_own_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "train" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--total-timesteps" in capsys.readouterr().out


def test_import_textgym_does_not_import_agents():
    code = "import sys, textgym, textgym.cli; textgym.cli.build_parser(); print('agents' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_library_bars_and_warnings_only_with_verbose(tiny_model, tmp_path):
    """transformers' "Loading weights" bar (and the like) shows only with --verbose; our own output always."""
    def run(*extra):
        argv = [sys.executable, "-m", "textgym.cli", "eval", "--model", tiny_model, "--n", "2", "--batch-size", "2",
                "--max-new-tokens", "4", "--no-perplexity", "--out", str(tmp_path / "e.json"), *extra]
        env = {k: v for k, v in os.environ.items()  # earlier in-process main() calls set these
               if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "PYTHONWARNINGS")}
        return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)

    quiet, verbose = run(), run("--verbose")
    assert quiet.returncode == 0 and verbose.returncode == 0, quiet.stderr[-2000:] + verbose.stderr[-2000:]
    assert "Loading weights" in verbose.stderr and "Loading weights" not in quiet.stderr
    assert "eval textgym/Generation-v0" in quiet.stderr  # our own progress bar stays
    assert "metric" in quiet.stdout
