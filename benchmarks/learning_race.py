"""The learning race of ``benchmarks/vs_trl.py --learning``: how much held-out text each system improves.

Five systems learn the same task under the same conditions, each in its own subprocess:

- ``textgym-ppo``: agents.PPO with the cpu suite's IMDB-v0 settings (dense reward, 2 epochs, minibatch 64);
- ``textgym-rloo``: agents.RLOO, groups of 4, normalised advantages (textgym's best critic-free algorithm
  on the dev slice that kept perplexity in bounds; GRPO scored higher at 1.75x perplexity);
- ``textgym-grpo``: agents.GRPO in TRL GRPO's recipe, groups of 4, one epoch of one minibatch per
  16-episode rollout (one Adam step per 16 episodes), the KL as a loss term;
- ``trl-ppo``: TRL 1.12.0's ``PPOTrainer`` (``benchmarks/vs_trl_worker.py ppo-learn``);
- ``trl-grpo``: the latest TRL's ``GRPOTrainer``, groups of 4 (``vs_trl_worker.py grpo-learn``).

Shared by all: SmolLM2-135M-Instruct with LoRA adapters (r=16, alpha=32, q_proj and v_proj) at one learning
rate; the same pool of IMDB-v0 training prompts (the first ``--prompts`` of ``train[:90%]``); 16 new tokens
with no early stop; the packaged ``sentiment`` scorer as the reward (handed to TRL as a function); the same
number of sampled episodes, the same KL coefficient, the same torch threads. Each trained model is then
evaluated identically, greedy, on held-out reviews (``train[90%:]``, never trained on) with
:func:`textgym.evaluation.evaluate`: sentiment, perplexity under the untouched model, distinct-2, repetition.

The report gives each system's held-out gain over zero-shot per 1,000 episodes and per CPU minute of
training, and writes a JSON file and a plot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from textgym.argtypes import int_in

HERE = Path(__file__).resolve().parent
SYSTEMS = ("textgym-ppo", "textgym-rloo", "textgym-grpo", "trl-ppo", "trl-grpo")
ENV_ID = "textgym/IMDB-v0"
METRICS = ("sentiment", "perplexity", "distinct_2", "repetition", "mean_tokens")


def make_env(spec: dict[str, Any], group_size: int = 1):
    """The IMDB-v0 training env, its samples cut to the shared prompt pool."""
    import gymnasium as gym

    import textgym  # noqa: F401  (registers the ids)

    env = gym.make(ENV_ID, split="train[:90%]", data_dir=spec["data_dir"], tokenizer=spec["model_dir"],
                   max_new_tokens=spec["new_tokens"], reward="sentiment", reward_mode="dense",
                   group_size=group_size).unwrapped
    env.samples = env.samples[: spec["prompts"]]
    return env


def workload(args: argparse.Namespace) -> dict[str, Any]:
    """Everything a worker needs: model folder, the prompt pool (left-padded ids and text), settings."""
    from textgym.models import resolve_model_path
    from textgym.vector import TokenVecEnv

    spec = {"model_dir": str(resolve_model_path(args.model)), "model": args.model, "data_dir": args.data_dir,
            "prompts": args.prompts, "episodes": args.episodes, "new_tokens": 16, "num_envs": 16, "group_size": 4,
            "learning_rate": args.learning_rate, "kl_coef": args.kl_coef, "lora_r": 16, "lora_alpha": 32,
            "lora_targets": ["q_proj", "v_proj"], "ppo_epochs": 2, "ppo_minibatch_episodes": 4,
            "threads": args.threads, "seed": args.seed, "repo": str(HERE.parent)}
    venv = TokenVecEnv(make_env(spec), 1, device="cpu")
    prompts = [venv.prompt(i) for i in range(len(venv.env.samples))]
    width = max(len(ids) for ids, _ in prompts)
    spec.update(pad_token_id=venv.pad_token_id, prompt_texts=[text for _, text in prompts],
                prompt_ids=[[venv.pad_token_id] * (width - len(ids)) + ids.tolist() for ids, _ in prompts])
    return spec


# --- the textgym workers ----------------------------------------------------------------------
def run_textgym(spec: dict[str, Any], algo: str, out: Path) -> dict[str, Any]:
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from agents import GRPO, PPO, RLOO
    from textgym.vector import TokenVecEnv

    class SampledReward(BaseCallback):
        """Mean sampled score of each rollout (the training curve)."""

        def __init__(self) -> None:
            super().__init__()
            self.curve: list[list[float]] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            recent = list(self.model.ep_info_buffer)[-spec["num_envs"]:]
            if recent:
                self.curve.append([self.model.num_timesteps / spec["new_tokens"],
                                   sum(e["r"] for e in recent) / len(recent)])

    torch.manual_seed(spec["seed"])
    venv = TokenVecEnv(make_env(spec, 1 if algo == "ppo" else spec["group_size"]), spec["num_envs"], device="cpu")
    venv.eos_token_id = -1  # no early stop: every episode has new_tokens tokens, as in the TRL runs
    lora = dict(r=spec["lora_r"], alpha=spec["lora_alpha"], target_modules=spec["lora_targets"])
    common = dict(learning_rate=spec["learning_rate"], kl_coef=spec["kl_coef"], n_steps=spec["new_tokens"],
                  seed=spec["seed"], threads=spec["threads"], device="cpu",
                  policy_kwargs=dict(model_name=spec["model_dir"], lora=lora))
    if algo == "ppo":
        model = PPO("TransformerPolicy", venv, n_epochs=spec["ppo_epochs"],
                    batch_size=spec["ppo_minibatch_episodes"] * spec["new_tokens"], **common)
    elif algo == "grpo":
        model = GRPO("TransformerPolicy", venv, group_size=spec["group_size"], n_epochs=1,
                     batch_size=spec["num_envs"] * spec["new_tokens"], **common)
    else:
        model = RLOO("TransformerPolicy", venv, group_size=spec["group_size"], normalize_advantage=True, **common)
    curve = SampledReward()
    start = time.perf_counter()
    model.learn(spec["episodes"] * spec["new_tokens"], callback=curve)
    seconds = time.perf_counter() - start
    save_model(model.policy.export_lm(), venv.env.tokenizer, out)
    return {"train_seconds": seconds, "episodes": model.num_timesteps // spec["new_tokens"],
            "threads": torch.get_num_threads(), "curve": curve.curve}


def save_model(lm: Any, tokenizer: Any, out: Path) -> None:
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)


# --- the parent -------------------------------------------------------------------------------
def run_child(cmd: list[str], threads: int, log_path: Path) -> dict[str, Any] | None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false"}
    with open(log_path, "w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=HERE.parent).returncode
    lines = log_path.read_text().splitlines()
    results = [json.loads(line[len("RESULT "):]) for line in lines if line.startswith("RESULT ")]
    if code != 0 or not results:
        print(f"{cmd[2] if len(cmd) > 2 else cmd}: failed (exit {code}):\n" + "\n".join(lines[-15:]), flush=True)
        return None
    return results[-1]


def evaluate_folder(model: str, spec: dict[str, Any], n: int) -> dict[str, float]:
    from textgym.evaluation import evaluate

    result = evaluate(ENV_ID, model, split="train[90%:]", n=n, batch_size=20, progress=False,
                              base_model=spec["model_dir"], data_dir=spec["data_dir"],
                              max_new_tokens=spec["new_tokens"], reward="sentiment")
    return {k: float(result.metrics[k]) for k in METRICS}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from textgym.models import default_model

    parser = argparse.ArgumentParser(prog="vs_trl.py --learning", description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--trl-ppo-python", help="python of the TRL 1.12.0 environment (needed for trl-ppo)")
    parser.add_argument("--trl-grpo-python", help="python of the latest-TRL environment (needed for trl-grpo)")
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", default=os.environ.get("TEXTGYM_DATA_DIR"))
    parser.add_argument("--episodes", type=int_in(16), default=256, help="sampled episodes per system")
    parser.add_argument("--prompts", type=int_in(16), default=256,
                        help="size of the shared training prompt pool (at least one batch of 16)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="of the LoRA adapters, every system")
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--eval-n", type=int_in(1), default=100, help="held-out reviews (train[90%%:])")
    parser.add_argument("--threads", type=int_in(1), default=1, help="torch threads of every system")
    parser.add_argument("--jobs", type=int_in(1), default=1, help="systems trained at once (each on --threads)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="learning-race", help="folder for models, logs, results and the plot")
    parser.add_argument("--worker", choices=("ppo", "rloo", "grpo"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        result = run_textgym(spec, args.worker, Path(args.out))
        print("RESULT " + json.dumps(result), flush=True)
        return result
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pythons = {"trl-ppo": args.trl_ppo_python, "trl-grpo": args.trl_grpo_python}
    systems = []
    for name in args.systems:
        if name in pythons and not (pythons[name] and Path(pythons[name]).is_file()):
            print(f"{name}: not run (no TRL python at {pythons[name]!r}; see benchmarks/README.md)", flush=True)
        else:
            systems.append(name)
    spec = workload(args)
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec))

    def train(name: str) -> tuple[str, dict[str, Any] | None]:
        algo = name.split("-")[1]
        if name.startswith("textgym"):
            cmd = [sys.executable, str(HERE / "vs_trl.py"), "--learning", "--worker", algo, "--spec", str(spec_path),
                   "--out", str(out / name)]
        else:
            cmd = [pythons[name], str(HERE / "vs_trl_worker.py"), f"{algo}-learn", str(spec_path), str(out / name)]
        print(f"training {name} ...", flush=True)
        result = run_child(cmd, args.threads, out / f"{name}.log")
        if result is not None:
            print(f"  {name}: {result['episodes']} episodes in {result['train_seconds']:.0f} s", flush=True)
        return name, result

    with ThreadPoolExecutor(args.jobs) as pool:
        trained = dict(pool.map(train, systems))
    refused = {n: r["threads"] for n, r in trained.items() if r and r["threads"] != args.threads}
    if refused:
        raise SystemExit(f"refusing to compare: --threads {args.threads}, but {refused} ran on other counts")
    print("evaluating ...", flush=True)
    rows = {"zero-shot": {"metrics": evaluate_folder(spec["model_dir"], spec, args.eval_n)}}
    for name, result in trained.items():
        if result is not None:
            rows[name] = {**result, "metrics": evaluate_folder(str(out / name), spec, args.eval_n)}
    report = {"spec": {k: v for k, v in spec.items() if k not in ("prompt_ids", "prompt_texts")},
              "jobs": args.jobs, "eval_n": args.eval_n, "rows": rows}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    print(table(rows))
    plot(rows, out / "learning_race.png")
    failed = [n for n, r in trained.items() if r is None]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
    return report


def table(rows: dict[str, dict[str, Any]]) -> str:
    base = rows["zero-shot"]["metrics"]
    lines = ["| system | episodes | train s | sentiment | gain | gain / 1k episodes | gain / CPU min | perplexity "
             "| distinct-2 | repetition |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        m = row["metrics"]
        gain = m["sentiment"] - base["sentiment"]
        trained = "train_seconds" in row
        per_k = f"{gain / row['episodes'] * 1000:+.3f}" if trained else "-"
        per_min = f"{gain / (row['train_seconds'] / 60):+.4f}" if trained else "-"
        lines.append(f"| {name} | {row.get('episodes', 0)} | {row['train_seconds']:.0f} | " if trained else
                     f"| {name} | 0 | - | ")
        lines[-1] += (f"{m['sentiment']:.3f} | {gain:+.3f} | {per_k} | {per_min} | {m['perplexity']:.2f} "
                      f"| {m['distinct_2']:.3f} | {m['repetition']:.3f} |")
    return "\n".join(lines)


def plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    """Left: each system's sampled training score per 1k episodes; right: held-out gain per CPU minute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = rows["zero-shot"]["metrics"]["sentiment"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [n for n in rows if "train_seconds" in rows[n]]
    for name in names:
        curve = rows[name].get("curve") or []
        if curve:
            left.plot([e for e, _ in curve], [s for _, s in curve], marker=".", label=name)
    left.set(xlabel="sampled episodes", ylabel="mean sampled sentiment", title="training reward")
    left.legend()
    gains = [(rows[n]["metrics"]["sentiment"] - base) / (rows[n]["train_seconds"] / 60) for n in names]
    right.bar(names, gains)
    right.set(ylabel="held-out sentiment gain / CPU minute", title="held-out gain per CPU minute")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
