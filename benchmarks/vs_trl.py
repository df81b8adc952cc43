"""One PPO iteration, textgym vs TRL, side by side on the same machine, prompts and lengths.

Systems (each in its own subprocess, one after the other, so their peak RSS is their own):

- ``textgym``: agents.PPO on a TokenVecEnv (the fast path), full fine-tuning;
- ``textgym-lora``: the same with LoRA adapters (``--lora-r``; the KL reference is the same
  weights with the adapters disabled);
- ``trl-ppo``: TRL 1.12.0 ``PPOTrainer`` (the last TRL release with PPO), run by
  ``benchmarks/vs_trl_worker.py`` with the Python of its own virtual environment (``--trl-ppo-python``);
- ``trl-grpo``: the latest TRL's ``GRPOTrainer``, 8 prompts x 2 samples (``--trl-grpo-python``).

The workload (the issue's): SmolLM2-135M-Instruct, 16 CommonGen prompts left-padded to 64 tokens,
32 new tokens at temperature 1 with no early stop (EOS does not end an episode), one epoch of one
minibatch, learning rate 1e-5, KL coefficient 0.05, the same torch threads everywhere (``--threads``,
pinned in every worker; each reports the count it ran on, and a table whose systems ran on different
counts is refused). Each system
runs ``--warmup`` untimed iterations, then ``--iterations`` timed ones; the table shows the median
seconds per iteration and the peak RSS of the whole process (``wait4`` rusage of the child); on a GPU
textgym also reports ``torch.cuda.max_memory_allocated``.
textgym also reports where an iteration's time goes, and one iteration in units of one bare
``generate`` of the same batch (same prompts, 32 sampled tokens, KV cache).

    python benchmarks/vs_trl.py --trl-ppo-python /work/venvs/trl112/bin/python \\
        --trl-grpo-python /work/venvs/trl-latest/bin/python

(see benchmarks/README.md for making the two TRL environments). ``--learning`` runs the learning race
instead (:mod:`benchmarks.learning_race`: held-out gain per episode and per CPU minute). ``--device auto`` and bf16
autocast on a GPU (``--precision auto``) make the textgym side GPU-ready; the TRL worker uses the
GPU when there is one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from textgym.argtypes import int_in
from textgym.models import default_model

HERE = Path(__file__).resolve().parent
SYSTEMS = ("textgym", "textgym-lora", "trl-ppo", "trl-grpo")


# --- the workload, shared by every system ----------------------------------------------------
def make_env(args: argparse.Namespace):
    """CommonGen train env with 64-token prompts and 32 new tokens, its samples cut to ``--batch``."""
    import gymnasium as gym

    import textgym  # noqa: F401  (registers the ids)

    env = gym.make("textgym/CommonGen-v0", split="train", data_dir=args.data_dir, tokenizer=args.model,
                   max_prompt_length=args.prompt_length, max_new_tokens=args.new_tokens, reward="bleu").unwrapped
    env.samples = env.samples[: args.batch]  # the same prompt pool for every system
    return env


def workload(args: argparse.Namespace) -> dict[str, Any]:
    """What every worker needs: model folder, the prompts as left-padded ids and as text, settings."""
    from textgym.models import resolve_model_path
    from textgym.vector import TokenVecEnv

    venv = TokenVecEnv(make_env(args), args.batch, device="cpu")
    prompts = [venv.prompt(i) for i in range(args.batch)]
    ids = [[venv.pad_token_id] * (args.prompt_length - len(p)) + p.tolist() for p, _ in prompts]
    texts = [t for _, t in prompts]
    return {"model_dir": str(resolve_model_path(args.model)), "prompt_ids": ids, "prompt_texts": texts,
            "pad_token_id": venv.pad_token_id, "batch": args.batch, "prompt_length": args.prompt_length,
            "new_tokens": args.new_tokens, "warmup": args.warmup, "iterations": args.iterations,
            "learning_rate": 1e-5, "kl_coef": 0.05, "threads": args.threads, "device": args.device,
            "lora_r": args.lora_r, "precision": args.precision, "data_dir": args.data_dir, "model": args.model}


# --- the textgym worker ---------------------------------------------------------------------
class PhaseTimer:
    """Seconds spent in named phases, by wrapping the functions that run them."""

    def __init__(self, sync: Any) -> None:
        self.seconds: dict[str, float] = {}
        self.sync = sync

    @contextmanager
    def phase(self, name: str):
        self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        """Time every call of ``owner.attr`` as phase ``name`` (skipped if the attribute does not exist)."""
        fn = getattr(owner, attr, None)
        if fn is None:
            return

        def timed(*a: Any, **k: Any) -> Any:
            with self.phase(name):
                return fn(*a, **k)

        setattr(owner, attr, timed)

    def pop(self) -> dict[str, float]:
        out, self.seconds = self.seconds, {}
        return out


def run_textgym(spec: dict[str, Any], lora: bool) -> dict[str, Any]:
    import torch

    import agents.base
    from agents import PPO
    from textgym.devices import resolve_device
    from textgym.vector import TokenVecEnv

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    device = resolve_device(spec["device"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    args = argparse.Namespace(**{k: spec[k] for k in ("data_dir", "model", "prompt_length", "new_tokens", "batch")})
    venv = TokenVecEnv(make_env(args), spec["batch"], device=device)
    venv.eos_token_id = -1  # no early stop: every episode generates new_tokens tokens, as in TRL's PPO
    venv.seed(0)
    policy_kwargs = dict(model_name=spec["model_dir"], precision=spec["precision"],
                         lora=dict(r=spec["lora_r"]) if lora else None)
    model = PPO("TransformerPolicy", venv, learning_rate=spec["learning_rate"], kl_coef=spec["kl_coef"],
                n_steps=spec["new_tokens"], batch_size=spec["batch"] * spec["new_tokens"], n_epochs=1,
                device=device, seed=0, policy_kwargs=policy_kwargs, threads=spec["threads"])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    timer = PhaseTimer(sync)
    timer.wrap(agents.base, "generate_episodes", "generation (KV cache, env, reward)")
    timer.wrap(agents.base, "reference_log_probs", "reference pass")
    # the only teacher-forced pass with gradients (old log-probs and values are recorded while sampling)
    timer.wrap(agents.base, "evaluate_episodes", "update forward")
    timer.wrap(torch.Tensor, "backward", "backward")
    timer.wrap(torch.nn.utils, "clip_grad_norm_", "clipping + optimizer")
    timer.wrap(model.policy.optimizer, "step", "clipping + optimizer")
    times, phases, tokens = [], [], []
    for i in range(spec["warmup"] + spec["iterations"]):
        sync()
        start, before = time.perf_counter(), model.num_timesteps
        model.learn(1, reset_num_timesteps=False)  # one rollout of 16 x 32 tokens + one update
        sync()
        times.append(time.perf_counter() - start)
        phases.append(timer.pop())
        tokens.append(model.num_timesteps - before)
    bare = bare_generate(model.policy, venv, spec, sync)
    timed = times[spec["warmup"]:]
    median_iteration = spec["warmup"] + timed.index(statistics.median_low(timed))
    return {"iteration_seconds": times, "bare_generate_seconds": bare, "tokens_per_iteration": tokens,
            "phases": phases[median_iteration],  # the phases of the median iteration, so they add up
            "threads": torch.get_num_threads(),
            "trainable_parameters": sum(p.numel() for p in model.policy.parameters() if p.requires_grad),
            # RSS misses GPU memory: the allocator's peak over the whole run (model, rollouts, updates)
            "cuda_peak_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


def bare_generate(policy: Any, venv: Any, spec: dict[str, Any], sync: Any) -> list[float]:
    """Seconds of ``generate`` (sampling, KV cache, no early stop) on the same batch of prompts."""
    import torch

    ids = torch.tensor(spec["prompt_ids"], device=venv.device)
    mask = (ids != spec["pad_token_id"]).long()
    out = []
    for _ in range(1 + spec["iterations"]):
        sync()
        start = time.perf_counter()
        with torch.no_grad(), policy.autocast():
            policy.lm.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, temperature=1.0,
                               max_new_tokens=spec["new_tokens"], min_new_tokens=spec["new_tokens"],
                               pad_token_id=spec["pad_token_id"])
        sync()
        out.append(time.perf_counter() - start)
    return out[1:]


# --- the parent: run each system in a subprocess, then the table ------------------------------
def run_child(cmd: list[str], threads: int) -> tuple[dict[str, Any] | None, float, str]:
    """Run one worker; returns (its RESULT json, peak RSS in GB from wait4, the output's tail)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=HERE.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    result = None
    for line in output.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    tail = "\n".join(output.splitlines()[-15:])
    return (result if proc.returncode == 0 else None), usage.ru_maxrss / 2**20, tail  # ru_maxrss: KiB


def check_same_threads(results: dict[str, dict[str, Any]], threads: int) -> None:
    """Refuse (ValueError) to compare systems that did not all run on ``threads`` torch threads."""
    counts = {name: r.get("threads") for name, r in results.items()}
    if any(n != threads for n in counts.values()):
        raise ValueError(f"refusing to compare: --threads {threads}, but the systems ran on {counts} torch threads")


def table(results: dict[str, dict[str, Any]], spec: dict[str, Any]) -> str:
    lines = [f"| system | s / iteration (median of {spec['iterations']}) | peak RSS (GB) | vs TRL PPO time "
             "| vs TRL PPO memory |", "|---|---|---|---|---|"]
    base = results.get("trl-ppo")
    for name, r in results.items():
        ratio_t = f"{r['median_s'] / base['median_s']:.2f}x" if base else "-"
        ratio_m = f"{r['peak_rss_gb'] / base['peak_rss_gb']:.2f}x" if base else "-"
        lines.append(f"| {name} | {r['median_s']:.2f} | {r['peak_rss_gb']:.2f} | {ratio_t} | {ratio_m} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--learning" in argv:  # the learning race: benchmarks/learning_race.py
        if __package__:
            from benchmarks import learning_race
        else:  # run as python benchmarks/vs_trl.py: this folder is first on sys.path
            import learning_race

        argv.remove("--learning")
        return learning_race.main(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--trl-ppo-python", help="python of the TRL 1.12.0 environment (needed for trl-ppo)")
    parser.add_argument("--trl-grpo-python", help="python of the latest-TRL environment (needed for trl-grpo)")
    parser.add_argument("--model", default=default_model(), help="default: $TEXTGYM_DEFAULT_MODEL, else smollm2-135m")
    parser.add_argument("--data-dir", default=os.environ.get("TEXTGYM_DATA_DIR"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--prompt-length", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--threads", type=int_in(1), default=1, help="torch threads of every system (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="textgym's device (TRL picks the GPU when there is one)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--out", help="also write the results as JSON here")
    parser.add_argument("--worker", choices=("textgym", "textgym-lora"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        print("RESULT " + json.dumps(run_textgym(spec, lora=args.worker == "textgym-lora")), flush=True)
        return {}
    pythons = {"trl-ppo": args.trl_ppo_python, "trl-grpo": args.trl_grpo_python}
    for name in [n for n in args.systems if n in pythons]:
        if not pythons[name] or not Path(pythons[name]).is_file():
            where = f"{pythons[name]} does not exist" if pythons[name] else f"no --{name}-python given"
            print(f"{name}: not run ({where}; make its TRL environment as benchmarks/README.md says)", flush=True)
            args.systems.remove(name)
    spec = workload(args)
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        for name in args.systems:
            if name.startswith("textgym"):
                cmd = [sys.executable, str(HERE / "vs_trl.py"), "--worker", name, "--spec", str(spec_path)]
            else:
                cmd = [pythons[name], str(HERE / "vs_trl_worker.py"), name.split("-")[1], str(spec_path)]
            print(f"running {name} ...", flush=True)
            result, peak_gb, tail = run_child(cmd, args.threads)
            if result is None:
                print(f"{name} failed:\n{tail}", flush=True)
                failed.append(name)
                continue
            timed = result["iteration_seconds"][args.warmup:]
            results[name] = {**result, "median_s": statistics.median_low(timed), "peak_rss_gb": peak_gb}
            print(f"  {name}: {results[name]['median_s']:.2f} s / iteration {['%.2f' % t for t in timed]}, "
                  f"peak RSS {peak_gb:.2f} GB", flush=True)
    check_same_threads(results, args.threads)
    report(results, spec, args)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
    return results


def report(results: dict[str, dict[str, Any]], spec: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\n{args.model}, batch {args.batch}, prompts left-padded to {args.prompt_length} tokens, "
          f"{args.new_tokens} new tokens, {args.threads} torch thread(s) in every system, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print(table(results, spec))
    for name in ("textgym", "textgym-lora"):
        r = results.get(name)
        if not r:
            continue
        bare = statistics.median(r["bare_generate_seconds"])
        print(f"\n{name}: one iteration = {r['median_s'] / bare:.2f} bare generate calls of the same batch "
              f"({bare:.2f} s); {r['trainable_parameters'] / 1e6:.2f}M trainable parameters; "
              f"{r['tokens_per_iteration'][-1]} generated tokens per iteration"
              + (f"; GPU memory peak {r['cuda_peak_gb']:.2f} GB" if r.get("cuda_peak_gb") is not None else ""))
        print("| phase (the median iteration) | s |\n|---|---|")
        for phase, seconds in r["phases"].items():
            print(f"| {phase} | {seconds:.2f} |")
        print(f"| other (logging, GAE, buffers) | {r['median_s'] - sum(r['phases'].values()):.2f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"spec": {k: v for k, v in spec.items() if k != "prompt_ids"},
                                              "results": results}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
