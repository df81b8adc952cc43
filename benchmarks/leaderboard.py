"""The textgym leaderboard: tasks x methods x seeds, one JSON record per run, rendered to markdown.

    python benchmarks/leaderboard.py run --suite quick            # run locally, one run at a time
    python benchmarks/leaderboard.py run --suite full --executor ray [--ray-address auto]
    python benchmarks/leaderboard.py render                       # LEADERBOARD.md + plots from records
    python benchmarks/leaderboard.py merge OTHER_MACHINE/records  # add records made elsewhere

Methods: ``zero-shot`` (the base model, greedy), ``sft`` (supervised warm start), the RL algorithms
``ppo``, ``a2c``, ``rloo``, ``grpo``, ``nlpo``, and ``sft+<algo>`` (the algorithm initialised from the
same seed's SFT checkpoint, e.g. ``sft+ppo``, ``sft+grpo``; SFT and the sft+ runs of one task/seed form
one job, so they run on the same worker). Every run is evaluated on the test split
with the same greedy protocol; the record holds the config and its hash, seed, git commit, package
versions, the metric signature (sacrebleu's plus the evaluation protocol), device, wall time,
rollout tokens/s, the learning curve and the test metrics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

if __package__:  # imported as benchmarks.leaderboard, or run as python -m benchmarks.leaderboard
    from benchmarks.leaderboard_records import (
        environment_facts,
        load_records,
        make_record,
        merge_records,
        metric_signature,
        relevant_config,
        write_record,
    )
    from benchmarks.leaderboard_render import render, update_readme
    from benchmarks.leaderboard_suite import Job, RunSpec, load_suite, plan, starts_from_sft
else:  # run as python benchmarks/leaderboard.py: Python puts this folder first on sys.path
    from leaderboard_records import (
        environment_facts,
        load_records,
        make_record,
        merge_records,
        metric_signature,
        relevant_config,
        write_record,
    )
    from leaderboard_render import render, update_readme
    from leaderboard_suite import Job, RunSpec, load_suite, plan, starts_from_sft

HERE = Path(__file__).resolve().parent
Record = dict[str, Any]


def execute_run(spec: RunSpec, work_dir: Path, init: str | None = None) -> tuple[Record, str | None]:
    """Run one method on one task and seed; returns its record and the final checkpoint folder."""
    import time

    from agents.config import from_dict, TrainConfig
    from agents.train import held_out_eval, run_training
    from textgym.threads import default_threads, set_threads

    config = from_dict(TrainConfig, spec.config)
    config.out = str(work_dir / spec.run_name)
    if starts_from_sft(spec.method):
        if init is None:
            raise ValueError(f"{spec.method} needs the same task and seed's sft checkpoint")
        config.init = init
    # Pinned, never load-based: a record's timings are comparable only with others on as many threads.
    config.threads = set_threads(config.threads or default_threads())
    start = time.perf_counter()
    if spec.method == "zero-shot":
        from textgym.models import load_tokenizer

        result = held_out_eval(config, config.model, load_tokenizer(config.model))  # with the quality guards
        metrics, checkpoint, train = dict(result.metrics), None, {}
    else:
        trained = run_training(config, log=lambda line: None)  # its after-eval carries the quality guards
        metrics, checkpoint = dict(trained.after or {}), str(trained.checkpoint)
        train = {"train_seconds": trained.train_seconds, "rollout_tokens_per_s": trained.rollout_tokens_per_s,
                 "stats": trained.stats, "curve": _read_curve(Path(config.out))}
    wall = time.perf_counter() - start
    record = make_record(spec, config, metrics, wall_seconds=wall, signature=metric_signature(config),
                         facts=environment_facts(config.device, config.threads), **train)
    return record, checkpoint


def _read_curve(out: Path) -> list[dict[str, Any]]:
    import json

    path = out / "curve.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def execute_job(job: Job, work_dir: str, keep_checkpoints: bool = False,
                on_record: Callable[[Record], None] | None = None) -> list[Record]:
    """Run a job's runs in order (an sft+<algo> run starts from the job's sft checkpoint); returns the records.

    ``on_record`` gets each record as soon as its run ends, so an interrupted job keeps its finished runs.
    """
    import shutil

    records, init = [], None
    root = Path(work_dir)
    for spec in job.runs:
        record, checkpoint = execute_run(spec, root, init if starts_from_sft(spec.method) else None)
        if spec.record:
            records.append(record)
            if on_record is not None:
                on_record(record)
        if spec.method == "sft":
            init = checkpoint
    if not keep_checkpoints:
        for spec in job.runs:
            shutil.rmtree(root / spec.run_name, ignore_errors=True)
    return records


def run_local(jobs: Sequence[Job], work_dir: Path, on_records: Callable[[list[Record]], None],
              keep_checkpoints: bool = False) -> None:
    """One job after another in this process; each record is passed on as soon as its run ends."""
    for k, job in enumerate(jobs, 1):
        print(f"[{k}/{len(jobs)}] {job.name}", flush=True)
        execute_job(job, str(work_dir), keep_checkpoints, on_record=lambda record: on_records([record]))


def run_ray(jobs: Sequence[Job], work_dir: Path, on_records: Callable[[list[Record]], None],
            address: str | None = None, cpus_per_run: float = 1.0, keep_checkpoints: bool = False,
            init_kwargs: dict[str, Any] | None = None) -> None:
    """Each job as a Ray task (one GPU each when the cluster has GPUs); records are written here as they finish.

    ``address=None`` starts a local Ray instance; ``"auto"`` or ``"ray://host:port"`` joins a cluster.
    """
    try:
        import ray
    except ImportError as exc:
        raise ImportError('the ray executor needs Ray: pip install "textgym[ray]" (or pip install ray)') from exc
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
             **(init_kwargs or {}))
    # The benchmark scripts are not an installed package: ship their code to the workers by value.
    for name in {Job.__module__, make_record.__module__, __name__}:
        if name != "__main__":
            ray.cloudpickle.register_pickle_by_value(sys.modules[name])
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(num_gpus=gpus, num_cpus=cpus_per_run, max_retries=0)(execute_job)
    pending = {task.remote(job, str(work_dir), keep_checkpoints): job for job in jobs}
    print(f"ray: {len(pending)} jobs on {ray.cluster_resources()}", flush=True)
    failures = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        try:
            on_records(ray.get(done[0]))
            print(f"done: {job.name}", flush=True)
        except Exception as exc:  # keep the other runs' records; report every failure at the end
            failures.append(f"{job.name}: {exc}")
    if failures:
        raise RuntimeError("some ray jobs failed:\n" + "\n".join(failures))


def run_key(suite: str, task: str, method: str, seed: int, config: dict[str, Any]) -> tuple:
    """What identifies a run across machines and parts: suite, task, method, seed and config hash."""
    from agents.config import config_hash

    return suite, task, method, seed, config_hash(relevant_config(method, config))


def pending_jobs(jobs: list[Job], records_dir: Path) -> tuple[list[Job], list[Job]]:
    """``(to run, skipped)``: a job is skipped when every run it records already has a record in ``records_dir``."""
    existing = load_records(records_dir) if records_dir.exists() else []
    done = {run_key(r["suite"], r["task"], r["method"], r["seed"], r["config"]) for r in existing}
    todo, skipped = [], []
    for job in jobs:
        wanted = [run_key(r.suite, r.task, r.method, r.seed, r.config) for r in job.runs if r.record]
        (skipped if all(key in done for key in wanted) else todo).append(job)
    return todo, skipped


def _cmd_run(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    jobs = plan(suite, tasks=args.tasks, methods=args.methods, seeds=args.seeds)
    records_dir = Path(args.records)
    if not args.rerun:
        jobs, skipped = pending_jobs(jobs, records_dir)
        for job in skipped:
            print(f"skip (records exist; --rerun to run again): {job.name}")
    work_dir = Path(args.work_dir or Path.home() / ".cache" / "textgym" / "leaderboard" / suite.name)

    def save(records: list[Record]) -> None:
        for record in records:
            print(f"  record {write_record(record, records_dir)}", flush=True)

    print(f"suite {suite.name}: {len(jobs)} jobs, {sum(len(j.runs) for j in jobs)} runs; work dir {work_dir}")
    if args.executor == "ray":
        run_ray(jobs, work_dir, save, address=args.ray_address, cpus_per_run=args.cpus_per_run,
                keep_checkpoints=args.keep_checkpoints)
    else:
        run_local(jobs, work_dir, save, keep_checkpoints=args.keep_checkpoints)
    if not args.no_render:
        render(records_dir, Path(args.out), Path(args.plots))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    path = render(Path(args.records), Path(args.out), Path(args.plots))
    print(f"wrote {path}")
    if args.readme:
        suites = update_readme(Path(args.records), Path(args.readme))
        print(f"updated the results of suite(s) {', '.join(suites)} in {args.readme}" if suites
              else f"{args.readme} has no <!-- leaderboard:SUITE --> block for these records")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    added, skipped = merge_records([Path(s) for s in args.sources], Path(args.records))
    print(f"merged {added} new record(s), skipped {skipped} already present")
    if not args.no_render:
        render(Path(args.records), Path(args.out), Path(args.plots))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--records", default=str(HERE / "records"), help="records folder (default: %(default)s)")
    common.add_argument("--out", default=str(HERE / "LEADERBOARD.md"))
    common.add_argument("--plots", default=str(HERE / "plots"))
    run = sub.add_parser("run", parents=[common], help="run a suite and write one record per run")
    run.add_argument("--suite", default="quick", help="a name in benchmarks/configs/ or a YAML path")
    run.add_argument("--executor", choices=("local", "ray"), default="local")
    run.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local instance)")
    run.add_argument("--cpus-per-run", type=float, default=1.0)
    run.add_argument("--tasks", nargs="*", help="only these env ids")
    run.add_argument("--methods", nargs="*", help="only these methods")
    run.add_argument("--seeds", nargs="*", type=int, help="only these seeds")
    run.add_argument("--work-dir", default=None, help="run folders (default: ~/.cache/textgym/leaderboard/SUITE)")
    run.add_argument("--keep-checkpoints", action="store_true")
    run.add_argument("--no-render", action="store_true")
    run.add_argument("--rerun", action="store_true", help="run again runs whose records already exist")
    run.set_defaults(func=_cmd_run)
    ren = sub.add_parser("render", parents=[common], help="LEADERBOARD.md and plots from the records")
    ren.add_argument("--readme", default=None, help="also refresh the <!-- leaderboard:SUITE --> blocks of this README")
    ren.set_defaults(func=_cmd_render)
    merge = sub.add_parser("merge", parents=[common], help="copy records from other machines in")
    merge.add_argument("sources", nargs="+", help="record files or folders")
    merge.add_argument("--no-render", action="store_true")
    merge.set_defaults(func=_cmd_merge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"leaderboard {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
