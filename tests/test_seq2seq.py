"""Encoder-decoder policies (T5, BART): the fast path against the stock path, learning, saving, LoRA, SFT, eval
and the leaderboard; config-built tiny models, no download. The layout itself: tests/test_seq2seq_env.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from tiny import tiny_tokenizer
from tiny_seq2seq import START, save_tiny_seq2seq, tiny_seq2seq_config, tiny_seq2seq_env

from agents import PPO
from agents.buffers import compute_gae
from agents.losses import ppo_loss
from agents.rollout import evaluate_episodes, generate_episodes, reference_log_probs
from textgym.vector import TokenVecEnv

N = 6
KINDS = pytest.mark.parametrize("kind", ["t5", "bart"])


def policy_kwargs(kind: str, tok, **extra):
    return dict(model_name=None, model_config=tiny_seq2seq_config(kind, len(tok)), **extra)


def tiny_agent(kind: str, n_envs: int = N, max_new_tokens: int = 5, **kwargs):
    tok = tiny_tokenizer()
    venv = TokenVecEnv(tiny_seq2seq_env(kind, tok, max_new_tokens=max_new_tokens), n_envs, device="cpu")
    venv.seed(0)
    extra = kwargs.pop("policy_extra", {})
    kwargs = {"n_steps": 8, "batch_size": 16, "seed": 0, "kl_coef": 0.1, **kwargs}
    return PPO("TransformerPolicy", venv, policy_kwargs=policy_kwargs(kind, tok, temperature=0.9, **extra), **kwargs)


# --- the policy ---------------------------------------------------------------------------------
@KINDS
def test_actor_logits_are_the_models_own(kind):
    model = tiny_agent(kind, n_envs=2)
    lm = model.policy.lm
    if hasattr(lm, "final_logits_bias"):
        lm.final_logits_bias.normal_()  # BART's head adds it: the actor must too
    venv = model.env
    venv.reset()
    venv.step_async(np.array([5, 6]))
    venv.step_wait()
    obs = {k: th.as_tensor(v) for k, v in venv.observations().items()}
    with th.no_grad():
        full = lm(**obs).logits  # (B, 1 + T, V): plain transformers on the observation
        last = obs["decoder_attention_mask"].sum(-1) - 1
        expected = th.log_softmax(full[th.arange(2), last] / 0.9, -1)
        dist = model.policy.get_distribution(obs).distribution
    th.testing.assert_close(dist.logits, expected, atol=1e-5, rtol=1e-4)


def stock_observations(venv, batch):
    """Every step of every episode as the seq2seq observation the stock SB3 path would see."""
    start, horizon = venv.layout.decoder_start_token_id, venv.max_new_tokens
    out = []
    for e in range(batch.num_episodes):
        for t in range(int(batch.step_mask[e].sum())):
            dec = th.full((1 + horizon,), venv.pad_token_id, dtype=th.long)
            dec_mask = th.zeros_like(dec)
            dec[0], dec[1 : 1 + t], dec_mask[: 1 + t] = start, batch.tokens[e, :t], 1
            out.append((e, t, batch.prompt_ids[e], batch.prompt_mask[e], dec, dec_mask, batch.tokens[e, t]))
    return out


@KINDS
def test_fast_log_probs_values_advantages_and_loss_match_stock(kind):
    model = tiny_agent(kind)
    policy, venv = model.policy, model.env
    th.manual_seed(0)
    batch = generate_episodes(policy, venv)
    with th.no_grad():
        fast_logp, fast_values, fast_entropy = evaluate_episodes(policy, batch)
        ref_fast = reference_log_probs(policy, batch)
    mask = batch.step_mask
    # What the KV-cache decode recorded is what the teacher-forced pass computes.
    th.testing.assert_close(batch.log_probs, fast_logp * mask, atol=1e-5, rtol=1e-4)
    th.testing.assert_close(batch.values, fast_values * mask, atol=1e-5, rtol=1e-4)
    steps = stock_observations(venv, batch)
    keys = ("input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask")
    obs = {key: th.stack([s[2 + k] for s in steps]).float() for k, key in enumerate(keys)}  # SB3 holds floats
    actions = th.stack([s[6] for s in steps])
    with th.no_grad():
        stock_values, stock_logp, stock_entropy = policy.evaluate_actions(obs, actions)
        stock_ref = policy.reference_log_prob(obs, actions)
    rows, cols = [s[0] for s in steps], [s[1] for s in steps]
    th.testing.assert_close(fast_logp[rows, cols], stock_logp, atol=1e-5, rtol=1e-4)
    th.testing.assert_close(fast_values[rows, cols], stock_values.flatten(), atol=1e-5, rtol=1e-4)
    th.testing.assert_close(fast_entropy[rows, cols], stock_entropy, atol=1e-5, rtol=1e-4)
    th.testing.assert_close(ref_fast[rows, cols], stock_ref, atol=1e-5, rtol=1e-4)

    rewards = batch.env_rewards - 0.1 * (fast_logp - ref_fast) * mask
    adv, ret = compute_gae(rewards, fast_values, mask, gamma=0.99, gae_lambda=0.9)
    sb3 = RolloutBuffer(len(steps), venv.observation_space["input_ids"], venv.action_space, gamma=0.99, gae_lambda=0.9)
    for (e, t, *_), value, logp in zip(steps, stock_values.flatten(), stock_logp):
        sb3.add(np.zeros((1, venv.observation_space["input_ids"].shape[0])), np.zeros((1, 1)),
                np.array([float(rewards[e, t])]), np.array([t == 0]), value.view(1, 1), logp.view(1))
    sb3.compute_returns_and_advantage(last_values=th.zeros(1, 1), dones=np.array([True]))
    np.testing.assert_allclose(adv[rows, cols].numpy(), sb3.advantages.flatten(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(ret[rows, cols].numpy(), sb3.returns.flatten(), atol=1e-5, rtol=1e-4)

    th.manual_seed(1)
    old_logp = fast_logp + 0.05 * th.randn_like(fast_logp)
    old_values = fast_values + 0.1 * th.randn_like(fast_values)
    parts = ppo_loss(fast_logp, old_logp, adv, fast_values, old_values, ret, fast_entropy, mask,
                     clip_range=0.2, clip_range_vf=0.3, ent_coef=0.01, vf_coef=0.5, normalize_advantage=True)
    a = th.as_tensor(sb3.advantages.flatten(), dtype=th.float32)
    a = (a - a.mean()) / (a.std() + 1e-8)
    ratio = th.exp(stock_logp - old_logp[rows, cols])
    pg = -th.min(a * ratio, a * th.clamp(ratio, 0.8, 1.2)).mean()
    v_old = old_values[rows, cols]
    v_pred = v_old + th.clamp(stock_values.flatten() - v_old, -0.3, 0.3)
    vf = ((th.as_tensor(sb3.returns.flatten(), dtype=th.float32) - v_pred) ** 2).mean()
    th.testing.assert_close(parts.loss, pg + 0.01 * -stock_entropy.mean() + 0.5 * vf, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("extra", [dict(separate_critic=True), dict(top_k=4, top_p=0.8), dict(precision="bf16")],
                         ids=["separate_critic", "top_k_top_p", "bf16"])
def test_policy_options_on_the_fast_path(extra):
    model = tiny_agent("t5", n_envs=4, policy_extra=extra)
    th.manual_seed(0)
    batch = generate_episodes(model.policy, model.env)
    with th.no_grad():
        logp, values, _ = evaluate_episodes(model.policy, batch)
    mask = batch.step_mask
    tol = dict(atol=2e-2, rtol=2e-2) if extra.get("precision") == "bf16" else dict(atol=1e-5, rtol=1e-4)
    th.testing.assert_close(batch.log_probs, logp * mask, **tol)
    if "top_k" in extra:  # masked tokens are never sampled
        assert bool((batch.log_probs > -1e9).all())
    model.learn(16)


def test_stock_sb3_path_learns_with_a_seq2seq_policy():
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env

    from agents.policies import TransformerPolicy

    tok = tiny_tokenizer()
    env = make_vec_env(lambda: tiny_seq2seq_env("bart", tok), n_envs=2, seed=0)
    model = SB3PPO(TransformerPolicy, env, n_steps=8, batch_size=8, n_epochs=1, seed=0,
                   policy_kwargs=policy_kwargs("bart", tok))
    model.learn(16)
    assert model.num_timesteps == 16
    agent = PPO("TransformerPolicy", env, fast_path=False, n_steps=8, batch_size=8, policy_kwargs=policy_kwargs("bart", tok))
    agent.learn(16)
    assert not agent.uses_fast_path()


# --- training, saving, LoRA ----------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["A2C", "RLOO", "GRPO"])
def test_every_algorithm_runs_on_a_seq2seq_policy(algo):
    import agents

    tok = tiny_tokenizer()
    cls = getattr(agents, algo)
    grouped = algo in ("RLOO", "GRPO")
    env = tiny_seq2seq_env("t5", tok, **({"group_size": 2} if grouped else {}))
    venv = TokenVecEnv(env, 4, device="cpu")
    kwargs = dict(n_steps=4, seed=0, **({"group_size": 2} if grouped else {}))
    if algo == "GRPO":
        kwargs.update(batch_size=16, n_epochs=1)
    model = cls("TransformerPolicy", venv, policy_kwargs=policy_kwargs("t5", tok), **kwargs)
    model.learn(16)
    assert model.uses_fast_path() and model.num_timesteps >= 16


@KINDS
def test_learn_save_load_round_trip_and_plain_transformers_export(kind, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    from agents.checkpoints import save_checkpoint

    model = tiny_agent(kind, n_envs=4)
    model.learn(16)
    model.save(tmp_path / "agent")
    loaded = PPO.load(tmp_path / "agent.zip", env=model.env)
    th.manual_seed(0)
    batch = generate_episodes(model.policy, model.env)
    with th.no_grad():
        before, after = evaluate_episodes(model.policy, batch)[0], evaluate_episodes(loaded.policy, batch)[0]
    th.testing.assert_close(before, after)
    loaded.learn(16, reset_num_timesteps=False)
    # final/: a plain Hugging Face folder that transformers loads as is.
    folder = save_checkpoint(tmp_path / "final", model.policy.export_lm(), model.env.env.tokenizer, {"algo": "ppo"})
    plain = AutoModelForSeq2SeqLM.from_pretrained(folder)
    obs = {k: th.as_tensor(v) for k, v in model.env.observations().items()}
    with th.no_grad():
        th.testing.assert_close(plain(**obs).logits, model.policy.lm(**obs).logits)


@KINDS
def test_lora_on_a_seq2seq_policy(kind, tmp_path):
    pytest.importorskip("peft")
    from transformers import AutoModelForSeq2SeqLM

    model = tiny_agent(kind, n_envs=4, learning_rate=1e-2, policy_extra=dict(lora=dict(r=4)))
    policy = model.policy
    assert policy.reference_lm is None and policy.peft_model is not None
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("value_head") for n in trainable)
    model.learn(32)
    th.manual_seed(0)
    batch = generate_episodes(policy, model.env)
    with th.no_grad():
        logp = evaluate_episodes(policy, batch)[0] * batch.step_mask
        ref = reference_log_probs(policy, batch) * batch.step_mask
    assert (logp - ref).abs().max() > 1e-4  # the adapters moved the policy; the reference is the base
    merged = policy.export_lm()
    merged.save_pretrained(tmp_path / "merged")
    plain = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "merged")
    obs = {k: th.as_tensor(v) for k, v in model.env.observations().items()}
    with th.no_grad():
        th.testing.assert_close(plain(**obs).logits, policy.lm(**obs).logits, atol=1e-5, rtol=1e-4)
    model.save(tmp_path / "lora")
    PPO.load(tmp_path / "lora.zip", env=model.env)


def test_a_tiny_t5_learns_a_known_optimum():
    """tests/learnability.py's target-word task (0.9 of the optimum) with a tiny T5 instead of a llama."""
    from learnability import TASKS, make_env, task_tokenizer, train
    from learnability import Learner

    tok, task = task_tokenizer(), TASKS["target_word"]
    learner = Learner(PPO, dict(learning_rate=3e-3, n_steps=16, batch_size=128, n_epochs=4, vf_coef=1.0, kl_coef=0.0))
    env = make_env(task, learner.n_envs, layout="seq2seq", decoder_start_token_id=0)  # pad = eos = 0 here
    config = tiny_seq2seq_config("t5", len(tok), decoder_start_token_id=0, pad_token_id=0, eos_token_id=0)
    result = train(learner, task, 3072, env=env, policy_kwargs=dict(model_name=None, model_config=config))
    assert result.reached_at is not None, result.curve


@KINDS
def test_ppo_on_samsum_with_every_callback(kind, tmp_path, data_dir):
    """The issue's done-when: T5- and BART-shaped policies train with PPO on SAMSum-v0 on the fast path, with SB3's
    callbacks (here tiny ones with the GPT-2 tokenizer, from a model folder as a hub model would be)."""
    from stable_baselines3.common.callbacks import (CallbackList, CheckpointCallback, EvalCallback, ProgressBarCallback,
                                                    StopTrainingOnMaxEpisodes)
    from stable_baselines3.common.monitor import Monitor
    from transformers import AutoTokenizer

    import gymnasium as gym
    from conftest import SHARED

    gpt2 = AutoTokenizer.from_pretrained(str(SHARED / "tokenizers" / "gpt2"))
    folder = save_tiny_seq2seq(kind, tmp_path / kind, gpt2)
    env_kwargs = dict(tokenizer=folder, layout="auto", split="validation[:16]", data_dir=str(data_dir),
                      max_prompt_length=48, max_new_tokens=4)
    model = PPO("TransformerPolicy", "textgym/SAMSum-v0", n_envs=4, env_kwargs=env_kwargs, n_steps=4, batch_size=8,
                n_epochs=1, seed=0, policy_kwargs=dict(model_name=folder))
    assert model.uses_fast_path() and model.env.layout.seq2seq
    eval_env = Monitor(gym.make("textgym/SAMSum-v0", **env_kwargs))
    callbacks = CallbackList([ProgressBarCallback(), CheckpointCallback(4, str(tmp_path / "ckpt")),
                              EvalCallback(eval_env, eval_freq=4, n_eval_episodes=2, warn=False),
                              StopTrainingOnMaxEpisodes(1000)])
    model.learn(32, callback=callbacks)
    assert model.num_timesteps >= 32 and any((tmp_path / "ckpt").iterdir())


# --- the command line: SFT, PPO from the SFT checkpoint, eval with perplexity ---------------------------
def test_cli_sft_then_ppo_then_eval_with_a_t5_folder(tmp_path, capsys):
    import json

    from textgym.cli import main

    folder = save_tiny_seq2seq("t5", tmp_path / "t5")
    fast = ["--threads", "1", "--no-progress", "--set", "eval.n=4", "--set", "eval.batch_size=4",
            "--set", "env.max_new_tokens=6", "--set", "env.max_prompt_length=32"]
    sft = tmp_path / "sft"
    assert main(["train", "--algo", "sft", "--model", folder, "--out", str(sft), "--set", "sft.epochs=0.5",
                 "--set", "sft.learning_rate=0.003", *fast]) == 0
    meta = json.loads((sft / "final" / "textgym_checkpoint.json").read_text())
    assert meta["sft"]["final_loss"] < meta["sft"]["first_loss"]
    ppo = tmp_path / "ppo"
    assert main(["train", "--init", str(sft / "final"), "--total-timesteps", "24", "--num-envs", "4", "--out", str(ppo),
                 "--set", "ppo.n_steps=4", "--set", "ppo.batch_size=8", *fast]) == 0
    summary = json.loads((ppo / "summary.json").read_text())
    assert summary["stats"]["fast_path"]
    report = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(ppo / "final"), "--n", "3", "--batch-size", "3", "--max-new-tokens", "6",
                 "--out", str(report)]) == 0
    payload = json.loads(report.read_text())
    assert len(payload["records"]) == 3 and "perplexity" in payload["metrics"]
    assert "perplexity" in capsys.readouterr().out


def test_perplexity_under_an_encoder_decoder(tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    from textgym.perplexity import generation_perplexity

    tok = tiny_tokenizer()
    lm = AutoModelForSeq2SeqLM.from_pretrained(save_tiny_seq2seq("bart", tmp_path / "bart", tok)).eval()
    prompt, text = tok("say good :")["input_ids"], "cat dog"
    target = tok(text)["input_ids"]
    with th.no_grad():
        logits = lm(input_ids=th.tensor([prompt]), decoder_input_ids=th.tensor([[START["bart"], *target[:-1]]])).logits
    nll = th.nn.functional.cross_entropy(logits[0], th.tensor(target)).item()
    scores = generation_perplexity(lm, tok, [prompt, prompt], [text, ""])
    assert scores["scored_tokens"] == 2 and scores["nll_per_token"] == pytest.approx(nll, rel=1e-5)


@KINDS
def test_seq2seq_rollout_syncs_do_not_grow_with_its_length(kind):
    """As the causal fast path (tests/test_rollout_syncs.py): a handful of host syncs per rollout, none per token."""
    from test_rollout_syncs import count_syncs
    from tiny import uneven_env

    from textgym.core import TextEnv

    tok, counts = tiny_tokenizer(), {}
    for horizon in (4, 16):
        env = TextEnv(uneven_env(tok).samples, tok, max_prompt_length=12, max_new_tokens=horizon, reward="rouge1",
                      prompt_template="{source} :", layout="seq2seq", decoder_start_token_id=START[kind])
        venv = TokenVecEnv(env, 4, device="cpu")
        venv.eos_token_id = -1  # every rollout runs all `horizon` steps
        venv.seed(0)
        model = PPO("TransformerPolicy", venv, n_steps=4, batch_size=16, seed=0, policy_kwargs=policy_kwargs(kind, tok))
        generate_episodes(model.policy, venv)  # warm-up
        counts[horizon] = count_syncs(model.policy, venv)
    assert counts[4] == counts[16] and sum(counts[16].values()) <= 30


def test_a_leaderboard_suite_may_name_a_seq2seq_model(tmp_path, capsys):
    """zero-shot and sft+ppo (its sft run, then PPO) records of a suite whose model is a (tiny) T5 folder."""
    from benchmarks import leaderboard
    from benchmarks.leaderboard_records import load_records
    from test_leaderboard import suite_file

    folder = save_tiny_seq2seq("t5", tmp_path / "t5")
    suite = suite_file(tmp_path, folder, methods="[zero-shot, sft+ppo]")  # sft+ppo brings its sft run
    args = ["run", "--suite", str(suite), "--records", str(tmp_path / "records"),
            "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "L.md"), "--plots", str(tmp_path / "plots")]
    assert leaderboard.main(args) == 0
    records = load_records(tmp_path / "records")
    assert sorted(r["method"] for r in records) == ["sft+ppo", "zero-shot"]
    assert all("perplexity" in r["test_metrics"] for r in records)
