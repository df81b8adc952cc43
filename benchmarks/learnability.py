"""Steps to 0.9 of the optimum on the learnability tasks, over seeds, for any hyperparameters.

    python benchmarks/learnability.py [--learners ppo a2c] [--tasks target_word length_5 ...] [--seeds 0 1 2]
        [--budget-factor 3] [--defaults] [--set ppo.learning_rate=1e-4 ...]

Uses the learners, tasks and budgets of ``tests/test_learnability.py``. Each run stops when two
consecutive rollouts score 0.9 of the optimum on average, or after ``budget-factor`` times the
test's budget. ``--defaults`` starts from the ``textgym train`` defaults (``PPOConfig``,
``A2CConfig``) instead of the tests' hyperparameters; ``--set`` overrides one of them (or
``n_envs``). The ``bandit`` task runs the test's budget and reports ``J(pi) / J*`` (the
KL-regularised optimum) instead.
Prints one line per run and a table of the median and worst step counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _value(text: str):
    import yaml

    value = yaml.safe_load(text)
    try:
        return float(value) if isinstance(value, str) else value  # PyYAML reads 1e-5 (no dot) as a string
    except ValueError:
        return value


def learner_for(name: str, defaults: bool, overrides: dict):
    from learnability import Learner
    from test_learnability import LEARNERS

    from agents.config import A2CConfig, PPOConfig

    base = LEARNERS[name]
    if defaults:
        config = {"ppo": PPOConfig, "a2c": A2CConfig}[name]()
        kwargs = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    else:
        kwargs = dict(base.kwargs)
    kwargs.update({k.split(".", 1)[1]: v for k, v in overrides.items() if k.split(".", 1)[0] == name})
    n_envs = kwargs.pop("n_envs", base.n_envs)
    return Learner(base.cls, kwargs, name, n_envs, base.group_size)


def run_one(learner, task_name: str, seed: int, budget: int, frequent: str) -> tuple[float, str]:
    """(steps to 0.9, or inf; a short description) for one seed."""
    import torch as th
    from learnability import TASKS, first_token_distributions, regularized_objective, task_tokenizer, \
        tiny_policy_kwargs, train
    from test_learnability import KL_COEF

    task = TASKS[task_name]
    kwargs = tiny_policy_kwargs(model_name=frequent if task.frequent_word else None)
    if task_name == "bandit":
        coef = KL_COEF  # the test's coefficient, whatever the learner's
        result = train(learner, task, budget, seed=seed, stop_early=False, policy_kwargs=kwargs, kl_coef=coef)
        log_pi, log_ref = first_token_distributions(result.model, task)
        rewards = th.zeros(log_pi.shape[-1])
        rewards[task_tokenizer().convert_tokens_to_ids("cat")] = 1.0
        value, best = regularized_objective(log_pi, log_ref, rewards, coef)
        return value / best, f"J/J* = {value / best:.2f}"
    result = train(learner, task, budget, seed=seed, policy_kwargs=kwargs)
    tail = [round(c, 2) for c in result.curve[-3:]]
    steps = float("inf") if result.reached_at is None else result.reached_at
    return steps, f"reached at {result.reached_at} (last rollouts {tail}, final KL {result.kl[-1]:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", nargs="+", default=["ppo", "a2c"])
    parser.add_argument("--tasks", nargs="+", default=["target_word", "length_5", "avoid_frequent"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget-factor", type=float, default=3.0)
    parser.add_argument("--defaults", action="store_true", help="start from PPOConfig/A2CConfig")
    parser.add_argument("--set", nargs="*", default=[], metavar="ALGO.KEY=VALUE")
    args = parser.parse_args()
    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    import warnings

    from learnability import frequent_word_model
    from test_learnability import BUDGETS, KL_BUDGETS

    warnings.filterwarnings("ignore")
    frequent = frequent_word_model(tempfile.mkdtemp(), "good")
    rows = []
    for name in args.learners:
        learner = learner_for(name, args.defaults, overrides)
        print(f"{name}: {learner.kwargs}", flush=True)
        for task in args.tasks:
            test_budget = KL_BUDGETS.get(name, 4096) if task == "bandit" else BUDGETS[name, task]
            budget = test_budget if task == "bandit" else int(test_budget * args.budget_factor)
            results = []
            for seed in args.seeds:
                start = time.perf_counter()
                value, text = run_one(learner, task, seed, budget, frequent)
                results.append(value)
                print(f"  {name} {task} seed {seed}: {text} ({time.perf_counter() - start:.1f} s)", flush=True)
            rows.append((name, task, test_budget, budget, results))
    print("\n| learner | task | test budget | run budget | median | worst | seeds reached |")
    print("|---|---|---|---|---|---|---|")
    for name, task, test_budget, budget, results in rows:
        if task == "bandit":
            print(f"| {name} | {task} (J/J*) | {test_budget} | {budget} | {statistics.median(results):.2f} | "
                  f"{min(results):.2f} | {sum(r >= 0.9 for r in results)}/{len(results)} |")
            continue
        reached = [r for r in results if r != float("inf")]
        print(f"| {name} | {task} | {test_budget} | {budget} | {statistics.median(results):g} | {max(results):g} | "
              f"{len(reached)}/{len(results)} |")


if __name__ == "__main__":
    main()
