"""``run_training(config)``: one training run (PPO, A2C or supervised) with everything around it.

Held-out evaluation before and after (metrics and sample generations), a progress bar,
TensorBoard logs, a learning curve (``curve.jsonl``), periodic and final checkpoints (atomic
folders, see :mod:`agents.checkpoints`) and a ``summary.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

import textgym
from agents.checkpoints import next_checkpoint_step, prune_checkpoints, save_checkpoint
from agents.config import TrainConfig, config_hash, to_dict
from textgym.checkpoints import check_checkpoint, read_meta
from textgym.io import atomic_write_json, check_writable_dir
from textgym.threads import set_threads

__all__ = ["TrainResult", "build_agent", "build_vec_env", "env_kwargs", "run_training"]

Log = Callable[[str], None]


@dataclass
class TrainResult:
    """What a run produced: folders, held-out metrics before/after, timings."""

    out_dir: Path
    checkpoint: Path
    before: dict[str, float] | None
    after: dict[str, float] | None
    wall_seconds: float
    train_seconds: float
    rollout_tokens_per_s: float | None
    stats: dict[str, Any] = field(default_factory=dict)


def env_kwargs(config: TrainConfig) -> dict[str, Any]:
    """Keyword arguments for ``gym.make`` from ``config.env`` (unset ones keep the id's preset)."""
    kwargs = {k: getattr(config.env, k) for k in ("data_dir", "reward", "reward_mode", "max_prompt_length",
                                                  "max_new_tokens")}
    # The layout follows the model (its tokenizer folder): seq2seq for T5/BART, causal otherwise.
    return {**{k: v for k, v in kwargs.items() if v is not None}, "layout": "auto"}


def build_vec_env(config: TrainConfig, tokenizer: Any):
    """The training env: ``num_envs`` batched episodes of the train split on the device."""
    groups = getattr(getattr(config, config.algo), "group_size", None)  # the critic-free algorithms' groups
    extra = {} if groups is None else {"group_size": groups}
    return textgym.make_vec(config.env.id, config.num_envs, device=config.device, split=config.env.train_split,
                            tokenizer=tokenizer, **env_kwargs(config), **extra)


def build_agent(config: TrainConfig, env: Any, model_name: str, logger: Any = None, threads: int | None = None):
    """The ``config.algo`` algorithm with the TransformerPolicy starting from ``model_name``; ``logger``: SB3's."""
    from agents import ALGORITHMS

    algo_cls = ALGORITHMS[config.algo]
    kwargs = to_dict(config)[config.algo]
    policy_kwargs = dict(model_name=model_name, **config.policy.policy_kwargs())
    agent = algo_cls("TransformerPolicy", env, policy_kwargs=policy_kwargs, seed=config.seed, device=config.device,
                     verbose=0, threads=threads, **kwargs)
    if logger is not None:
        agent.set_logger(logger)
    return agent


class RunMonitor(BaseCallback):
    """Learning curve (``curve.jsonl``), rollout timing and periodic checkpoints."""

    def __init__(self, out: Path, config: TrainConfig, save: Callable[[Path], None]) -> None:
        super().__init__()
        self.out, self.config, self.save = out, config, save
        self.rollout_seconds = 0.0
        self.rollout_tokens = 0
        self.next_checkpoint = config.checkpoint.every or None
        self.start = time.perf_counter()
        self._t0 = 0.0
        self._steps0 = 0
        self._last_update: dict[str, float] = {}

    def _on_rollout_start(self) -> None:
        self._t0, self._steps0 = time.perf_counter(), self.model.num_timesteps
        # train/ values of the update before this rollout (SB3 dumps the logs before train, so they are
        # still there now): explained variance, gradient norm, losses; written with this rollout's point.
        logged = self.model.logger.name_to_value
        self._last_update = {key.split("/", 1)[1]: float(value) for key, value in logged.items()
                             if key.startswith("train/") and isinstance(value, (int, float))}

    def _on_rollout_end(self) -> None:
        self.rollout_seconds += time.perf_counter() - self._t0
        # Generated tokens: on the fast path num_timesteps also counts the slots of envs waiting for the slowest.
        buffer = self.model.rollout_buffer
        tokens = getattr(buffer, "num_transitions", None)
        self.rollout_tokens += tokens if tokens is not None else self.model.num_timesteps - self._steps0
        model = self.model
        point: dict[str, Any] = {"timesteps": int(model.num_timesteps), "seconds": time.perf_counter() - self.start}
        if model.ep_info_buffer:
            point["ep_rew_mean"] = float(np.mean([e["r"] for e in model.ep_info_buffer]))
            point["ep_len_mean"] = float(np.mean([e["l"] for e in model.ep_info_buffer]))
        for name, values in getattr(model, "metric_buffer", {}).items():
            if values:
                point[name] = float(np.mean(values))
        logged = model.logger.name_to_value  # this rollout's values, recorded before on_rollout_end
        for key, value in logged.items():  # kl, kl_per_token, score_mean, the score variance split, task metrics
            if key.startswith("rollout/") and isinstance(value, (int, float)):
                point.setdefault(key.split("/", 1)[1], float(value))
        point.update({f"update_{k}": v for k, v in self._last_update.items()})
        point["kl_coef"] = float(getattr(model, "kl_coef", 0.0))
        with open(self.out / "curve.jsonl", "a") as handle:
            handle.write(json.dumps(point) + "\n")
        # The last rollout's weights are written once, as final/ (a periodic copy would double the disk).
        last = model.num_timesteps >= getattr(model, "_total_timesteps", float("inf"))
        if self.next_checkpoint is not None and model.num_timesteps >= self.next_checkpoint and not last:
            self.save(self.out / "checkpoints" / f"step_{model.num_timesteps:08d}")
            prune_checkpoints(self.out / "checkpoints", self.config.checkpoint.keep, model.num_timesteps)
            self.next_checkpoint = next_checkpoint_step(model.num_timesteps, self.config.checkpoint.every)

    def _on_step(self) -> bool:
        return True

    @property
    def tokens_per_s(self) -> float | None:
        return self.rollout_tokens / self.rollout_seconds if self.rollout_seconds > 0 else None


def held_out_eval(config: TrainConfig, model: Any, tokenizer: Any) -> Any:
    """Greedy evaluation on ``config.eval.split`` (first ``config.eval.n`` items): BLEU, ROUGE-1/2/L, length, diversity."""
    from textgym.evaluation import eval_metrics, evaluate

    return evaluate(config.env.id, model, split=config.eval.split, n=config.eval.n, batch_size=config.eval.batch_size,
                    device=config.device, seed=config.seed, progress=config.progress_bar, tokenizer=tokenizer,
                    base_model=config.model, metrics=eval_metrics(config.env.id), **env_kwargs(config))


def run_training(config: TrainConfig, log: Log = print) -> TrainResult:
    """Train as ``config`` says; write checkpoints, logs and ``summary.json`` under ``config.run_dir()``.

    Raises:
        ValueError: Unknown env id, or an inconsistent configuration.
        FileNotFoundError: ``config.init`` is not a checkpoint folder.
    """
    start = time.perf_counter()
    textgym.check_env_id(config.env.id)
    init = str(check_checkpoint(config.init)) if config.init else None
    if init is None:
        from textgym.models import check_model_kind

        check_model_kind(config.model, "model")  # a classifier or reward-model folder is refused before any work
    out = check_writable_dir(config.run_dir(), "out")  # before any model is loaded
    (out / "curve.jsonl").unlink(missing_ok=True)
    atomic_write_json(out / "train_config.json", to_dict(config))
    threads = _torch_threads(config)
    from textgym.models import load_tokenizer

    start_model = init or config.model
    tokenizer = load_tokenizer(start_model)
    log(f"textgym train: {config.algo} on {config.env.id}, model {start_model}, seed {config.seed}, "
        f"{threads}, output {out}")
    logger = _tensorboard_logger(out, config)
    writer = _tensorboard_writer(logger)
    before = held_out_eval(config, start_model, tokenizer) if config.eval.before else None
    if before is not None:  # shown now, so a long run tells at once where it starts from
        log_before(config, before, log)
    meta = {"algo": config.algo, "env": config.env.id, "seed": config.seed, "config_hash": config_hash(config),
            "base_model": read_meta(init).get("base_model", config.model) if init else config.model,
            "init": init, "textgym_version": textgym.__version__}
    train_start = time.perf_counter()
    if config.algo == "sft":
        lm, stats, tokens_per_s = _run_sft(config, start_model, tokenizer, writer, out, meta)
    else:
        lm, stats, tokens_per_s = _run_rl(config, start_model, tokenizer, out, meta, logger)
    train_seconds = time.perf_counter() - train_start
    after = held_out_eval(config, lm, tokenizer) if config.eval.after else None
    result = TrainResult(out, out / "final", before and before.metrics, after and after.metrics,
                         time.perf_counter() - start, train_seconds, tokens_per_s, stats)
    _log_eval(writer, result)
    if logger is not None:
        logger.close()
    _write_summary(config, result, before, after)
    report(result, before, after, config.eval.show, log)
    return result


def _torch_threads(config: TrainConfig) -> str:
    """Apply ``config.threads`` if set (``None`` leaves torch's threads alone); the count, for the log."""
    import torch

    if config.threads is not None:
        set_threads(config.threads)
        return f"{config.threads} CPU thread(s)"
    return f"{torch.get_num_threads()} CPU thread(s) (torch's setting, left as it was)"


def _tensorboard_logger(out: Path, config: TrainConfig):
    """SB3's logger writing TensorBoard events to ``out/tb``: one folder for the whole run (training and evaluation)."""
    if not config.tensorboard:
        return None
    try:
        import tensorboard  # noqa: F401
    except ImportError as exc:
        raise ImportError("TensorBoard logs need the tensorboard package: pip install tensorboard "
                          "(or set tensorboard: false)") from exc
    from stable_baselines3.common.logger import configure

    return configure(str(out / "tb"), ["tensorboard"])


def _tensorboard_writer(logger: Any):
    """The SummaryWriter inside SB3's logger, for the evaluation and SFT scalars."""
    from stable_baselines3.common.logger import TensorBoardOutputFormat

    formats = [] if logger is None else logger.output_formats
    return next((f.writer for f in formats if isinstance(f, TensorBoardOutputFormat)), None)


def _run_sft(config: TrainConfig, start_model: str, tokenizer: Any, writer: Any, out: Path, meta: dict):
    from agents.sft import train_sft
    from textgym.devices import resolve_device
    from textgym.models import load_lm

    env = gym.make(config.env.id, split=config.env.train_split, tokenizer=tokenizer, **env_kwargs(config)).unwrapped
    lm = load_lm(start_model).to(resolve_device(config.device))
    log = (lambda tag, value, step: writer.add_scalar(tag, value, step)) if writer else None
    stats = train_sft(lm, env, config.sft, seed=config.seed, progress=config.progress_bar, log=log)
    save_checkpoint(out / "final", lm, tokenizer, {**meta, "sft": stats})
    return lm, stats, None


def _run_rl(config: TrainConfig, start_model: str, tokenizer: Any, out: Path, meta: dict, logger: Any):
    env = build_vec_env(config, tokenizer)
    agent = build_agent(config, env, start_model, logger, config.threads)

    def save(folder: Path) -> None:
        save_checkpoint(folder, agent.policy.export_lm(), tokenizer, {**meta, "timesteps": int(agent.num_timesteps)},
                        agent if config.checkpoint.save_agent else None)

    monitor = RunMonitor(out, config, save)
    agent.learn(config.total_timesteps, callback=monitor, progress_bar=config.progress_bar,
                tb_log_name=config.algo)
    save(out / "final")
    stats = {"timesteps": int(agent.num_timesteps), "rollout_tokens": monitor.rollout_tokens,
             "rollout_seconds": monitor.rollout_seconds, "kl_coef": float(agent.kl_coef),
             "fast_path": agent.uses_fast_path()}
    env.close()
    return agent.policy.lm, stats, monitor.tokens_per_s


def _log_eval(writer: Any, result: TrainResult) -> None:
    if writer is None:
        return
    for step, metrics in ((0, result.before), (1, result.after)):
        for name, value in (metrics or {}).items():
            writer.add_scalar(f"eval/{name}", value, step)
    writer.flush()


def _write_summary(config: TrainConfig, result: TrainResult, before: Any, after: Any) -> None:
    def samples(evaluation: Any) -> list[dict[str, Any]]:
        return [] if evaluation is None else [
            {k: r[k] for k in ("sample_id", "source", "prompt_text", "generation", "references", "score")} for r in evaluation.records]

    summary = {"config": to_dict(config), "config_hash": config_hash(config), "checkpoint": str(result.checkpoint),
               "before": result.before, "after": result.after, "wall_seconds": result.wall_seconds,
               "train_seconds": result.train_seconds, "rollout_tokens_per_s": result.rollout_tokens_per_s,
               "stats": result.stats, "samples_before": samples(before), "samples_after": samples(after)}
    atomic_write_json(result.out_dir / "summary.json", summary)


def log_before(config: TrainConfig, before: Any, log: Log = print) -> None:
    """Print the held-out metrics of the starting model, before training starts."""
    from textgym.console import format_table

    rows = [["metric", "before"], *([name, _fmt(value)] for name, value in before.metrics.items())]
    log(f"\nheld-out metrics before training ({config.eval.split}, {len(before.records)} items, greedy):\n"
        + format_table(rows) + "\n")


def report(result: TrainResult, before: Any, after: Any, show: int, log: Log = print) -> None:
    """Print the before/after metrics table and a few sample generations."""
    from textgym.console import format_table

    names = list((result.after or result.before or {}).keys())
    rows = [["metric", "before", "after", "change"]]
    for name in names:
        b, a = (result.before or {}).get(name), (result.after or {}).get(name)
        rows.append([name, _fmt(b), _fmt(a), _fmt(a - b) if a is not None and b is not None else ""])
    log("\nheld-out metrics:\n" + format_table(rows))
    if before is not None or after is not None:
        log("\nsamples:")
        records = (after or before).records
        for k, record in enumerate(records[:show]):
            log(f"  prompt:    {record['source'][:160]!r}")
            if before is not None:
                log(f"  before:    {before.records[k]['generation']!r}")
            if after is not None:
                log(f"  after:     {after.records[k]['generation']!r}")
            log(f"  reference: {record['references'][0]!r}\n")
    speed = f", rollout {result.rollout_tokens_per_s:.1f} tokens/s" if result.rollout_tokens_per_s else ""
    log(f"checkpoint: {result.checkpoint}  (train {result.train_seconds:.0f} s, total {result.wall_seconds:.0f} s{speed})")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
