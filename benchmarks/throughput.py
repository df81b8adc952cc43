"""Rollout and PPO-iteration throughput, measured side by side in one process.

Measures, on the same model, batch, prompt length and generation length:

1. bare KV-cache sampling (``model.generate`` with sampling): generated tokens/s;
2. the fast path's rollout (TokenVecEnv + policy + reward): tokens/s and its ratio to (1);
3. one full PPO iteration (rollout + update): ``agents.PPO`` on a TokenVecEnv (fast path), the same
   agent on the env of ``gym.make_vec(id, num_envs=batch)`` (Gymnasium's own call: it reaches the fast
   path too), vs stock ``stable_baselines3.PPO`` with ``TransformerPolicy`` on a ``DummyVecEnv`` of TextEnvs;
4. peak memory of each phase (RSS polled on CPU; ``torch.cuda.max_memory_allocated`` on GPU).

Every phase runs on the same, pinned number of torch threads (``--threads``; default: all cores,
or ``$OMP_NUM_THREADS``); each row records the threads it ran on, and ratios between rows that
ran on different counts are refused.

Prints a table, then one JSON line. Example (the numbers in benchmarks/README.md)::

    python benchmarks/throughput.py --model smollm2-135m --batch 8 --prompt-length 64 --new-tokens 32

Encoder-decoders: ``--model t5-small-config`` / ``--model bart-base-config`` build a randomly initialised
model of t5-small's / bart-base's shape (with the tokenizer's vocabulary) and run the seq2seq layout;
bare sampling is then the model's own ``generate`` (encoder once, decoder KV cache).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import platform
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable

import numpy as np
import torch

import textgym  # noqa: F401  (registers the ids)
from textgym.argtypes import int_in
from textgym.data.base import Sample
from textgym.devices import resolve_device
from textgym.threads import default_threads, set_threads
from textgym.vector import TokenVecEnv


class PeakMemory:
    """Peak memory of a code region: CUDA allocator peak, or process RSS polled every 5 ms."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0
        self.start_bytes = 0

    def row(self) -> dict[str, float]:
        """Peak during the region, and how far it rose above the start (new allocations)."""
        return {"peak_mb": self.peak_bytes / 2**20, "added_mb": (self.peak_bytes - self.start_bytes) / 2**20}

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @contextmanager
    def measure(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_bytes = torch.cuda.memory_allocated(self.device)
            yield
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
            return
        stop = threading.Event()
        self.start_bytes = self.rss()
        peak = [self.start_bytes]

        def poll() -> None:
            while not stop.wait(0.005):
                peak[0] = max(peak[0], self.rss())

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.peak_bytes = max(peak[0], self.rss())


def synthetic_task(num_items: int, prompt_words: int) -> list[Sample]:
    """Prompts of a fixed length so every method sees the same shapes (text content is irrelevant here)."""
    words = "the quick brown fox jumps over a lazy dog near river bank in early spring light".split()
    rng = np.random.default_rng(0)
    return [Sample(f"b{i}", " ".join(rng.choice(words, size=prompt_words)), ("the dog jumps over the fox",))
            for i in range(num_items)]


# Encoder-decoder shapes (hub configs of google-t5/t5-small and facebook/bart-base), built without weights.
SEQ2SEQ_SHAPES = {
    "t5-small-config": {"model_type": "t5", "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6,
                        "num_decoder_layers": 6, "num_heads": 8, "relative_attention_num_buckets": 32},
    "bart-base-config": {"model_type": "bart", "d_model": 768, "encoder_layers": 6, "decoder_layers": 6,
                         "encoder_attention_heads": 12, "decoder_attention_heads": 12, "encoder_ffn_dim": 3072,
                         "decoder_ffn_dim": 3072, "max_position_embeddings": 1024},
}


def build(args: argparse.Namespace, device: torch.device):
    """The env template and policy kwargs for the chosen model."""
    from textgym.core import TextEnv
    from textgym.models import load_tokenizer

    configured = args.model == "config" or args.model in SEQ2SEQ_SHAPES
    tokenizer = load_tokenizer(args.tokenizer or (None if configured else args.model))
    layout: dict[str, Any] = {}
    if args.model in SEQ2SEQ_SHAPES:  # the decoder starts from pad (T5's choice; the tokenizer's pad may be EOS)
        start = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        layout = {"layout": "seq2seq", "decoder_start_token_id": start}
    env = TextEnv(synthetic_task(256, args.prompt_length), tokenizer, reward=args.reward,
                  max_prompt_length=args.prompt_length + 40, max_new_tokens=args.new_tokens, prompt_template="plain",
                  **layout)
    if args.model in SEQ2SEQ_SHAPES:
        config = {**SEQ2SEQ_SHAPES[args.model], "vocab_size": len(tokenizer), "pad_token_id": layout["decoder_start_token_id"],
                  "eos_token_id": tokenizer.eos_token_id, "decoder_start_token_id": layout["decoder_start_token_id"]}
        policy_kwargs = dict(model_name=None, model_config=config)
    elif args.model == "config":
        config = {"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": args.hidden,
                  "intermediate_size": 4 * args.hidden, "num_hidden_layers": args.layers,
                  "num_attention_heads": max(1, args.hidden // 64), "num_key_value_heads": max(1, args.hidden // 64),
                  "max_position_embeddings": 1024, "tie_word_embeddings": True}
        policy_kwargs = dict(model_name=None, model_config=config)
    else:
        policy_kwargs = dict(model_name=args.model)
    policy_kwargs.update(precision=args.precision, lora=dict(r=args.lora_r) if args.lora_r else None)
    return env, policy_kwargs


def make_vec_env_of(env: Any, args: argparse.Namespace, device: torch.device) -> Any:
    """``gym.make_vec`` of a registered id holding ``env``'s task (its samples, tokenizer, reward and lengths)."""
    import gymnasium as gym

    venv = gym.make_vec("textgym/Generation-v0", num_envs=args.batch, device=device, samples=env.samples,
                        tokenizer=env.tokenizer, reward=args.reward, max_prompt_length=env.max_prompt_length,
                        max_new_tokens=env.max_new_tokens, prompt_template="plain", instruction="{source}")
    venv.reset(seed=0)
    return venv


def timed(fn: Callable[[], Any], repeats: int, device: torch.device, warmup: bool = True) -> tuple[float, Any]:
    """Median seconds over ``repeats`` calls (after one warm-up call unless ``warmup=False``), and the last result."""
    result = fn() if warmup else None
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_bare_sampling(policy, venv: TokenVecEnv, repeats: int):
    """``generate`` of the policy's LM (sampling, KV cache) on the same prompts; returns (s, tokens)."""
    model = policy.lm
    venv.reset_all()
    ids, mask = venv.input_ids[:, : venv.prompt_length], venv.attention_mask[:, : venv.prompt_length]
    seq2seq = venv.layout.seq2seq  # generate() then returns the decoder's tokens, its start token first
    extra = {"decoder_start_token_id": venv.layout.decoder_start_token_id} if seq2seq else {}

    def run() -> int:
        with torch.no_grad(), model_autocast(policy):
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, max_new_tokens=venv.max_new_tokens,
                                 eos_token_id=venv.eos_token_id, pad_token_id=venv.pad_token_id, top_k=0, **extra)
        new = out[:, 1 if seq2seq else ids.shape[1] :]
        ended = (new == venv.eos_token_id).cumsum(-1)
        return int(((ended == 0) | ((ended == 1) & (new == venv.eos_token_id))).sum())  # tokens up to EOS

    return timed(run, repeats, venv.device)


def model_autocast(policy: Any):
    """The policy's own autocast, so bare sampling runs in the same precision as the rollout."""
    return policy.autocast()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="config",
                        help="'config' (a llama built from --hidden/--layers), 't5-small-config' or 'bart-base-config' "
                             "(an encoder-decoder of that shape, seq2seq layout), or a model name")
    parser.add_argument("--tokenizer", default=None, help="tokenizer name or folder (default: the model's, or SmolLM2's)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-length", type=int, default=64, help="prompt words (about as many tokens)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--minibatch", type=int, default=32, help="PPO batch_size (transitions per gradient step)")
    parser.add_argument("--reward", default="rougeL")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-stock", action="store_true", help="skip the (slow) stock SB3 iteration")
    parser.add_argument("--threads", type=int_in(1), default=None,
                        help="torch CPU threads for every phase (default: $OMP_NUM_THREADS, else all cores)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="auto: bf16 autocast on a GPU that supports it, fp32 elsewhere")
    parser.add_argument("--lora-r", type=int, default=0, help="LoRA rank (0: full fine-tuning)")
    args = parser.parse_args(argv)
    args.threads = set_threads(args.threads or default_threads())  # pinned, never load-based
    print(f"torch threads: {args.threads} (every phase)", flush=True)
    device = resolve_device(args.device)
    torch.manual_seed(0)

    from stable_baselines3 import PPO as StockPPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents import PPO, TransformerPolicy
    from agents.rollout import generate_episodes

    env, policy_kwargs = build(args, device)
    venv = TokenVecEnv(env, args.batch, device)
    venv.seed(0)
    fast = PPO("TransformerPolicy", venv, n_steps=args.new_tokens, batch_size=args.minibatch,
               n_epochs=1, device=device, seed=0, policy_kwargs=policy_kwargs, threads=args.threads)
    memory = PeakMemory(device)
    rows: dict[str, dict[str, float]] = {}

    with memory.measure():
        seconds, tokens = bench_bare_sampling(fast.policy, venv, args.repeats)
    rows["bare KV-cache sampling"] = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
                                      "threads": torch.get_num_threads(), **memory.row()}
    with memory.measure():
        seconds, batch = timed(lambda: generate_episodes(fast.policy, venv), args.repeats, device)
    rows["fast-path rollout (env+policy+reward)"] = {"seconds": seconds, "tokens": batch.num_steps,
                                                     "tokens_per_s": batch.num_steps / seconds,
                                                     "threads": torch.get_num_threads(), **memory.row()}

    def fast_iteration() -> int:
        before = fast.num_timesteps
        fast.learn(1, reset_num_timesteps=False)  # one rollout (>= n_steps per env) + one update
        return fast.num_timesteps - before

    with memory.measure():
        seconds, steps = timed(fast_iteration, args.repeats, device)
    rows["PPO iteration, fast path"] = {"seconds": seconds, "tokens": steps, "tokens_per_s": steps / seconds,
                                        "threads": torch.get_num_threads(), **memory.row()}
    fast.set_env(make_vec_env_of(env, args, device))  # the same task through gym.make_vec: same agent, same speed
    if not fast.uses_fast_path():
        raise RuntimeError("gym.make_vec's env did not reach the fast path")
    with memory.measure():
        seconds, steps = timed(fast_iteration, args.repeats, device)
    rows["PPO iteration, fast path (gym.make_vec)"] = {"seconds": seconds, "tokens": steps,
                                                       "tokens_per_s": steps / seconds,
                                                       "threads": torch.get_num_threads(), **memory.row()}
    if not args.skip_stock:
        stock_env = DummyVecEnv([functools.partial(copy.deepcopy, env) for _ in range(args.batch)])
        stock = StockPPO(TransformerPolicy, stock_env, n_steps=args.new_tokens,
                         batch_size=args.minibatch, n_epochs=1, learning_rate=1e-5,
                         gamma=1.0, device=device, seed=0, policy_kwargs=policy_kwargs)

        def stock_iteration() -> int:
            before = stock.num_timesteps
            stock.learn(1, reset_num_timesteps=False)
            return stock.num_timesteps - before

        set_threads(args.threads)  # stock SB3 leaves threads alone; pinned here all the same
        with memory.measure():
            # Minutes per iteration for a real model: one untimed warm-up would double the run for
            # a start-up cost that is negligible at that scale.
            seconds, steps = timed(stock_iteration, max(1, args.repeats // 3), device, warmup=False)
        rows["PPO iteration, stock SB3 (DummyVecEnv)"] = {"seconds": seconds, "tokens": steps,
                                                          "tokens_per_s": steps / seconds,
                                                          "threads": torch.get_num_threads(), **memory.row()}
    return report(args, device, rows, fast)


def check_same_threads(rows: dict[str, dict[str, float]]) -> int:
    """The one thread count every row ran on; a ValueError when they differ (their ratios would mean nothing)."""
    counts = {name: row["threads"] for name, row in rows.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"refusing to compare rows that ran on different torch thread counts: {counts}")
    return next(iter(counts.values()))


def report(args: argparse.Namespace, device: torch.device, rows: dict[str, dict[str, float]], fast: Any) -> dict:
    threads = check_same_threads(rows)
    bare = rows["bare KV-cache sampling"]["tokens_per_s"]
    rollout = rows["fast-path rollout (env+policy+reward)"]["tokens_per_s"]
    result: dict[str, Any] = {
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "model": args.model if args.model != "config" else f"llama-config h{args.hidden} l{args.layers}",
        "layout": fast.env.layout.name,
        "parameters_m": round(sum(p.numel() for p in fast.policy.lm.parameters()) / 1e6, 1),
        "batch": args.batch, "minibatch": args.minibatch, "prompt_tokens": fast.env.prompt_length, "new_tokens": args.new_tokens,
        "threads": threads, "repeats": args.repeats, "torch": torch.__version__,
        "python": platform.python_version(), "precision": "bf16" if fast.policy.uses_bf16() else "fp32",
        "lora_r": args.lora_r, "rows": rows,
        "rollout_vs_bare": rollout / bare,
        "make_vec_vs_fast_path": (rows["PPO iteration, fast path (gym.make_vec)"]["tokens_per_s"]
                                  / rows["PPO iteration, fast path"]["tokens_per_s"]),
    }
    if "PPO iteration, stock SB3 (DummyVecEnv)" in rows:
        fast_rate = rows["PPO iteration, fast path"]["tokens_per_s"]
        stock_rate = rows["PPO iteration, stock SB3 (DummyVecEnv)"]["tokens_per_s"]
        result["ppo_iteration_speedup_per_token"] = fast_rate / stock_rate
    print(f"\n{result['model']} ({result['parameters_m']}M params) on {result['device']}, batch {args.batch}, "
          f"prompt {result['prompt_tokens']} tokens, {args.new_tokens} new tokens, median of {args.repeats}, "
          f"{threads} torch thread(s)")
    print(f"{'':42} {'seconds':>9} {'tokens':>7} {'tokens/s':>10} {'peak MB':>9} {'added MB':>9}")
    for name, row in rows.items():
        print(f"{name:42} {row['seconds']:9.3f} {row['tokens']:7d} {row['tokens_per_s']:10.1f} "
              f"{row['peak_mb']:9.0f} {row['added_mb']:9.0f}")
    print(f"fast-path rollout / bare sampling: {result['rollout_vs_bare']:.2f}x")
    print(f"PPO iteration on gym.make_vec's env / on a TokenVecEnv: {result['make_vec_vs_fast_path']:.2f}x")
    if "ppo_iteration_speedup_per_token" in result:
        print(f"PPO iteration, fast vs stock (per token): {result['ppo_iteration_speedup_per_token']:.1f}x")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
