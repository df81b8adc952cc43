"""Leaderboard suites: a YAML file of tasks x methods x seeds, checked, expanded into jobs of runs.

Suite file keys (unknown keys are errors)::

    name: quick
    description: ...
    model: smollm2-135m          # base model of every method
    seeds: [0, 1]
    methods: [zero-shot, sft, ppo, a2c, rloo, grpo, nlpo, sft+ppo, sft+grpo]   # any of METHODS
    test: {split: test, n: 28, batch_size: 16}   # the evaluation protocol of every run
    train: {...}                 # agents.config.TrainConfig fields shared by every method
    method_overrides: {ppo: {...}, sft+ppo: {...}}
    method_seeds: {a2c: [0], sft+ppo: [0]}       # a method on fewer seeds than `seeds` (optional)
    tasks:
      - env: textgym/Generation-v0
        env_kwargs: {max_new_tokens: 16}         # EnvConfig fields besides the id
        train: {...}                             # per-task TrainConfig fields (optional)
        test: {split: "validation[600:]"}        # per-task evaluation protocol overrides (optional)
        method_overrides: {grpo: {total_timesteps: 16384}}   # per-task, after the suite's (optional)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
# The RL algorithms of ``textgym train --algo`` (a test checks they match ``agents.ALGORITHMS``). Each is a
# method from the base model, and ``sft+<algo>`` from the same task and seed's SFT checkpoint.
RL_METHODS = ("ppo", "a2c", "rloo", "grpo", "nlpo")
METHODS = ("zero-shot", "sft", *RL_METHODS, *(f"sft+{m}" for m in RL_METHODS))
ALGO_OF = {"zero-shot": "ppo", "sft": "sft", **{m: m for m in RL_METHODS}, **{f"sft+{m}": m for m in RL_METHODS}}


def starts_from_sft(method: str) -> bool:
    """Whether ``method`` starts from its task and seed's SFT checkpoint (``sft+ppo``, ``sft+grpo``, ...)."""
    return method.startswith("sft+")


@dataclass
class RunSpec:
    """One run: a method on a task with a seed, and its full TrainConfig as a dict."""

    suite: str
    task: str
    method: str
    seed: int
    config: dict[str, Any]
    record: bool = True  # False: a helper run (the sft start of sft+<algo> when sft was not asked for)

    @property
    def run_name(self) -> str:
        return f"{self.task.split('/')[-1]}__{self.method}__seed{self.seed}"


@dataclass
class Job:
    """Runs that execute in order on one worker (sft, then the sft+<algo> runs that start from its checkpoint)."""

    runs: list[RunSpec]

    @property
    def name(self) -> str:
        return " + ".join(r.run_name for r in self.runs)


@dataclass
class Task:
    env: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] = field(default_factory=dict)
    # A method's budget on this task: methods differ in cost per episode (a critic-free one runs no value
    # head), so an equal-time comparison can give one more episodes on one task.
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Suite:
    name: str
    tasks: list[Task]
    description: str = ""
    model: str = "smollm2-135m"
    seeds: list[int] = field(default_factory=lambda: [0])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    test: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_seeds: dict[str, list[int]] = field(default_factory=dict)


def _keys(data: Any, cls: type, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {data!r}")
    allowed = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return data


def load_suite(spec: str | Path) -> Suite:
    """A suite by name (``benchmarks/configs/<name>.yaml``) or path; every run's config is validated."""
    import yaml

    path = Path(spec)
    if not path.suffix:
        path = HERE / "configs" / f"{spec}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in (HERE / "configs").glob("*.yaml"))
        raise FileNotFoundError(f"suite {spec!r} not found (no {path}); suites: {names}")
    data = _keys(yaml.safe_load(path.read_text()) or {}, Suite, str(path))
    if "name" not in data or "tasks" not in data:
        raise ValueError(f"{path}: a suite needs 'name' and 'tasks'")
    if not isinstance(data["tasks"], list) or not data["tasks"]:
        raise ValueError(f"{path}: tasks must be a non-empty list")
    tasks = [Task(**_keys(t, Task, f"{path}: tasks[{i}]")) for i, t in enumerate(data.pop("tasks"))]
    suite = Suite(tasks=tasks, **data)
    overrides = {"method_overrides": suite.method_overrides,
                 **{f"tasks[{i}].method_overrides": t.method_overrides for i, t in enumerate(tasks)}}
    for where, value in overrides.items():
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ValueError(f"{path}: {where} must map methods to mappings of config keys, got {value!r}")
    bad = sorted(set(suite.methods) - set(METHODS)) + sorted(set(suite.method_seeds) - set(METHODS))
    bad += sorted({m for value in overrides.values() for m in value} - set(METHODS))
    for method, seeds in suite.method_seeds.items():
        if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ValueError(f"{path}: method_seeds.{method} must be a list of integer seeds, got {seeds!r}")
    if bad:
        raise ValueError(f"{path}: unknown method(s) {bad}; methods: {list(METHODS)}")
    plan(suite)  # builds every TrainConfig: unknown or mistyped keys fail now, not an hour in
    return suite


def run_config(suite: Suite, task: Task, method: str, seed: int) -> dict[str, Any]:
    """The TrainConfig (as a checked dict) of one run."""
    from agents.config import TrainConfig, from_dict, merge, to_dict

    test = {"split": "test", "n": None, "batch_size": 16, **suite.test, **task.test}
    data = merge(suite.train, task.train)
    data = merge(data, suite.method_overrides.get(method, {}))
    data = merge(data, task.method_overrides.get(method, {}))
    data = merge(data, {"env": {"id": task.env, **task.env_kwargs}, "model": suite.model, "seed": seed,
                        "algo": ALGO_OF[method], "progress_bar": False,
                        "eval": {**test, "before": False, "after": method != "zero-shot", "show": 0},
                        "checkpoint": {"every": 0, "save_agent": False}})
    try:
        return to_dict(from_dict(TrainConfig, data))
    except ValueError as exc:
        raise ValueError(f"suite {suite.name}, task {task.env}, method {method}: {exc}") from exc


def plan(suite: Suite, tasks: Sequence[str] | None = None, methods: Sequence[str] | None = None,
         seeds: Sequence[int] | None = None) -> list[Job]:
    """Expand a suite into jobs; each ``sft+<algo>`` joins its task/seed's ``sft`` run (added if filtered out)."""
    chosen = [m for m in suite.methods if not methods or m in methods]
    if methods and set(methods) - set(suite.methods):
        raise ValueError(f"methods {sorted(set(methods) - set(suite.methods))} are not in suite {suite.name}")
    known = [t.env for t in suite.tasks]
    if tasks and set(tasks) - set(known):
        raise ValueError(f"tasks {sorted(set(tasks) - set(known))} are not in suite {suite.name}: {known}")
    jobs = []
    for task in suite.tasks:
        if tasks and task.env not in tasks:
            continue
        for seed in suite.seeds if not seeds else [s for s in suite.seeds if s in seeds]:
            here = [m for m in chosen if seed in suite.method_seeds.get(m, [seed])]
            from_sft = [m for m in METHODS if m in here and starts_from_sft(m)]
            spec = {m: RunSpec(suite.name, task.env, m, seed, run_config(suite, task, m, seed)) for m in METHODS
                    if m in here or (m == "sft" and from_sft)}
            for m in ("zero-shot", *RL_METHODS):
                if m in here:
                    jobs.append(Job([spec[m]]))
            if from_sft:
                spec["sft"].record = "sft" in here
                if not spec["sft"].record:  # only its checkpoint is used: its held-out evaluation would be wasted
                    spec["sft"].config["eval"]["after"] = False
                jobs.append(Job([spec["sft"], *(spec[m] for m in from_sft)]))
            elif "sft" in here:
                jobs.append(Job([spec["sft"]]))
    return jobs
