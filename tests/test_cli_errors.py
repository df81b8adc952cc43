"""Bad values get one clear error: every command line value (one `error:` line, exit 2, no traceback
unless --debug), config files and --set values, agent arguments."""

from __future__ import annotations

import pytest

from agents.config import ConfigError, load_config, parse_set
from textgym.cli import main

# Every one must exit 2 with one short `error:` line and no traceback.
BAD_ARGV = [
    ["eval", "--n", "0"], ["eval", "--n", "-3"], ["eval", "--max-new-tokens", "0"], ["eval", "--batch-size", "0"],
    ["eval", "--threads", "0"], ["eval", "--seed", "-1"], ["eval", "--show", "-1"], ["eval", "--env", "textgym/Nope-v0"],
    ["eval", "--env", "CartPole-v1"], ["eval", "--checkpoint", "/nonexistent/ckpt"],
    ["rlhf", "serve", "--port", "70000"], ["rlhf", "serve", "--port", "-1"], ["rlhf", "collect", "--port", "x"],
    ["rlhf", "collect", "--n", "-1"], ["rlhf", "collect", "--temperature", "0"], ["rlhf", "collect", "--temperature", "nan"],
    ["rlhf", "collect", "--max-new-tokens", "0"], ["rlhf", "collect", "--env", "textgym/Nope-v0", "--no-serve"],
    ["rlhf", "train-rm", "--out", "x", "--learning-rate", "nan"], ["rlhf", "train-rm", "--out", "x", "--learning-rate", "inf"],
    ["rlhf", "train-rm", "--out", "x", "--learning-rate", "-1"], ["rlhf", "train-rm", "--out", "x", "--n-epochs", "0"],
    ["rlhf", "train-rm", "--out", "x", "--heldout", "1.5"], ["rlhf", "train-rm", "--out", "x", "--batch-size", "0"],
    ["rlhf", "train-rm", "--out", "x", "--max-length", "0"], ["rlhf", "train-sentiment", "--limit", "0"],
    ["train", "--out", "/etc/passwd/run"], ["train", "--device", "tpu"], ["train", "--set", "ppo.n_steps=-1"],
    ["train", "--set", "checkpoint.every=-5"], ["train", "--set", "checkpoint.keep=-1"], ["train", "--set", "checkpoint.keep=0"],
    ["train", "--env", "CartPole-v1"], ["train", "--set", "ppo.learning_rate=.nan"], ["train", "--set", "ppo.gamma=1.5"],
    ["train", "--set", "a2c.n_steps=0"], ["train", "--set", "sft.epochs=0"], ["train", "--set", "policy.top_p=0"],
    ["train", "--set", "policy.temperature=-1"], ["train", "--set", "eval.n=0"], ["train", "--set", "eval.split=dev"],
    ["train", "--set", "env.max_new_tokens=0"], ["train", "--set", "env.reward_mode=sparse"], ["train", "--total-timesteps", "0"],
    ["train", "--num-envs", "0"], ["train", "--threads", "0"], ["train", "--seed", "-1"], ["train", "--set", "nokey"],
    ["train", "--config", "/nonexistent.yaml"],
]


@pytest.mark.parametrize("argv", BAD_ARGV, ids=[" ".join(a) for a in BAD_ARGV])
def test_every_bad_cli_value_is_one_error_line_and_exit_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:  # argparse's checks exit; the rest return 2
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and "Traceback" not in err, err
    assert len(err) < 600, err


def test_cuda_asked_for_without_cuda_is_an_error_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["train", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ValueError, match="not a textgym text environment"):
        main(["--debug", "train", "--env", "CartPole-v1"])


def test_eval_checks_its_output_path_before_evaluating(tmp_path, capsys, monkeypatch):
    import textgym.evaluation

    monkeypatch.setattr(textgym.evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated before the path check"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["eval", "--out", str(blocker / "out.json"), "--no-perplexity"]) == 2
    assert "--out" in capsys.readouterr().err


# --- config and agent values -----------------------------------------------------------------------
def test_yaml_and_set_floats_without_a_dot_are_floats(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ppo:\n  learning_rate: 1e-5\nsft:\n  learning_rate: 5E-4\n")
    config = load_config(cfg, parse_set(["a2c.learning_rate=3e-6"]))
    assert (config.ppo.learning_rate, config.sft.learning_rate, config.a2c.learning_rate) == (1e-5, 5e-4, 3e-6)
    with pytest.raises(ConfigError, match="ppo.learning_rate"):
        load_config(overrides={"ppo.learning_rate": "fast"})


def test_config_file_with_bad_utf8_is_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"algo: ppo\nmodel: \xff\xfe\n")
    with pytest.raises(ValueError, match="c.yaml is not valid UTF-8"):
        load_config(cfg)


def test_a2c_refuses_zero_steps():
    from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

    from agents import A2C

    tok = tiny_tokenizer()
    kwargs = dict(model_name=None, model_config=tiny_llama_config(len(tok)))
    with pytest.raises(ValueError, match="n_steps must be >= 1, got 0"):
        A2C("TransformerPolicy", tiny_env(tok), n_steps=0, policy_kwargs=kwargs)
