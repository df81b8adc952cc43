"""A saved agent holds the trainable weights and the optimizer once, not the frozen reference (rebuilt and checked)."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import torch as th
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

from agents import A2C, PPO
from agents.agent_zip import state_dict_from_bytes
from textgym.vector import TokenVecEnv


def make(model_folder, algo=PPO, **kwargs):
    env = TokenVecEnv(tiny_env(tiny_tokenizer()), 4, device="cpu")
    return algo("TransformerPolicy", env, n_steps=4, seed=0, learning_rate=1e-2,
                policy_kwargs=dict(model_name=model_folder), **kwargs)


def zip_state(path):
    with zipfile.ZipFile(path) as archive:
        names = {info.filename: info.file_size for info in archive.infolist()}
        return state_dict_from_bytes(archive.read("policy.safetensors")), names


def wider_model(folder):
    """A config-built tiny llama (64 wide, tied embeddings) saved as a model folder: big enough that the
    zip's fixed part (data, names, headers: about 15 kB) is small beside its tensors."""
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = tiny_tokenizer()
    cfg = tiny_llama_config(len(tok), hidden_size=64, intermediate_size=128, max_position_embeddings=128)
    AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_the_zip_holds_no_reference_and_is_weights_plus_optimizer(tmp_path, algo):
    model = make(wider_model(tmp_path / "model"), algo)
    model.learn(32)
    model.save(tmp_path / "agent.zip")
    state, sizes = zip_state(tmp_path / "agent.zip")
    assert state and not [k for k in state if k.startswith("reference_lm")]
    assert not [name for name in sizes if name.endswith(".pth")]  # no pickles: safetensors and JSON
    trainable = sum(p.numel() * p.element_size() for p in model.policy.parameters() if p.requires_grad)
    lm = model.policy.lm
    assert lm.get_input_embeddings().weight is lm.get_output_embeddings().weight  # tied: stored once
    optimizer = sum(t.numel() * t.element_size() for s in model.policy.optimizer.state.values() for t in s.values())
    assert optimizer >= 2 * trainable  # AdamW: two moments per trainable weight (and a step count)
    # the whole zip (data, names, headers included) is at most 1.05x the weights plus the optimizer state
    total = (tmp_path / "agent.zip").stat().st_size
    print(f"agent.zip {total} bytes: {total / (trainable + optimizer):.4f}x weights + optimizer state")
    assert total <= 1.05 * (trainable + optimizer), (sizes, trainable, optimizer)
    loaded = algo.load(tmp_path / "agent.zip", env=model.env)
    assert loaded.reference_record == model.reference_record and not loaded.reference_record["saved"]
    obs = model.env.reset()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    for a, b in zip(model.reference.state_dict().values(), loaded.reference.state_dict().values()):
        assert th.equal(a, b)  # rebuilt from the folder: the untrained initial model


def test_a_changed_reference_source_is_refused_unless_the_reference_was_saved(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    model = make(str(folder))
    model.learn(16)
    model.save(tmp_path / "agent.zip")
    model.save(tmp_path / "with_reference.zip", include_reference=True)
    state, _ = zip_state(tmp_path / "with_reference.zip")
    assert any(k.startswith("reference_lm") for k in state)
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(folder)
    with th.no_grad():
        lm.get_input_embeddings().weight.add_(0.01)  # someone overwrites the folder with other weights
    lm.save_pretrained(folder)
    before = (tmp_path / "agent.zip").read_bytes()
    with pytest.raises(ValueError, match=r"KL reference is rebuilt from .*model', but the weights there are not"):
        PPO.load(tmp_path / "agent.zip", env=model.env)
    assert (tmp_path / "agent.zip").read_bytes() == before  # a refused load changes nothing
    loaded = PPO.load(tmp_path / "with_reference.zip", env=model.env)
    for a, b in zip(model.reference.state_dict().values(), loaded.reference.state_dict().values()):
        assert th.equal(a, b)  # the saved reference, not the folder's new weights
