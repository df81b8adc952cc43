"""agents.config: YAML into typed dataclasses, unknown keys and wrong types are errors, overrides."""

from __future__ import annotations

import pytest

from agents.config import ConfigError, TrainConfig, config_hash, load_config, merge, parse_set


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_main_job():
    config = load_config()
    assert config == TrainConfig()
    assert (config.algo, config.env.id, config.model) == ("ppo", "textgym/Generation-v0", "smollm2-135m")


def test_yaml_fills_nested_sections_and_keeps_other_defaults(tmp_path):
    config = load_config(write(tmp_path, "algo: a2c\nnum_envs: 4\na2c:\n  n_steps: 8\n  learning_rate: 1\nenv:\n"
                                         "  id: textgym/Dialogue-v0\n  max_new_tokens: 12\n"))
    assert config.algo == "a2c" and config.num_envs == 4 and config.a2c.n_steps == 8
    assert config.a2c.learning_rate == 1.0 and isinstance(config.a2c.learning_rate, float)  # int accepted for float
    assert config.env.id == "textgym/Dialogue-v0" and config.env.max_new_tokens == 12
    assert config.ppo == TrainConfig().ppo


@pytest.mark.parametrize("text, match", [
    ("algoo: ppo\n", r"unknown config key\(s\) \['algoo'\].*allowed in the top level"),
    ("ppo:\n  nsteps: 8\n", r"\['ppo.nsteps'\].*allowed in ppo: .*'n_steps'"),
    ("env:\n  id: x\n  colour: red\n", r"\['env.colour'\]"),
    ("num_envs: eight\n", r"num_envs: expected int, got 'eight'"),
    ("ppo:\n  n_epochs: 2.5\n", r"ppo.n_epochs: expected int"),
    ("progress_bar: 1\n", r"progress_bar: expected bool"),
    ("algo: dqn\n", r"algo must be one of \['ppo', 'a2c', 'rloo', 'grpo', 'nlpo', 'sft'\]"),
    ("num_envs: 0\n", r"num_envs must be >= 1"),
    ("ppo: 3\n", r"ppo: expected a mapping"),
    ("- a\n- b\n", r"top level must be a mapping"),
    ("algo: [unclosed\n", r"not valid YAML"),
])
def test_bad_config_files_are_clear_errors(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_beat_the_file(tmp_path):
    path = write(tmp_path, "seed: 3\nppo:\n  n_steps: 8\n  n_epochs: 3\n")
    config = load_config(path, {"ppo.n_steps": 32, "seed": 5})
    assert (config.seed, config.ppo.n_steps, config.ppo.n_epochs) == (5, 32, 3)
    with pytest.raises(ConfigError, match=r"ppo.clip"):
        load_config(path, {"ppo.clip": 0.1})


def test_parse_set_reads_yaml_scalars():
    assert parse_set(["ppo.n_steps=8", "env.reward=rougeL", "init=null", "ppo.target_kl=0.1"]) == {
        "ppo.n_steps": 8, "env.reward": "rougeL", "init": None, "ppo.target_kl": 0.1}
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_set(["ppo.n_steps"])


def test_merge_does_not_mutate_and_rejects_scalar_sections():
    base = {"ppo": {"n_steps": 4}}
    assert merge(base, {"ppo": {"n_epochs": 1}}) == {"ppo": {"n_steps": 4, "n_epochs": 1}}
    assert base == {"ppo": {"n_steps": 4}}
    with pytest.raises(ConfigError, match="not a section"):
        merge({"seed": 1}, {"seed.x": 2})


def test_hash_ignores_seed_and_run_local_settings_only():
    a = load_config(overrides={"seed": 1, "out": "x", "threads": 2})
    b = load_config(overrides={"seed": 2, "device": "cpu"})
    c = load_config(overrides={"ppo.learning_rate": 1e-4})
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert len(config_hash(a)) == 12


def test_run_dir_default_and_explicit():
    assert str(load_config(overrides={"seed": 2}).run_dir()) == "runs/ppo-Generation-v0-seed2"
    assert str(load_config(overrides={"out": "/tmp/x"}).run_dir()) == "/tmp/x"


def test_lora_and_precision_settings():
    from agents.config import ConfigError, TrainConfig, config_hash, load_config, to_dict

    config = load_config(overrides={"policy.lora.r": 8, "policy.lora.target_modules": ["q_proj", "v_proj"],
                                    "policy.precision": "bf16"})
    assert config.policy.policy_kwargs()["lora"] == {"r": 8, "alpha": None, "target_modules": ["q_proj", "v_proj"],
                                                     "dropout": 0.0}
    assert config.policy.policy_kwargs()["precision"] == "bf16"
    assert TrainConfig().policy.policy_kwargs()["lora"] is None  # r = 0: full fine-tuning
    with pytest.raises(ConfigError, match=r"policy.lora.r must be an integer >= 0 \(0: no LoRA, the whole model trains\), got -1"):
        load_config(overrides={"policy.lora.r": -1})
    for name, bad in (("alpha", 0), ("dropout", 1.0), ("dropout", float("nan"))):
        with pytest.raises(ConfigError, match=rf"policy.lora.{name} must be"):
            load_config(overrides={f"policy.lora.{name}": bad})
    with pytest.raises(ConfigError, match=r"policy.lora.target_modules"):
        load_config(overrides={"policy.lora.target_modules": [1]})
    # A default config hashes as it did before these settings existed, so older records still group.
    older = to_dict(TrainConfig())
    del older["policy"]["lora"], older["policy"]["precision"]
    assert config_hash(older) == config_hash(TrainConfig()) != config_hash(config)
