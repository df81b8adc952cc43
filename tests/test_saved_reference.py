"""A saved agent holds the trainable weights and the optimizer once, not the frozen reference (rebuilt and checked)."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import torch as th
from tiny import tiny_env, tiny_tokenizer

from agents import A2C, PPO
from textgym.vector import TokenVecEnv


def make(model_folder, algo=PPO, **kwargs):
    env = TokenVecEnv(tiny_env(tiny_tokenizer()), 4, device="cpu")
    return algo("TransformerPolicy", env, n_steps=4, seed=0, learning_rate=1e-2,
                policy_kwargs=dict(model_name=model_folder), **kwargs)


def zip_state(path):
    with zipfile.ZipFile(path) as archive:
        names = {info.filename: info.file_size for info in archive.infolist()}
        return th.load(archive.open("policy.pth"), weights_only=True), names


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_the_zip_holds_no_reference_and_is_weights_plus_optimizer(tiny_model, tmp_path, algo):
    model = make(tiny_model, algo)
    model.learn(32)
    model.save(tmp_path / "agent.zip")
    state, sizes = zip_state(tmp_path / "agent.zip")
    assert state and not [k for k in state if k.startswith("reference_lm")]
    trainable = sum(p.numel() * p.element_size() for p in model.policy.parameters() if p.requires_grad)
    tied = model.policy.lm.get_input_embeddings().weight.data_ptr() == model.policy.lm.get_output_embeddings().weight.data_ptr()
    assert tied  # the tiny model ties its LM head to the embeddings: stored once
    # Adam keeps two moments per trainable weight; 1.05x that plus a small fixed part (data, names)
    assert sizes["policy.pth"] + sizes["policy.optimizer.pth"] <= 1.05 * 3 * trainable + 64_000, sizes
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
