"""The fast path (KV-cache rollouts, one-pass updates) against the stock SB3 path, on the same episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

from agents import A2C, PPO
from agents.buffers import compute_gae
from agents.losses import ppo_loss
from agents.rollout import evaluate_episodes, generate_episodes, reference_log_probs
from textgym.vector import TokenVecEnv

N = 6


@pytest.fixture(scope="module")
def setup():
    tok = tiny_tokenizer()
    venv = TokenVecEnv(tiny_env(tok, max_new_tokens=5), N, device="cpu")
    venv.seed(0)
    model = PPO("TransformerPolicy", venv, n_steps=8, batch_size=16, seed=0, kl_coef=0.1,
                policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(tok)), temperature=0.9))
    th.manual_seed(0)
    batch = generate_episodes(model.policy, venv)
    return model, venv, batch


def stock_transitions(venv, batch):
    """Every step of every episode as the observation the stock SB3 path would see."""
    prompt_len, horizon = venv.prompt_length, venv.max_new_tokens
    out = []
    for e in range(batch.num_episodes):
        steps = int(batch.step_mask[e].sum())
        for t in range(steps):
            ids = th.full((prompt_len + horizon,), venv.pad_token_id, dtype=th.long)
            mask = th.zeros_like(ids)
            ids[:prompt_len], mask[:prompt_len] = batch.prompt_ids[e], batch.prompt_mask[e]
            ids[prompt_len : prompt_len + t] = batch.tokens[e, :t]
            mask[prompt_len : prompt_len + t] = 1
            out.append((e, t, ids, mask, batch.tokens[e, t]))
    return out


def test_rollout_is_consistent_with_the_env(setup):
    model, venv, batch = setup
    lengths = batch.step_mask.sum(-1)
    assert len(batch.infos) == N and (lengths >= 1).all() and (lengths <= 5).all()
    # The episode return the env reported is what the batch holds.
    assert sorted(i["score"] for i in batch.infos) == pytest.approx(sorted(batch.env_rewards.sum(-1).tolist()))
    for info in batch.infos:  # the generated text decodes from the stored tokens
        assert info["num_tokens"] in (lengths - 1).tolist() + lengths.tolist()


def test_fast_log_probs_values_advantages_and_loss_match_stock(setup):
    model, venv, batch = setup
    policy = model.policy
    with th.no_grad():
        fast_logp, fast_values, fast_entropy = evaluate_episodes(policy, batch)
        ref_fast = reference_log_probs(policy, batch)
    steps = stock_transitions(venv, batch)
    obs = {"input_ids": th.stack([s[2] for s in steps]).float(),  # SB3's buffers hold floats
           "attention_mask": th.stack([s[3] for s in steps]).float()}
    actions = th.stack([s[4] for s in steps])
    with th.no_grad():
        stock_values, stock_logp, stock_entropy = policy.evaluate_actions(obs, actions)
        stock_ref = policy.reference_log_prob(obs, actions)
    rows, cols = [s[0] for s in steps], [s[1] for s in steps]
    th.testing.assert_close(fast_logp[rows, cols], stock_logp, atol=1e-5, rtol=1e-4)
    th.testing.assert_close(fast_values[rows, cols], stock_values.flatten(), atol=1e-5, rtol=1e-4)
    th.testing.assert_close(fast_entropy[rows, cols], stock_entropy, atol=1e-5, rtol=1e-4)
    th.testing.assert_close(ref_fast[rows, cols], stock_ref, atol=1e-5, rtol=1e-4)

    # Advantages: SB3's own GAE over the same transitions laid end to end in one env.
    rewards = batch.env_rewards - 0.1 * (fast_logp - ref_fast) * batch.step_mask
    adv, ret = compute_gae(rewards, fast_values, batch.step_mask, gamma=0.99, gae_lambda=0.9)
    sb3 = RolloutBuffer(len(steps), venv.observation_space["input_ids"], venv.action_space, gamma=0.99, gae_lambda=0.9)
    for (e, t, *_), value, logp in zip(steps, stock_values.flatten(), stock_logp):
        sb3.add(np.zeros((1, venv.observation_space["input_ids"].shape[0])), np.zeros((1, 1)),
                np.array([float(rewards[e, t])]), np.array([t == 0]), value.view(1, 1), logp.view(1))
    sb3.compute_returns_and_advantage(last_values=th.zeros(1, 1), dones=np.array([True]))
    np.testing.assert_allclose(adv[rows, cols].numpy(), sb3.advantages.flatten(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(ret[rows, cols].numpy(), sb3.returns.flatten(), atol=1e-5, rtol=1e-4)

    # Loss: SB3's PPO formula on the stock per-transition tensors vs the masked episode loss.
    th.manual_seed(1)
    old_logp = fast_logp + 0.05 * th.randn_like(fast_logp)  # a policy that moved a little
    old_values = fast_values + 0.1 * th.randn_like(fast_values)
    parts = ppo_loss(fast_logp, old_logp, adv, fast_values, old_values, ret, fast_entropy, batch.step_mask,
                     clip_range=0.2, clip_range_vf=0.3, ent_coef=0.01, vf_coef=0.5, normalize_advantage=True)
    a = th.as_tensor(sb3.advantages.flatten(), dtype=th.float32)
    a = (a - a.mean()) / (a.std() + 1e-8)
    ratio = th.exp(stock_logp - old_logp[rows, cols])
    pg = -th.min(a * ratio, a * th.clamp(ratio, 0.8, 1.2)).mean()
    v_old = old_values[rows, cols]
    v_pred = v_old + th.clamp(stock_values.flatten() - v_old, -0.3, 0.3)
    vf = ((th.as_tensor(sb3.returns.flatten(), dtype=th.float32) - v_pred) ** 2).mean()
    expected = pg + 0.01 * -stock_entropy.mean() + 0.5 * vf
    th.testing.assert_close(parts.loss, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("algo, kwargs", [(PPO, dict(n_steps=16, batch_size=64, n_epochs=4)), (A2C, dict(n_steps=2))])
def test_fast_path_learns(algo, kwargs):
    tok = tiny_tokenizer()
    venv = TokenVecEnv(tiny_env(tok), 16, device="cpu")
    venv.seed(0)
    model = algo("TransformerPolicy", venv, learning_rate=3e-3, seed=0, kl_coef=0.0,
                 policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(tok))), **kwargs)
    assert model.uses_fast_path()
    first = []
    model.learn(256)
    first = [e["r"] for e in model.ep_info_buffer]
    model.learn(3000, reset_num_timesteps=False)
    last = [e["r"] for e in list(model.ep_info_buffer)[-32:]]
    print(f"{algo.__name__} fast path: first {np.mean(first):.2f} -> last {np.mean(last):.2f}")
    assert np.mean(last) > np.mean(first) + 0.3


def test_fast_path_logs_kl_and_metrics(tmp_path):
    from stable_baselines3.common.logger import configure

    tok = tiny_tokenizer()
    venv = TokenVecEnv(tiny_env(tok), 8, device="cpu")
    model = PPO("TransformerPolicy", venv, n_steps=8, batch_size=32, learning_rate=1e-3, seed=0, kl_coef=0.2,
                kl_target=0.5, policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(tok))))
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(200)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ("rollout/kl", "train/kl_coef", "train/entropy", "train/approx_kl", "train/clip_fraction",
                "train/explained_variance", "rollout/ep_rew_mean", "rollout/rouge1", "train/skipped_updates"):
        assert key in header, key


@pytest.mark.parametrize("controls", [dict(), dict(temperature=0.7, top_k=5), dict(temperature=1.3, top_p=0.8),
                                      dict(temperature=0.8, top_k=6, top_p=0.9), dict(separate_critic=True)])
def test_rollout_records_the_teacher_forced_log_probs_and_values(controls):
    """The log-probs and values kept from sampling are what one teacher-forced pass gives (no second pass)."""
    tok = tiny_tokenizer()
    venv = TokenVecEnv(tiny_env(tok, max_new_tokens=6), N, device="cpu")
    venv.seed(1)
    model = PPO("TransformerPolicy", venv, seed=1, learning_rate=0.0, policy_kwargs=dict(  # lr 0: the update changes nothing
        model_name=None, model_config=tiny_llama_config(len(tok)), **controls))
    th.nn.init.normal_(model.policy.value_head.weight)  # a non-zero critic, so values are compared for real
    prefills = []
    model.policy.lm.base_model.register_forward_hook(
        lambda module, args, kwargs, out: prefills.append(kwargs["input_ids"].shape[1] > 1 and not th.is_grad_enabled()),
        with_kwargs=True)
    model.learn(1)  # one rollout: generate, then the reference pass and GAE
    buffer = model.rollout_buffer
    batch = buffer.episodes
    assert sum(prefills) == len(buffer.batches)  # without gradients, the policy trunk saw only prompts and single tokens
    with th.no_grad():
        log_probs, values, _ = evaluate_episodes(model.policy, batch)
    mask = batch.step_mask
    assert th.isfinite(batch.log_probs[mask]).all()
    th.testing.assert_close(batch.log_probs[mask], log_probs[mask], atol=2e-5, rtol=1e-4)
    th.testing.assert_close(batch.values[mask], values[mask], atol=2e-5, rtol=1e-4)
    assert (batch.log_probs[~mask] == 0).all() and (batch.values[~mask] == 0).all()


def test_env_ids_textenvs_and_dummyvecenvs_run_on_the_fast_path_like_make_vec():
    """An id, a single TextEnv and a DummyVecEnv of TextEnvs give the agent make_vec's env: same samples, same run."""
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env

    import textgym

    tok = tiny_tokenizer()
    kw = dict(tokenizer=tok, max_prompt_length=24, max_new_tokens=3)
    env_id = "textgym/Generation-v0"

    def run(env, **extra):
        model = PPO("TransformerPolicy", env, seed=3, n_steps=4, batch_size=8, learning_rate=1e-3,
                    policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(tok))), **extra)
        assert model.uses_fast_path() and isinstance(model.env, TokenVecEnv)
        samples = []
        model.learn(24, callback=lambda loc, _: samples.extend(i["sample_id"] for i in loc["infos"] if i) or True)
        return samples, [p.detach().clone() for p in model.policy.parameters()]

    for n, variants in ((3, [(env_id, dict(n_envs=3, env_kwargs=kw)),
                             (make_vec_env(env_id, n_envs=3, env_kwargs={**kw, "render_mode": None}), {})]),
                        (1, [(gym.make(env_id, **kw), {})])):
        expected_samples, expected_params = run(textgym.make_vec(env_id, n, device="cpu", **kw))
        assert len(expected_samples) >= 8
        for env, extra in variants:
            samples, params = run(env, **extra)
            assert samples == expected_samples
            for p, q in zip(params, expected_params):
                assert th.equal(p, q)


def test_stock_path_only_when_asked():
    tok = tiny_tokenizer()
    kwargs = dict(policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(tok))))
    assert not PPO("TransformerPolicy", tiny_env(tok), fast_path=False, **kwargs).uses_fast_path()
    with pytest.warns(UserWarning, match="wrapped in TimeAwareObservation|wrapped in ClipReward|SB3's per-step path"):
        import gymnasium as gym

        model = PPO("TransformerPolicy", gym.wrappers.TransformReward(tiny_env(tok), lambda r: 2 * r), **kwargs)
    assert not model.uses_fast_path()
    with pytest.raises(ValueError, match="n_envs and env_kwargs apply only when env is an id"):
        PPO("TransformerPolicy", tiny_env(tok), n_envs=4, **kwargs)


def test_dropping_all_padding_prompt_columns_changes_no_result(monkeypatch):
    """Uneven prompts: the rollout and every teacher-forced pass, with the prompt columns that are
    padding in every row dropped, give what full-width passes give (positions come from the mask)."""
    import agents.rollout as rollout
    from textgym.core import TextEnv
    from textgym.data.base import Sample

    tok = tiny_tokenizer()
    sources = ["say good", "say bad cat", "say sun rain red", "say big small run sit dog"]  # 3 to 7 tokens of 12
    env = TextEnv([Sample(f"s{i}", s, ("good good",)) for i, s in enumerate(sources)], tok, max_prompt_length=12,
                  max_new_tokens=4, prompt_template="{source} :", reward="rouge1")
    venv = TokenVecEnv(env, 4, device="cpu")
    reset_all = venv.reset_all
    venv.reset_all = lambda: reset_all(seed=0)  # both rollouts start from the same prompts, of 5, 3, 7, 7 tokens
    model = PPO("TransformerPolicy", venv, seed=0, kl_coef=0.1, policy_kwargs=dict(
        model_name=None, model_config=tiny_llama_config(len(tok)), temperature=0.9, top_k=8, separate_critic=True))
    policy = model.policy
    th.nn.init.normal_(policy.value_head.weight)  # a non-zero critic
    widths = []
    policy.lm.base_model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)

    def run(trim: bool):
        if not trim:
            monkeypatch.setattr(rollout, "padding_columns", lambda mask: 0)
        th.manual_seed(5)
        widths.clear()
        batch = generate_episodes(policy, venv)
        prefill = widths[0]
        rows = th.tensor([1, 0])  # a minibatch whose own padding differs from the whole batch's
        with th.no_grad():
            out = [*evaluate_episodes(policy, batch), *evaluate_episodes(policy, batch, rows),
                   reference_log_probs(policy, batch), reference_log_probs(policy, batch, rows),
                   rollout.critic_values(policy, batch, rows)]
        monkeypatch.undo()
        return batch, prefill, out

    trimmed, prefill, got = run(True)
    full, full_prefill, expected = run(False)
    lengths = trimmed.prompt_mask.sum(-1)
    assert len(set(lengths.tolist())) > 1 and full_prefill == 12 and prefill == int(lengths.max()) < 12
    assert trimmed.prompt_ids.shape == full.prompt_ids.shape == (4, 12)  # the batch keeps the env's width
    th.testing.assert_close(trimmed.tokens, full.tokens, atol=0, rtol=0)
    th.testing.assert_close(trimmed.log_probs, full.log_probs, atol=1e-5, rtol=1e-4)
    th.testing.assert_close(trimmed.values, full.values, atol=1e-5, rtol=1e-4)
    for a, b in zip(got, expected):
        th.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
