"""Leaderboard records: one JSON file per run, with everything needed to trust and compare it."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any

RECORD_VERSION = 1
REQUIRED = ("record_version", "run_id", "suite", "task", "method", "seed", "config", "config_hash",
            "metric_signature", "test_metrics")
PACKAGES = ("textgym", "torch", "transformers", "stable-baselines3", "gymnasium", "sacrebleu", "rouge-score", "numpy")
REPO = Path(__file__).resolve().parents[1]


def git_commit() -> dict[str, Any]:
    """The repository's HEAD commit and whether tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None,
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def device_name(device: str, threads: int) -> str:
    """``"cuda: NVIDIA H100 ..."`` or ``"cpu: <model> (N threads of M cores)"``."""
    import torch

    from textgym.devices import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(torch.device(resolved))}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {model} ({threads} threads of {os.cpu_count()} cores)"


def environment_facts(device: str, threads: int) -> dict[str, Any]:
    return {"git": git_commit(), "packages": package_versions(), "device": device_name(device, threads),
            "threads": threads, "host": hashlib.sha256(platform.node().encode()).hexdigest()[:8],
            "python": platform.python_version()}


def record_threads(record: dict[str, Any]) -> int | None:
    """The torch threads a run used: its ``threads``, else (older records) read from its device name.

    >>> record_threads({"device": "cpu: AMD EPYC (2 threads of 2 cores)"}), record_threads({"threads": 4})
    (2, 4)
    """
    if record.get("threads") is not None:
        return int(record["threads"])
    found = re.search(r"\((\d+) threads of \d+ cores\)", str(record.get("device", "")))
    return int(found.group(1)) if found else None


def metric_signature(config: Any) -> str:
    """What makes two runs' test metrics comparable: metric implementations and the evaluation protocol.

    sacrebleu's signature (from the env's metadata), the rouge-score version, and split, number of
    items, ``max_new_tokens`` and decoding. Records whose signature differs are shown apart.
    """
    import gymnasium as gym

    from agents.train import env_kwargs
    from textgym.models import load_tokenizer

    env = gym.make(config.env.id, split=config.eval.split, tokenizer=load_tokenizer(config.init or config.model),
                   metrics=["bleu", "rougeL"], **env_kwargs(config)).unwrapped
    parts = [f"{k[len('signature_'):]}={v}" for k, v in sorted(env.metadata.items()) if k.startswith("signature_")]
    parts.append(f"rouge=rouge-score:{package_versions()['rouge-score']}")
    n = len(env.samples) if config.eval.n is None else min(config.eval.n, len(env.samples))
    parts.append(f"eval={config.eval.split}:{n}|max_new_tokens:{env.max_new_tokens}|greedy")
    return " ; ".join(parts)


def make_record(spec: Any, config: Any, metrics: dict[str, float], *, wall_seconds: float, signature: str,
                facts: dict[str, Any], train_seconds: float | None = None,
                rollout_tokens_per_s: float | None = None, stats: dict[str, Any] | None = None,
                curve: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A complete record for one run (``config`` is the run's TrainConfig)."""
    from agents.config import config_hash, to_dict

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config_dict = relevant_config(spec.method, to_dict(config))
    key = json.dumps([spec.suite, spec.task, spec.method, spec.seed, config_hash(config_dict), facts["host"], created,
                      time.time_ns()])
    return {"record_version": RECORD_VERSION, "run_id": hashlib.sha256(key.encode()).hexdigest()[:16],
            "suite": spec.suite, "task": spec.task, "method": spec.method, "seed": spec.seed,
            "config": config_dict, "config_hash": config_hash(config_dict), "metric_signature": signature,
            "test_metrics": metrics, "wall_seconds": wall_seconds, "train_seconds": train_seconds,
            "rollout_tokens_per_s": rollout_tokens_per_s, "stats": stats or {}, "curve": curve or [],
            "created": created, **facts}


# Config sections a method does not read; left out of its record and hash, so that changing, say, the
# PPO defaults does not split the zero-shot or SFT rows.
_ALGO_SECTIONS = ("ppo", "a2c", "rloo", "grpo", "nlpo")
UNUSED = {"zero-shot": (*_ALGO_SECTIONS, "sft", "policy", "total_timesteps", "num_envs", "checkpoint"),
          "sft": (*_ALGO_SECTIONS, "policy", "total_timesteps", "num_envs"),
          **{m: (*(a for a in _ALGO_SECTIONS if a != m), "sft") for m in _ALGO_SECTIONS},
          **{f"sft+{m}": tuple(a for a in _ALGO_SECTIONS if a != m) for m in _ALGO_SECTIONS}}


def relevant_config(method: str, config: dict[str, Any]) -> dict[str, Any]:
    """The run's config without machine-local paths (``out``, ``init``) and sections the method ignores.

    >>> sorted(relevant_config("a2c", {"out": "x", "init": None, "ppo": {}, "a2c": {}, "sft": {}, "seed": 0}))
    ['a2c', 'seed']
    """
    drop = {"out", "init", *UNUSED.get(method, ())}
    out = {k: v for k, v in config.items() if k not in drop}
    if isinstance(out.get("env"), dict) and out["env"].get("train_split") == "train":  # the default: keeps the
        out["env"] = {k: v for k, v in out["env"].items() if k != "train_split"}     # hashes of older records
    return out


def check_record(record: Any, where: str = "record") -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: not a JSON object")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"{where}: not a leaderboard record (missing {missing})")
    if record["record_version"] != RECORD_VERSION:
        raise ValueError(f"{where}: record_version {record['record_version']} is not {RECORD_VERSION}")
    return record


def record_path(record: dict[str, Any], records_dir: Path) -> Path:
    task = record["task"].split("/")[-1]
    return records_dir / record["suite"] / f"{task}__{record['method']}__seed{record['seed']}__{record['run_id']}.json"


def write_record(record: dict[str, Any], records_dir: Path) -> Path:
    """Write atomically to ``records_dir/<suite>/<task>__<method>__seed<seed>__<run_id>.json``."""
    path = record_path(check_record(record), records_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    tmp.replace(path)
    return path


def record_key(record: dict[str, Any]) -> str:
    """A record's identity: its content (canonical JSON), never the file or folder it came from."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def load_records(records_dir: Path) -> list[dict[str, Any]]:
    """Every record under ``records_dir`` (recursively), each once however many copies of it lie there;
    a malformed file is an error naming it."""
    records, seen = [], set()
    for path in sorted(Path(records_dir).rglob("*.json")):
        try:
            record = check_record(json.loads(path.read_text()), str(path))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if record_key(record) not in seen and record["run_id"] not in seen:
            seen.update((record_key(record), record["run_id"]))
            records.append(record)
    return records


def _check_source(source: Path) -> None:
    """A file must be a record, a folder must not be a model, checkpoint or other textgym save."""
    from textgym.filekinds import WrongFileError, identify, require

    if source.is_file():
        require(source, ("record", "json"), "leaderboard merge", "a leaderboard record or a folder of them", strict=True)
        return
    found = identify(source)
    if found.kind not in ("records-folder", "folder", "run-folder") or not any(Path(source).rglob("*.json")):
        opens = f"; open it with {found.opens.replace('PATH', str(source))}" if found.opens else ""
        raise WrongFileError(f"leaderboard merge needs a folder of leaderboard records, but {source} is "
                             f"{found.what}{opens}")


def merge_records(sources: list[Path], records_dir: Path) -> tuple[int, int]:
    """Copy records from files or folders into ``records_dir``; ones already present (same run_id) are skipped."""
    known = load_records(records_dir) if Path(records_dir).exists() else []
    present = {r["run_id"] for r in known} | {record_key(r) for r in known}  # by content, from any route
    added = skipped = 0
    for source in sources:
        if not source.exists():
            raise FileNotFoundError(f"{source} does not exist")
        _check_source(source)
        for record in load_records(source) if source.is_dir() else [check_record(json.loads(source.read_text()),
                                                                                 str(source))]:
            if record["run_id"] in present or record_key(record) in present:
                skipped += 1
                continue
            write_record(record, records_dir)
            present.update((record["run_id"], record_key(record)))
            added += 1
    return added, skipped
