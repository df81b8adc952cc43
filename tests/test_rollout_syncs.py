"""The fast path's rollout does not stop the device per token: same samples as before, a handful of syncs per rollout."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch as th
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer, uneven_env
from torch.overrides import TorchFunctionMode
from torch.profiler import ProfilerActivity, profile

from agents import PPO
from agents.logprobs import sample_with_log_probs
from agents.rollout import EndWatch, evaluate_episodes, generate_episodes
from textgym.vector import TokenVecEnv

# Ops that make the host wait for the device: a scalar read (.item(), bool(t), int(t)) and
# boolean-mask indexing (nonzero), as the profiler names them inside C++ (multinomial's checks)...
SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero")
# ... and the Python-level reads of tensor data on the host (on a GPU each is a device-to-host copy).
HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__")


class HostReads(TorchFunctionMode):
    """Counts the tensor methods that read data on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS:  # not `.to(device)`: transformers calls it per step with the tensor's own device
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


def agent(venv, tok, **policy_kwargs) -> PPO:
    return PPO("TransformerPolicy", venv, n_steps=4, batch_size=16, seed=0, learning_rate=0.0,
               policy_kwargs=dict(model_name=None, model_config=tiny_llama_config(len(tok)), **policy_kwargs))


def count_syncs(policy, venv) -> dict[str, int]:
    """Syncs of one rollout (with an on_step hook that reads every local, as SB3's callbacks may)."""
    def on_step(step_locals):
        step_locals["new_obs"]["input_ids"]  # noqa: B018 (read it)
        return True

    reads = HostReads()
    with profile(activities=[ProfilerActivity.CPU]) as prof, reads:
        generate_episodes(policy, venv, on_step)
    ops = Counter(e.name for e in prof.events() if e.name in SYNC_OPS)
    return {**ops, **reads.counts}


@pytest.mark.parametrize("reward_mode", ["terminal", "dense"])
def test_host_syncs_per_rollout_do_not_grow_with_its_length(reward_mode):
    tok = tiny_tokenizer()
    counts = {}
    for horizon in (4, 16):
        venv = TokenVecEnv(uneven_env(tok, horizon, reward_mode), 4, device="cpu")
        venv.eos_token_id = -1  # no early end: every rollout runs all `horizon` steps
        venv.seed(0)
        model = agent(venv, tok)
        generate_episodes(model.policy, venv)  # warm-up
        counts[horizon] = count_syncs(model.policy, venv)
    print(f"{reward_mode}: host syncs per rollout of 4 and 16 tokens: {counts}")
    assert counts[4] == counts[16]  # none per token
    # A handful per rollout (x.cpu().numpy() counts twice); before: 6 scalar reads + 4 nonzero per token.
    assert sum(counts[16].values()) <= 30


def test_sampling_draws_what_categorical_draws():
    """Same tokens for the same seed as Categorical(logits).sample() (multinomial), and the same log-probs."""
    g = th.Generator().manual_seed(0)
    for seed in range(50):
        logits = 3 * th.randn(6, 40, generator=g)
        logits[:, :10] = th.finfo(th.float32).min  # top-k's mask: never drawn
        th.manual_seed(seed)
        dist = th.distributions.Categorical(logits=logits)
        expected = dist.sample()
        th.manual_seed(seed)
        actions, log_probs = sample_with_log_probs(logits)
        assert th.equal(actions, expected) and (actions >= 10).all()
        assert th.equal(log_probs, dist.log_prob(actions))


def test_a_late_end_check_keeps_the_samples_and_the_random_state():
    """A GPU reads the 'all finished' flag a few steps late; the steps it runs past the end change nothing."""
    tok = tiny_tokenizer()
    runs = {}
    for lag in (None, 3):
        venv = TokenVecEnv(tiny_env(tok, max_new_tokens=12), 1, device="cpu")  # one env: ends early often
        venv.seed(0)
        model = agent(venv, tok)
        venv.reset()
        th.manual_seed(0)
        batches = [generate_episodes(model.policy, venv, check_lag=lag) for _ in range(20)]
        runs[lag] = (batches, th.get_rng_state())
    (expected, state), (got, lagged_state) = runs[None], runs[3]
    assert th.equal(state, lagged_state)
    ended_early = 0
    for a, b in zip(expected, got):
        assert th.equal(a.tokens, b.tokens) and th.equal(a.step_mask, b.step_mask)
        assert th.equal(a.log_probs, b.log_probs) and th.equal(a.env_rewards, b.env_rewards)
        ended_early += int(a.step_mask.sum(1).max()) < 12  # the loop ran past the end
    print(f"{ended_early} of 20 rollouts ended before the horizon")
    assert ended_early >= 3  # the catch-up (steps past the end, random state set back) really ran


def test_end_watch_finds_the_first_step_at_which_all_had_finished():
    watch = EndWatch(th.device("cpu"), horizon=8, lag=2)
    flags = [False, False, True, True, True]
    stopped = None
    for t, flag in enumerate(flags):
        watch.record(t, th.tensor([flag, True]))
        if watch.ended(t):
            stopped = t
            break
    assert stopped == 4 and watch.settle(stopped) == 2


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_decode_steps_with_padded_prompts_match_the_teacher_forced_pass(attention):
    """Decode steps get a 4-D padding mask (no per-token padding check in transformers): same log-probs and values."""
    tok = tiny_tokenizer()
    venv = TokenVecEnv(uneven_env(tok, 6), 4, device="cpu")
    venv.seed(0)
    model = PPO("TransformerPolicy", venv, seed=0, policy_kwargs=dict(
        model_name=None, model_config=tiny_llama_config(len(tok), attn_implementation=attention)))
    assert model.policy.lm.config._attn_implementation == attention
    th.nn.init.normal_(model.policy.value_head.weight)
    venv.reset()
    batch = generate_episodes(model.policy, venv)
    assert len(set(batch.prompt_mask.sum(-1).tolist())) > 1  # padded prompts
    with th.no_grad():
        log_probs, values, _ = evaluate_episodes(model.policy, batch)
    mask = batch.step_mask
    th.testing.assert_close(batch.log_probs[mask], log_probs[mask], atol=2e-5, rtol=1e-4)
    th.testing.assert_close(batch.values[mask], values[mask], atol=2e-5, rtol=1e-4)


def test_callbacks_see_each_step_as_it_was():
    """on_step runs after the loop, but each call's locals are those of its step: observations, rewards, dones."""
    tok = tiny_tokenizer()
    venv = TokenVecEnv(uneven_env(tok, 5, reward_mode="dense"), 3, device="cpu")
    venv.seed(0)
    model = agent(venv, tok)
    venv.reset()
    seen = []
    batch = generate_episodes(model.policy, venv, lambda loc: seen.append(
        {k: (np.array(v["input_ids"]), np.array(v["attention_mask"])) if k == "new_obs" else v
         for k, v in loc.items()}) or True)
    ends = batch.step_mask.sum(1).numpy() - 1
    assert len(seen) == ends.max() + 1
    prompt_len = venv.prompt_length
    for t, loc in enumerate(seen):
        ids, mask = loc["new_obs"]
        generated = mask[:, prompt_len:].sum(1)
        np.testing.assert_array_equal(generated, np.minimum(t, ends) + 1)  # the rows after step t
        np.testing.assert_array_equal(ids[:, prompt_len + t][t <= ends], batch.tokens[:, t][th.as_tensor(t <= ends)])
        np.testing.assert_array_equal(loc["dones"], ends == t)
        np.testing.assert_allclose(loc["rewards"], batch.env_rewards[:, t].numpy())
        for i, info in enumerate(loc["infos"]):
            assert bool(info) == (ends[i] == t)
            if info:
                assert info["episode"]["l"] == ends[i] + 1
                assert info["episode"]["r"] == pytest.approx(float(batch.env_rewards[i].sum()), abs=1e-5)
                assert info["score"] == pytest.approx(info["episode"]["r"], abs=1e-5)  # dense rewards add up
