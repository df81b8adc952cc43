"""Learning curves of training runs as a PNG (``textgym plot RUN [RUN ...]``).

A run folder written by ``textgym train`` holds ``curve.jsonl`` (one row per rollout:
``timesteps``, ``ep_rew_mean``, ``kl``, the task metrics, ...) and ``train_config.json``. Runs
that differ only in their seed form one group: drawn as one line per seed, or as the mean with a
band of one standard deviation (``band=True``). Points are always drawn in timestep order and two
runs are never joined into one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

# Panels drawn when the caller names none: training reward, KL to the reference, then every
# other metric the runs logged (task scores such as bleu or rougeL).
DEFAULT_FIRST = ("ep_rew_mean", "kl")
NOT_PLOTTED = {"timesteps", "seconds", "ep_len_mean", "kl_coef", "kl_per_token"}
LABELS = {"ep_rew_mean": "training reward (env score, mean of last 100 episodes)", "kl": "KL to the reference (per episode)"}
# Settings that do not change what a run learns; runs that differ only here are seeds of one group.
NOT_A_SETTING = {"seed", "out", "threads", "device", "progress_bar", "tensorboard", "checkpoint", "eval"}


@dataclass
class Curve:
    """One run's learning curve: its group label, its seed and its rows (dicts with ``timesteps``)."""

    label: str
    seed: Any
    points: list[dict[str, float]]

    def series(self, metric: str) -> tuple[list[float], list[float]]:
        """``(timesteps, values)`` of ``metric``, sorted by timesteps, rows without it skipped."""
        rows = sorted((p["timesteps"], p[metric]) for p in self.points if metric in p and "timesteps" in p)
        return [x for x, _ in rows], [y for _, y in rows]


def read_run(folder: str | Path) -> Curve:
    """The curve of a ``textgym train`` run folder.

    Raises:
        FileNotFoundError: ``folder`` has no ``curve.jsonl``.
        ValueError: a line of ``curve.jsonl`` is not a JSON object with ``timesteps``.
    """
    folder = Path(folder)
    path = folder / "curve.jsonl"
    if not path.is_file():
        what = "does not exist" if not folder.exists() else "has no curve.jsonl (is it a textgym train run folder?)"
        raise FileNotFoundError(f"run folder {folder} {what}")
    from textgym.io import json_lines, read_text

    points = []
    for number, row in json_lines(read_text(path).splitlines(), path):
        if not isinstance(row, dict) or not isinstance(row.get("timesteps"), (int, float)):
            raise ValueError(f"{path}:{number}: expected an object with a numeric 'timesteps'")
        points.append(row)
    config = _read_json(folder / "train_config.json")
    return Curve(group_label(config, folder.name), config.get("seed", folder.name), points)


def _read_json(path: Path) -> dict[str, Any]:
    from textgym.io import read_json

    data = read_json(path) if path.is_file() else {}
    return data if isinstance(data, dict) else {}


def group_label(config: dict[str, Any], fallback: str) -> str:
    """``"ppo textgym/Generation-v0 [a1b2c3]"``: algo, env and a short hash of the settings except the seed.

    >>> group_label({"algo": "ppo", "env": {"id": "textgym/X-v0"}, "seed": 1, "ppo": {"n_steps": 8}}, "run") == \\
    ...     group_label({"algo": "ppo", "env": {"id": "textgym/X-v0"}, "seed": 2, "ppo": {"n_steps": 8}}, "run")
    True
    >>> group_label({}, "my-run")
    'my-run'
    """
    if not config:
        return fallback
    import hashlib

    settings = {k: v for k, v in config.items() if k not in NOT_A_SETTING}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:6]
    env = (config.get("env") or {}).get("id", "?")
    return f"{config.get('algo', '?')} {env} [{digest}]"


def metrics_of(curves: Iterable[Curve]) -> list[str]:
    """The metrics to draw: reward and KL first, then the rest in first-seen order.

    >>> metrics_of([Curve("a", 0, [{"timesteps": 1, "bleu": 0.1, "kl": 0.0, "ep_rew_mean": 0.1, "seconds": 3}])])
    ['ep_rew_mean', 'kl', 'bleu']
    """
    seen: dict[str, None] = {}
    for curve in curves:
        for point in curve.points:
            for key, value in point.items():
                if key not in NOT_PLOTTED and isinstance(value, (int, float)):
                    seen.setdefault(key, None)
    first = [m for m in DEFAULT_FIRST if m in seen]
    return first + [m for m in seen if m not in first]


def mean_band(series: Sequence[tuple[list[float], list[float]]], points: int = 50):
    """Mean and standard deviation of several curves on a shared grid of timesteps.

    The grid spans only the timesteps every curve covers (no extrapolation); each curve is
    linearly interpolated onto it. Returns ``(grid, mean, std)`` as numpy arrays, or ``None``
    when the curves share no range.

    >>> grid, mean, std = mean_band([([0, 10], [0.0, 1.0]), ([0, 10], [1.0, 1.0])], points=3)
    >>> grid.tolist(), mean.tolist(), std.tolist()
    ([0.0, 5.0, 10.0], [0.5, 0.75, 1.0], [0.5, 0.25, 0.0])
    """
    import numpy as np

    series = [(xs, ys) for xs, ys in series if xs]
    if not series:
        return None
    low, high = max(xs[0] for xs, _ in series), min(xs[-1] for xs, _ in series)
    if low > high:
        return None
    grid = np.linspace(low, high, points if high > low else 1)
    stack = np.stack([np.interp(grid, xs, ys) for xs, ys in series])  # (runs, points)
    return grid, stack.mean(0), stack.std(0)


def plot_curves(curves: Sequence[Curve], path: str | Path, metrics: Sequence[str] | None = None,
                band: bool = False, title: str | None = None) -> Path:
    """Draw one panel per metric against timesteps and save a PNG at ``path``.

    Args:
        curves: Runs to draw; curves with the same ``label`` are seeds of one group (one colour).
        path: Output file (its folder is created).
        metrics: Metrics to draw (default: reward, KL, then every task metric logged).
        band: Draw each group's mean with a one-std band instead of one line per seed.
        title: Figure title.

    Raises:
        ValueError: No curve has any of the metrics.
        ImportError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError('plots need matplotlib: pip install matplotlib (or pip install "textgym[bench]")') from exc
    metrics = list(metrics) if metrics else metrics_of(curves)
    metrics = [m for m in metrics if any(c.series(m)[0] for c in curves)]
    if not metrics:
        raise ValueError("nothing to plot: the runs have no learning-curve points (a run writes one per rollout)")
    groups: dict[str, list[Curve]] = {}
    for curve in curves:
        groups.setdefault(curve.label, []).append(curve)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6), dpi=110, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for k, (label, group) in enumerate(groups.items()):
            _draw_group(ax, metric, label, group, f"C{k % 10}", band)
        ax.set_xlabel("environment steps (generated tokens)")
        ax.set_ylabel(LABELS.get(metric, metric), fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _draw_group(ax: Any, metric: str, label: str, group: list[Curve], color: str, band: bool) -> None:
    series = [c.series(metric) for c in sorted(group, key=lambda c: str(c.seed))]
    stats = mean_band(series) if band and len(series) > 1 else None
    if stats is not None:
        grid, mean, std = stats
        ax.plot(grid, mean, color=color, label=f"{label} (mean of {len(series)})")
        ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        return
    for n, (xs, ys) in enumerate(series):
        if xs:
            ax.plot(xs, ys, color=color, alpha=0.8, marker="." if len(xs) < 30 else None,
                    label=label if n == 0 else None)
