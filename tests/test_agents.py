"""agents: TransformerPolicy under stock SB3, agents.PPO / A2C learning, KL control, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import stable_baselines3 as sb3
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

from agents import A2C, PPO, TransformerPolicy
from agents.policies import hidden_at_last_token, sampling_logits


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def policy_kwargs(tok, **extra):
    return dict(model_name=None, model_config=tiny_llama_config(len(tok)), **extra)


def vec_env(tok, n_envs=4, seed=0, **kwargs):
    return make_vec_env(lambda: tiny_env(tok, **kwargs), n_envs=n_envs, seed=seed)


class ReturnCurve(BaseCallback):
    """Mean episode return (last 100 episodes) at the end of each rollout."""

    def __init__(self):
        super().__init__()
        self.curve: list[float] = []

    def _on_rollout_end(self) -> None:
        buf = self.model.ep_info_buffer
        self.curve.append(float(np.mean([e["r"] for e in buf])) if buf else 0.0)

    def _on_step(self) -> bool:
        return True


def test_last_token_logits_match_unpadded_forward(tok):
    """Left padding plus right padding must give the logits of the bare sequence."""
    env = tiny_env(tok, max_new_tokens=4)
    model = PPO("TransformerPolicy", env, policy_kwargs=policy_kwargs(tok), seed=0, n_steps=8, batch_size=8)
    policy = model.policy
    obs, _ = env.reset(seed=0)
    env.step(5)
    obs, *_ = env.step(6)
    batch = {k: th.as_tensor(v)[None] for k, v in obs.items()}
    logits = policy.get_distribution(batch).distribution.logits  # (1, V), normalised
    ids = th.as_tensor(obs["input_ids"][obs["attention_mask"] == 1])[None]
    expected = th.log_softmax(policy.lm(ids).logits[:, -1], dim=-1)
    th.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_learn_changes_every_trainable_parameter(tok):
    model = PPO("TransformerPolicy", vec_env(tok), n_steps=16, batch_size=32, learning_rate=1e-3, seed=0,
                policy_kwargs=policy_kwargs(tok, separate_critic=True))
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters() if p.requires_grad}
    ref_before = {n: p.detach().clone() for n, p in model.reference.named_parameters()}
    model.learn(64)
    unchanged = [n for n, p in model.policy.named_parameters() if p.requires_grad and th.equal(p, before[n])]
    assert not unchanged, f"parameters not updated: {unchanged}"
    assert any(n.startswith("critic_trunk") for n in before) and any(n.startswith("value_head") for n in before)
    for n, p in model.reference.named_parameters():  # the reference stays frozen
        assert not p.requires_grad and th.equal(p, ref_before[n])


@pytest.mark.parametrize("algo, kwargs", [
    (PPO, dict(n_steps=32, batch_size=32, n_epochs=4, learning_rate=3e-3)),
    (A2C, dict(n_steps=8, learning_rate=3e-3)),
])
def test_return_rises_on_an_easy_task(tok, algo, kwargs):
    curve = ReturnCurve()
    model = algo("TransformerPolicy", vec_env(tok), seed=0, kl_coef=0.0, policy_kwargs=policy_kwargs(tok), **kwargs)
    model.learn(3000, callback=curve)
    print(f"{algo.__name__} return curve:", [round(r, 2) for r in curve.curve])
    start, end = np.mean(curve.curve[1:3]), curve.curve[-1]
    assert start < 0.15 and end > start + 0.4, curve.curve


@pytest.mark.parametrize("algo", [sb3.PPO, sb3.A2C])
def test_stock_sb3_trains_with_transformer_policy(tok, algo):
    kwargs = dict(batch_size=16) if algo is sb3.PPO else {}
    model = algo(TransformerPolicy, vec_env(tok, n_envs=2), n_steps=16, seed=0,
                 policy_kwargs=policy_kwargs(tok), **kwargs)
    model.learn(64)
    obs = model.env.reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (2,) and ((0 <= actions) & (actions < len(tok))).all()


def _mean_kl(model, tok, n_episodes=16):
    """Exact KL(policy || reference) over the next-token distribution, on observations from the env."""
    env = tiny_env(tok)
    obs_list = []
    for seed in range(n_episodes):
        obs, _ = env.reset(seed=seed)
        obs_list.append(obs)
        for token in np.random.default_rng(seed).integers(5, len(tok), size=3):  # no EOS: stay mid-episode
            obs, *_ = env.step(token)
            obs_list.append(obs)
    batch = {k: th.as_tensor(np.stack([o[k] for o in obs_list])) for k in obs_list[0]}
    with th.no_grad():
        logp = model.policy.get_distribution(batch).distribution.logits  # (B, V), normalised
        hidden = hidden_at_last_token(model.reference.base_model, batch)
        ref = th.log_softmax(model.reference.get_output_embeddings()(hidden), dim=-1)
    return float((logp.exp() * (logp - ref)).sum(-1).mean())


def test_huge_kl_coef_keeps_policy_at_reference(tok):
    kls = {}
    for coef in (0.0, 50.0):
        model = PPO("TransformerPolicy", vec_env(tok), n_steps=32, batch_size=32, learning_rate=1e-3, seed=0,
                    kl_coef=coef, policy_kwargs=policy_kwargs(tok))
        model.learn(1500)
        kls[coef] = _mean_kl(model, tok)
    assert kls[50.0] < 0.05 and kls[0.0] > 5 * kls[50.0], kls


def test_adaptive_kl_coef_moves_the_right_way(tok):
    coefs = {}
    for target in (1e-4, 1e3):
        model = PPO("TransformerPolicy", vec_env(tok), n_steps=16, batch_size=32, learning_rate=3e-3, seed=0,
                    kl_coef=0.1, kl_target=target, kl_horizon=500, policy_kwargs=policy_kwargs(tok))
        model.learn(640)
        coefs[target] = model.kl_coef
    assert coefs[1e-4] > 0.1 > coefs[1e3], coefs


def test_save_load_round_trip_and_resume(tok, tmp_path):
    env = vec_env(tok)
    model = PPO("TransformerPolicy", env, n_steps=16, batch_size=32, learning_rate=1e-3, seed=0,
                kl_coef=0.2, kl_target=1.0, policy_kwargs=policy_kwargs(tok, top_k=5))
    model.learn(128)
    path = tmp_path / "ckpt" / "agent"
    model.save(path)
    assert (tmp_path / "ckpt" / "agent.zip").is_file()
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["agent.zip"]  # no temp file left behind
    loaded = PPO.load(path, env=env)
    obs = env.reset()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    for (n, p), (_, q) in zip(model.policy.state_dict().items(), loaded.policy.state_dict().items()):
        assert th.equal(p, q), n
    for p, q in zip(model.reference.parameters(), loaded.reference.parameters()):
        assert th.equal(p, q)
    assert loaded.kl_coef == model.kl_coef and loaded.policy.top_k == 5
    opt_a, opt_b = model.policy.optimizer.state_dict(), loaded.policy.optimizer.state_dict()
    assert opt_a["state"].keys() == opt_b["state"].keys() and opt_a["state"]
    for key in opt_a["state"]:
        th.testing.assert_close(opt_a["state"][key]["exp_avg"], opt_b["state"][key]["exp_avg"])
    loaded.learn(64, reset_num_timesteps=False)  # training resumes
    assert loaded.num_timesteps == model.num_timesteps + 64


def test_nonfinite_update_is_skipped(tok):
    model = PPO("TransformerPolicy", tiny_env(tok), n_steps=8, batch_size=8, policy_kwargs=policy_kwargs(tok))
    policy = model.policy
    assert policy.optimizer.defaults["fused"] is True  # the default AdamW is the fused kernel
    before = [p.detach().clone() for p in policy.parameters()]
    for p in policy.parameters():
        p.grad = th.ones_like(p)
    next(policy.parameters()).grad[0] = float("nan")
    policy.optimizer.step()
    assert policy.skipped_updates == 1
    assert all(th.equal(a, b) for a, b in zip(before, policy.parameters()))
    for p in policy.parameters():
        p.grad = th.ones_like(p)
    policy.optimizer.step()
    assert policy.skipped_updates == 1 and not all(th.equal(a, b) for a, b in zip(before, policy.parameters()))


def test_vocab_mismatch_is_a_clear_error(tok):
    env = tiny_env(tok)
    with pytest.raises(ValueError, match="LM head has only"):
        PPO("TransformerPolicy", env, policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(8)))


def test_bad_policy_kwargs(tok):
    env = tiny_env(tok)
    for bad, match in ((dict(temperature=0), "temperature"), (dict(top_p=1.5), "top_p"), (dict(top_k=0), "top_k")):
        with pytest.raises(ValueError, match=match):
            PPO("TransformerPolicy", env, policy_kwargs=policy_kwargs(tok, **bad))
    with pytest.raises(TypeError, match="save_pretrained"):
        PPO("TransformerPolicy", env, policy_kwargs=dict(model_name=th.nn.Linear(2, 2)))


def test_sampling_controls_mask_the_distribution():
    logits = th.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    top2 = th.softmax(sampling_logits(logits, 1.0, 2, None), -1)
    assert (top2[0, 2:] == 0).all() and top2[0, :2].sum() == pytest.approx(1.0)
    nucleus = th.softmax(sampling_logits(logits, 1.0, None, 0.5), -1)  # p(0)=0.64 already crosses 0.5
    assert nucleus[0, 0] == pytest.approx(1.0)
    hot = th.softmax(sampling_logits(logits, 2.0, None, None), -1)
    th.testing.assert_close(hot, th.softmax(logits / 2, -1))


def test_rollout_and_update_log_probs_agree(tok):
    model = PPO("TransformerPolicy", tiny_env(tok), n_steps=8, batch_size=8, seed=0,
                policy_kwargs=policy_kwargs(tok, temperature=0.7, top_k=4, top_p=0.9))
    env = tiny_env(tok)
    obs, _ = env.reset(seed=3)
    batch = {k: th.as_tensor(v)[None] for k, v in obs.items()}
    with th.no_grad():
        actions, _, logp = model.policy(batch)
        _, logp2, _ = model.policy.evaluate_actions(batch, actions)
    th.testing.assert_close(logp, logp2)
    assert th.isfinite(logp).all()


def test_kl_stays_finite_when_the_policy_leaves_the_references_top_k(tok):
    """The reference is scored untruncated: a token outside its top-k must not give an infinite KL."""
    model = PPO("TransformerPolicy", tiny_env(tok), n_steps=8, batch_size=8, seed=0,
                policy_kwargs=policy_kwargs(tok, temperature=0.7, top_k=2))
    obs, _ = tiny_env(tok).reset(seed=0)
    batch = {k: th.as_tensor(v)[None] for k, v in obs.items()}
    with th.no_grad():
        hidden = hidden_at_last_token(model.reference.base_model, batch)
        ref_logits = model.reference.get_output_embeddings()(hidden)[..., : model.policy.n_actions]
        outside = ref_logits.argmin(-1)  # far outside the reference's top-2
        ref = model.policy.reference_log_prob(batch, outside)
    expected = th.log_softmax(ref_logits.float() / 0.7, -1).gather(-1, outside[:, None]).squeeze(-1)
    th.testing.assert_close(ref, expected)
    assert th.isfinite(ref).all() and (ref > -1e3).all()


def test_config_object_sets_the_defaults_and_keywords_win(tok):
    from agents import PPOConfig

    env = tiny_env(tok, max_new_tokens=4)
    model = PPO("TransformerPolicy", env, config=PPOConfig(n_steps=4, n_epochs=3, kl_coef=0.2), n_epochs=1,
                policy_kwargs=policy_kwargs(tok), seed=0)
    assert (model.n_steps, model.n_epochs, model.kl_coef) == (4, 1, 0.2)
    with pytest.raises(TypeError, match="config must be a PPOConfig for PPO, got A2CConfig"):
        from agents import A2CConfig

        PPO("TransformerPolicy", env, config=A2CConfig(), policy_kwargs=policy_kwargs(tok))


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_a_policy_that_is_not_a_transformer_policy_is_sent_to_sb3(tok, algo):
    with pytest.raises(TypeError, match=rf"policy must be 'TransformerPolicy'.*use stable_baselines3\.{algo.__name__}"):
        algo("MultiInputPolicy", tiny_env(tok, max_new_tokens=4))


@pytest.mark.parametrize("name, value, match", [
    ("n_steps", 8.5, r"PPO: n_steps must be an integer >= 1, got 8.5 \(a fractional number\)"),
    ("learning_rate", "3e-4", r"PPO: learning_rate must be a finite number >= 0, got '3e-4'"),
    ("kl_coef", "0.1", r"PPO: kl_coef must be a finite number >= 0, got '0.1'"),
    ("gamma", float("nan"), r"PPO: gamma must be a finite number in \[0, 1\], got nan"),
])
def test_hyperparameters_of_the_wrong_type_are_refused_by_name(tok, name, value, match):
    with pytest.raises(ValueError, match=match):
        PPO("TransformerPolicy", tiny_env(tok, max_new_tokens=4), policy_kwargs=policy_kwargs(tok), **{name: value})
