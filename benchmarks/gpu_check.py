"""One script that checks textgym on a GPU in a few minutes and writes one JSON report.

Checks, in order (each one ``pass``, ``fail`` or ``skipped`` with the reason):

1. ``tests``: the tests marked for the GPU (``pytest -m gpu tests/test_gpu.py``: fp32 master
   weights under native bf16, host syncs per rollout independent of its length, reproducible
   samples, the PPO ratio at 1 at learning rate 0);
2. ``syncs``: synchronizing calls of one rollout at two lengths (CUDA's sync debug mode; on the
   CPU the profiler's scalar reads and nonzero calls), which must not grow with the length;
3. ``ratio``: the largest ``|ratio - 1|`` of a PPO update at learning rate 0, with the old
   log-probs recomputed in a teacher-forced pass and as sampled;
4. ``throughput``: the fast-path rollout against bare ``generate`` at 64 and 256 envs (tokens/s,
   ``torch.cuda.max_memory_allocated``);
5. ``learning``: a short PPO run of a tiny model on a reward with a known optimum (saying "good"),
   which must raise the mean episode reward.

On a GPU::

    python benchmarks/gpu_check.py --out gpu_report.json            # SmolLM2-135M for the throughput
    python benchmarks/gpu_check.py --tiny --out gpu_report.json     # a tiny model throughout (faster)

``--device cpu`` runs everything on the CPU with a tiny model (under two minutes); the GPU tests
are then skipped, with the reason in the report. The exit status is 1 when a check failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import textgym  # noqa: F401  (registers the ids)
from textgym.core import TextEnv
from textgym.data.base import Sample
from textgym.devices import resolve_device, supports_bf16
from textgym.vector import TokenVecEnv

try:  # run as a script (python benchmarks/gpu_check.py) or as a module (python -m benchmarks.gpu_check)
    from throughput import PeakMemory, bench_bare_sampling, synthetic_task, timed
except ImportError:  # pragma: no cover
    from benchmarks.throughput import PeakMemory, bench_bare_sampling, synthetic_task, timed

REPO = Path(__file__).resolve().parents[1]
WORDS = "good bad cat dog sun rain the quick brown fox jumps over a lazy dog near river bank in early spring light"


def tiny_tokenizer():
    """A word-level tokenizer over a few words (no downloads)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", ":", "say", *dict.fromkeys(WORDS.split())])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def tiny_config(vocab_size: int, hidden: int = 64) -> dict[str, Any]:
    return {"model_type": "llama", "vocab_size": vocab_size, "hidden_size": hidden, "intermediate_size": 2 * hidden,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 256, "tie_word_embeddings": True}


def good_env(tokenizer, max_new_tokens: int = 4, uneven: bool = False) -> TextEnv:
    """ROUGE-1 against "good good good good": the optimum is known (say "good"), and easy to learn."""
    sources = (["say good", "say bad cat", "say sun rain dog", "say the quick brown fox"] if uneven
               else ["say good", "say bad", "say cat", "say dog"])
    return TextEnv([Sample(f"s{i}", s, ("good good good good",)) for i, s in enumerate(sources)], tokenizer,
                   max_prompt_length=10, max_new_tokens=max_new_tokens, prompt_template="{source} :", reward="rouge1")


def tiny_ppo(venv: TokenVecEnv, tokenizer, device: torch.device, **kwargs: Any):
    from agents import PPO

    policy_kwargs = dict(model_name=None, model_config=tiny_config(len(tokenizer)), **kwargs.pop("policy_kwargs", {}))
    return PPO("TransformerPolicy", venv, device=device, seed=0, policy_kwargs=policy_kwargs, **kwargs)


# --- the checks ----------------------------------------------------------------------------------
def check_tests(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    """``pytest -m gpu``: on a machine without CUDA every test skips, and the skip reasons are reported."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-s", "-m", "gpu", "-p", "no:cacheprovider",
           str(REPO / "tests" / "test_gpu.py")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=args.test_timeout)
    lines = proc.stdout.splitlines()
    summary = next((line for line in reversed(lines) if " in " in line and ("passed" in line or "skipped" in line
                                                                            or "failed" in line)), "")
    skips = sorted({line.split(": ", 1)[-1] for line in lines if line.startswith("SKIPPED")})
    result = {"command": " ".join(cmd[1:]), "summary": summary, "output_tail": "\n".join(lines[-25:])}
    if proc.returncode == 0 and "passed" in summary:
        return {"status": "pass", **result}
    if proc.returncode in (0, 5) and "skipped" in summary and "passed" not in summary:
        return {"status": "skipped", "reason": "; ".join(skips) or summary, **result}
    return {"status": "fail", "returncode": proc.returncode, **result}


def rollout_syncs(policy, venv: TokenVecEnv, device: torch.device) -> int:
    """Synchronizing calls of one rollout (with a callback hook, as in ``learn``)."""
    from agents.rollout import generate_episodes

    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                generate_episodes(policy, venv, lambda loc: True)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        generate_episodes(policy, venv, lambda loc: True)
    return sum(e.name in ("aten::_local_scalar_dense", "aten::nonzero") for e in prof.events())


def check_syncs(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    from agents.rollout import generate_episodes

    tok, counts = tiny_tokenizer(), {}
    for horizon in (8, 32):
        venv = TokenVecEnv(good_env(tok, horizon, uneven=True), 64, device=device)
        venv.eos_token_id = -1  # every rollout runs all `horizon` steps
        model = tiny_ppo(venv, tok, device)
        generate_episodes(model.policy, venv)  # warm-up
        counts[horizon] = rollout_syncs(model.policy, venv, device)
    how = "CUDA sync debug mode warnings" if device.type == "cuda" else "profiler: _local_scalar_dense + nonzero"
    ok = counts[8] == counts[32]
    return {"status": "pass" if ok else "fail", "counted": how, "envs": 64,
            "syncs_per_rollout": {f"{h} tokens": c for h, c in counts.items()}}


def check_ratio(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    from agents.rollout import evaluate_episodes

    tok = tiny_tokenizer()
    precision = "auto" if device.type == "cuda" else "bf16"  # the CPU opts in to exercise the bf16 path
    worst: dict[str, float] = {}
    for recompute in (True, False):
        venv = TokenVecEnv(good_env(tok, 8, uneven=True), 16, device=device)
        venv.seed(0)
        model = tiny_ppo(venv, tok, device, n_steps=8, batch_size=24, n_epochs=1, learning_rate=0.0,
                         policy_kwargs=dict(precision=precision, recompute_log_probs=recompute))
        for p in model.policy.lm.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.1)  # larger activations: rounding shows
        model.learn(8)
        with torch.no_grad():
            deviations = [((evaluate_episodes(model.policy, b)[0] - b.log_probs).exp() - 1).abs()[b.step_mask].max()
                          for b in model.rollout_buffer.get(24)]
        worst["recomputed" if recompute else "as sampled"] = float(max(deviations))
        bf16 = model.policy.uses_bf16()
    ok = worst["recomputed"] < 1e-3 and (bf16 or worst["as sampled"] < 1e-3)
    return {"status": "pass" if ok else "fail", "bf16": bf16, "max_abs_ratio_minus_1": worst,
            "note": "the default recomputes under bf16 and keeps the sampled log-probs in fp32"}


def throughput_row(policy, venv: TokenVecEnv, device: torch.device, repeats: int) -> dict[str, Any]:
    from agents.rollout import generate_episodes

    memory = PeakMemory(device)
    with memory.measure():
        bare_s, bare_tokens = bench_bare_sampling(policy, venv, repeats)
    bare_mb = memory.row()["peak_mb"]
    with memory.measure():
        rollout_s, batch = timed(lambda: generate_episodes(policy, venv), repeats, device)
    row = {"bare_generate_tokens_per_s": bare_tokens / bare_s, "rollout_tokens_per_s": batch.num_steps / rollout_s,
           "bare_peak_mb": bare_mb, "rollout_peak_mb": memory.row()["peak_mb"],
           "memory": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "process RSS"}
    row["rollout_vs_bare"] = row["rollout_tokens_per_s"] / row["bare_generate_tokens_per_s"]
    return row


def check_throughput(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    from agents import PPO
    from textgym.models import load_tokenizer

    fallback = None
    if not args.tiny:
        try:
            tokenizer, policy_kwargs, name = load_tokenizer(args.model), dict(model_name=args.model), args.model
        except (OSError, ValueError) as exc:  # e.g. offline without the model: measure the tiny one, and say so
            fallback = f"{args.model} could not be loaded ({exc}); measured the tiny model"
    if args.tiny or fallback:
        tokenizer, name = tiny_tokenizer(), "tiny llama (h64, 2 layers)"
        policy_kwargs = dict(model_name=None, model_config=tiny_config(len(tokenizer)))
    env = TextEnv(synthetic_task(256, args.prompt_length), tokenizer, reward="rougeL", prompt_template="plain",
                  max_prompt_length=args.prompt_length + 40, max_new_tokens=args.new_tokens)
    rows = {}
    for n in args.envs:
        venv = TokenVecEnv(env, n, device=device)
        venv.seed(0)
        model = PPO("TransformerPolicy", venv, device=device, seed=0, policy_kwargs=policy_kwargs)
        rows[f"{n} envs"] = throughput_row(model.policy, venv, device, args.repeats)
        del model, venv
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"status": "pass", "model": name, "prompt_words": args.prompt_length, "new_tokens": args.new_tokens,
            "repeats": args.repeats, "precision": "bf16" if supports_bf16(device) else "fp32", "rows": rows,
            **({"fallback": fallback} if fallback else {})}


def check_learning(device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    tok = tiny_tokenizer()
    venv = TokenVecEnv(good_env(tok), 16, device=device)
    venv.seed(0)
    model = tiny_ppo(venv, tok, device, n_steps=16, batch_size=64, n_epochs=4, learning_rate=3e-3, kl_coef=0.0)
    model.learn(256)
    first = float(np.mean([e["r"] for e in model.ep_info_buffer]))
    model.learn(args.learn_steps, reset_num_timesteps=False)
    last = float(np.mean([e["r"] for e in list(model.ep_info_buffer)[-32:]]))
    ok = last > first + 0.3
    return {"status": "pass" if ok else "fail", "task": 'ROUGE-1 against "good good good good" (optimum 1.0)',
            "timesteps": model.num_timesteps, "first_mean_reward": first, "last_mean_reward": last,
            "must": "last > first + 0.3"}


CHECKS: dict[str, Callable[[torch.device, argparse.Namespace], dict[str, Any]]] = {
    "tests": check_tests, "syncs": check_syncs, "ratio": check_ratio, "throughput": check_throughput,
    "learning": check_learning}


def environment(device: torch.device) -> dict[str, Any]:
    import transformers

    info = {"device": str(device), "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "native_bf16": supports_bf16(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, capability=f"{props.major}.{props.minor}", memory_gb=props.total_memory / 2**30)
    return info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when there is one), 'cuda', 'cpu', ...")
    parser.add_argument("--out", default="gpu_report.json", help="where the JSON report goes")
    parser.add_argument("--model", default="smollm2-135m", help="model of the throughput check (GPU)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model throughout (the default on the CPU)")
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--prompt-length", type=int, default=64, help="prompt words of the throughput check")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--learn-steps", type=int, default=3000, help="timesteps of the learning check")
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), help="run only these checks")
    parser.add_argument("--test-timeout", type=int, default=600)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    args.tiny = args.tiny or device.type != "cuda"
    report: dict[str, Any] = {"environment": environment(device), "checks": {}}
    print(json.dumps(report["environment"]), flush=True)
    for name in args.only or list(CHECKS):
        start = time.perf_counter()
        try:
            result = CHECKS[name](device, args)
        except Exception as exc:  # one broken check must not hide the others' results
            result = {"status": "fail", "error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.perf_counter() - start, 1)
        report["checks"][name] = result
        print(f"{name}: {result['status']} ({result['seconds']} s) "
              f"{json.dumps({k: v for k, v in result.items() if k not in ('status', 'seconds', 'output_tail')})}",
              flush=True)
    failed = [n for n, r in report["checks"].items() if r["status"] == "fail"]
    report["summary"] = {"failed": failed, "passed": [n for n, r in report["checks"].items() if r["status"] == "pass"],
                         "skipped": {n: r["reason"] for n, r in report["checks"].items() if r["status"] == "skipped"}}
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"report: {args.out}; failed: {failed or 'none'}", flush=True)
    return report


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:])["summary"]["failed"] else 0)
