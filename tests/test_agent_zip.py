"""The saved-agent zip holds no pickles: tensors in safetensors, data in tagged JSON; SB3-format zips need consent."""

from __future__ import annotations

import base64
import json
import pickle
import zipfile
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3
import torch as th
from stable_baselines3.common.utils import FloatSchedule, LinearSchedule
from tiny import tiny_env, tiny_tokenizer

from agents import PPO
from agents.agent_zip import optimizer_bytes, optimizer_from_bytes, state_dict_bytes, state_dict_from_bytes
from agents.json_codec import decode, encode
from agents.kl import AdaptiveKLController
from textgym.vector import TokenVecEnv


def make(model_folder, **kwargs):
    env = TokenVecEnv(tiny_env(tiny_tokenizer()), 4, device="cpu")
    kwargs.setdefault("learning_rate", 1e-2)
    return PPO("TransformerPolicy", env, n_steps=4, seed=0, policy_kwargs=dict(model_name=model_folder), **kwargs)


def test_the_codec_round_trips_what_an_agent_saves():
    space = gym.spaces.Dict({"input_ids": gym.spaces.Box(0, 9, (5,), np.int64), "n": gym.spaces.Discrete(7, start=1),
                             "m": gym.spaces.MultiDiscrete([2, 3]), "t": gym.spaces.Tuple([gym.spaces.MultiBinary(3)])})
    value = {"space": space, "arr": np.arange(6, dtype=np.float32).reshape(2, 3), "tuple": (1, "a", None),
             "deque": deque([{"r": np.float64(1.5), "l": 4}], maxlen=100), "int_keys": {0: [1.0], 1: True},
             "schedule": FloatSchedule(LinearSchedule(1.0, 0.0, 0.5)), "kl": AdaptiveKLController(0.1, 6.0, 1000),
             "cls": PPO.policy_aliases["TransformerPolicy"], "policy_kwargs": {"optimizer_class": th.optim.SGD}}
    text = json.dumps(encode(value))
    back = decode(json.loads(text))
    assert back["space"] == space and back["tuple"] == (1, "a", None) and back["int_keys"] == {0: [1.0], 1: True}
    np.testing.assert_array_equal(back["arr"], value["arr"]) and back["arr"].dtype == np.float32
    assert back["deque"] == value["deque"] and back["deque"].maxlen == 100
    assert back["schedule"](0.75) == value["schedule"](0.75) and back["kl"] == value["kl"] and back["cls"] is value["cls"]
    assert back["policy_kwargs"]["optimizer_class"] is th.optim.SGD
    assert ":serialized:" not in text
    with pytest.raises(ValueError, match="not one textgym loads from a file"):
        decode({":kind:": "class", "name": "os.system"})


def test_tied_weights_are_stored_once_and_the_optimizer_round_trips():
    emb = th.nn.Embedding(10, 4)
    state = {"embed.weight": emb.weight, "head.weight": emb.weight, "bias": th.zeros(3)}
    raw = state_dict_bytes(state)
    assert len(raw) < 10 * 4 * 4 + 3 * 4 + 400  # one copy of the 10 x 4 matrix
    back = state_dict_from_bytes(raw)
    assert back["head.weight"] is back["embed.weight"] and th.equal(back["embed.weight"], emb.weight)
    odd = {"bf16": th.randn(3, 5).bfloat16(), "scalar": th.tensor(2.5), "empty": th.zeros(0, 4), "flags": th.ones(3).bool(),
           "strided": th.arange(12.0).reshape(3, 4).t()}
    from safetensors.torch import load

    back = load(state_dict_bytes(odd))  # what this module writes, safetensors' own parser reads
    assert all(th.equal(back[k], v) and back[k].dtype == v.dtype for k, v in odd.items())
    opt = th.optim.AdamW(emb.parameters(), lr=0.1)
    emb(th.tensor([1, 2])).sum().backward()
    opt.step()
    loaded = optimizer_from_bytes(optimizer_bytes(opt.state_dict()))
    assert loaded["param_groups"] == opt.state_dict()["param_groups"]
    assert all(th.equal(loaded["state"][0][k], v) for k, v in opt.state_dict()["state"][0].items())


def test_load_unpickles_nothing_and_resumes(tiny_model, tmp_path, monkeypatch):
    model = make(tiny_model)
    model.learn(16)
    model.save(tmp_path / "agent")  # SB3's naming: agent.zip
    with zipfile.ZipFile(tmp_path / "agent.zip") as archive:
        assert ":serialized:" not in archive.read("data").decode()
        assert not [n for n in archive.namelist() if n.endswith(".pth")]

    def refuse(*args, **kwargs):
        raise AssertionError("load unpickled something")

    with monkeypatch.context() as m:
        for module, name in [(pickle, "loads"), (pickle, "load"), (th, "load")]:
            m.setattr(module, name, refuse)
        import cloudpickle

        m.setattr(cloudpickle, "loads", refuse)
        loaded = PPO.load(tmp_path / "agent", env=model.env)
    obs = model.env.reset()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    saved, restored = model.policy.optimizer.state_dict()["state"], loaded.policy.optimizer.state_dict()["state"]
    for a, b in zip(saved.values(), restored.values()):
        assert all(th.equal(a[k], b[k]) for k in a)
    assert loaded.num_timesteps == 16 and loaded.kl_controller == model.kl_controller
    loaded.learn(16, reset_num_timesteps=False)
    fresh = make(tiny_model)
    fresh.set_parameters(str(tmp_path / "agent.zip"))  # SB3's in-place load reads the safe zip too
    np.testing.assert_array_equal(fresh.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))  # unpickling this creates a file


def test_an_sb3_format_zip_is_refused_unless_the_caller_trusts_it(tiny_model, tmp_path):
    model = make(tiny_model)
    stable_baselines3.PPO.save(model, tmp_path / "sb3.zip")  # SB3's own writer: torch.save + cloudpickle
    with pytest.raises(ValueError, match=r"SB3's own format .* allow_pickle=True"):
        PPO.load(tmp_path / "sb3.zip", env=model.env)
    trusted = PPO.load(tmp_path / "sb3.zip", env=model.env, allow_pickle=True)
    obs = model.env.reset()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], trusted.predict(obs, deterministic=True)[0])
    # a downloaded zip whose data carries a pickle that writes a file: refused before anything runs
    marker = tmp_path / "pwned"
    evil = {":type:": "x", ":serialized:": base64.b64encode(pickle.dumps(_Payload(str(marker)))).decode()}
    with zipfile.ZipFile(tmp_path / "sb3.zip") as src, zipfile.ZipFile(tmp_path / "evil.zip", "w") as dst:
        for item in src.infolist():
            data = json.loads(src.read(item)) if item.filename == "data" else None
            dst.writestr(item, json.dumps({**data, "observation_space": evil}) if data else src.read(item))
    with pytest.raises(ValueError, match="allow_pickle"):
        PPO.load(tmp_path / "evil.zip", env=model.env)
    assert not marker.exists()
    # the same payload inside a safe-format zip is data, not code
    model.save(tmp_path / "safe.zip")
    with zipfile.ZipFile(tmp_path / "safe.zip") as src, zipfile.ZipFile(tmp_path / "safe_evil.zip", "w") as dst:
        for item in src.infolist():
            data = json.loads(src.read(item)) if item.filename == "data" else None
            dst.writestr(item, json.dumps({**data, "ep_success_buffer": evil}) if data else src.read(item))
    PPO.load(tmp_path / "safe_evil.zip", env=model.env)
    assert not marker.exists()


def test_a_callable_that_cannot_be_stored_is_asked_for_at_load(tiny_model, tmp_path):
    model = make(tiny_model, learning_rate=lambda progress: 1e-2 * progress)
    with pytest.warns(UserWarning, match=r"\['learning_rate'\] are Python objects"):
        model.save(tmp_path / "agent.zip")
    with pytest.raises(ValueError, match=r"learning_rate.*custom_objects=\{'learning_rate': \.\.\.\}"):
        PPO.load(tmp_path / "agent.zip", env=model.env)
    loaded = PPO.load(tmp_path / "agent.zip", env=model.env, custom_objects={"learning_rate": lambda p: 1e-3})
    assert loaded.lr_schedule(1.0) == 1e-3


def test_a_save_without_the_optimizer_is_a_third_and_loads_with_a_fresh_one(tiny_model, tmp_path):
    model = make(tiny_model)
    model.learn(16)
    model.save(tmp_path / "full.zip")
    model.save(tmp_path / "weights.zip", include_optimizer=False)
    with zipfile.ZipFile(tmp_path / "weights.zip") as archive:
        assert "policy.optimizer.safetensors" not in archive.namelist()
    assert (tmp_path / "weights.zip").stat().st_size < 0.4 * (tmp_path / "full.zip").stat().st_size
    loaded = PPO.load(tmp_path / "weights.zip", env=model.env)
    assert not loaded.policy.optimizer.state  # fresh: no moments yet
    obs = model.env.reset()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    loaded.learn(16, reset_num_timesteps=False)
