"""Render LEADERBOARD.md (mean +- std over seeds) and learning-curve PNGs from the records."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

if __package__:  # imported as benchmarks.leaderboard_render
    from benchmarks.leaderboard_records import load_records, record_threads
    from benchmarks.leaderboard_suite import METHODS
else:  # imported by python benchmarks/leaderboard.py, whose folder is first on sys.path
    from leaderboard_records import load_records, record_threads
    from leaderboard_suite import METHODS

# Task metrics, then the quality guards; a table shows the columns that some of its records have.
COLUMNS = ("sentiment", "dialogue_act_acc", "dialogue_act", "bleu", "rougeL", "rouge1", "rouge2", "mean_tokens",
           "distinct_1", "distinct_2",
           "repetition", "perplexity")
Record = dict[str, Any]


def mean_std(values: list[float], digits: int = 3) -> str:
    """``"0.250 ± 0.050"`` (sample std; ``± 0`` is not printed for a single value).

    >>> mean_std([0.2, 0.3])
    '0.250 ± 0.071'
    >>> mean_std([1.0])
    '1.000'
    """
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_labels(configs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Per config hash, what sets its runs apart from the method's other configs: the settings (present in
    all of them) whose values differ, or ``"cfg HASH"`` where those do not tell them apart.

    >>> config_labels({"a1": {"rloo": {"kl_coef": 0.05, "n_steps": 8}, "seed": 0},
    ...                "b2": {"rloo": {"kl_coef": 0.02, "n_steps": 8}, "seed": 1}})
    {'a1': 'rloo.kl_coef=0.05', 'b2': 'rloo.kl_coef=0.02'}
    >>> config_labels({"a1": {}, "b2": {}})
    {'a1': 'cfg a1', 'b2': 'cfg b2'}
    """
    from agents.config import UNHASHED  # run-local settings (seed, threads...); records carry no out/init

    flat = {h: {k: v for k, v in _flat(c).items() if k.split(".")[0] not in UNHASHED} for h, c in configs.items()}
    shared = set.intersection(*(set(f) for f in flat.values()))
    differing = sorted(k for k in shared if len({json.dumps(f[k], sort_keys=True) for f in flat.values()}) > 1)
    labels = {h: ", ".join(f"{k}={f[k]}" for k in differing) for h, f in flat.items()}
    if not differing or len(differing) > 3 or len(set(labels.values())) < len(labels):
        return {h: f"cfg {h}" for h in configs}
    return labels


def _method_rows(records: list[Record]) -> list[tuple[str, list[Record]]]:
    """Rows per method (canonical order); a method run with several configs gets one row per config hash,
    labelled with the settings that differ (:func:`config_labels`).

    When the table's runs used different torch thread counts, every row says its count and runs on
    different counts are never averaged together (their timings are not comparable).
    """
    mixed = len({record_threads(r) for r in records}) > 1
    by_method: dict[str, dict[tuple[str, int], list[Record]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_method[r["method"]][(r["config_hash"], (record_threads(r) or 0) if mixed else 0)].append(r)
    rows = []
    for method in sorted(by_method, key=lambda m: (METHODS.index(m) if m in METHODS else len(METHODS), m)):
        groups = by_method[method]
        configs = {cfg: group[0].get("config") or {} for (cfg, _), group in groups.items()}
        labels = config_labels(configs) if len(configs) > 1 else {}
        for (cfg, threads), group in sorted(groups.items()):
            label = f"{method} [{labels[cfg]}]" if labels else method
            if mixed:
                label += f" [{threads or '?'} thread{'' if threads == 1 else 's'}]"
            rows.append((label, group))
    return rows


def table(records: list[Record]) -> list[str]:
    columns = [c for c in COLUMNS if any(c in r["test_metrics"] for r in records)]
    header = ["method", "seeds", *columns, "train s", "wall s", "rollout tok/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, group in _method_rows(records):
        cells = [label, str(len({r["seed"] for r in group}))]
        cells += [mean_std([r["test_metrics"].get(c) for r in group], 1 if c in ("mean_tokens", "perplexity") else 3)
                  for c in columns]
        cells.append(mean_std([r.get("train_seconds") for r in group], 0))
        cells.append(mean_std([r.get("wall_seconds") for r in group], 0))
        cells.append(mean_std([r.get("rollout_tokens_per_s") for r in group], 1))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plot_curves(records: list[Record], path: Path, title: str) -> Path | None:
    """Training reward (``ep_rew_mean``, env score without the KL term) against env steps, per method.

    One line per seed in the method's colour (``textgym.plots``): runs are never joined into one line.
    """
    from textgym.plots import Curve
    from textgym.plots import plot_curves as draw

    curves = [Curve(label, r["seed"], r["curve"]) for label, group in _method_rows(records)
              for r in group if r.get("curve")]
    if not curves:
        return None
    return draw(curves, path, metrics=["ep_rew_mean"], title=title)


def _facts(records: list[Record]) -> list[str]:
    commits = Counter((r.get("git") or {}).get("commit") or "unknown" for r in records)
    devices = Counter(r.get("device", "unknown") for r in records)
    packages = Counter(", ".join(f"{k} {v}" for k, v in sorted((r.get("packages") or {}).items()) if v)
                       for r in records)
    walls = [r.get("wall_seconds") or 0.0 for r in records]
    return [f"- runs: {len(records)}, total wall time {sum(walls) / 60:.1f} min",
            "- git commits: " + ", ".join(f"`{c[:10]}` ({n})" for c, n in commits.most_common()),
            "- devices: " + "; ".join(f"{d} ({n})" for d, n in devices.most_common()),
            "- packages: " + "; ".join(f"{p} ({n})" for p, n in packages.most_common())]


def render(records_dir: Path, out: Path, plots_dir: Path) -> Path:
    """Write the leaderboard markdown (and plots) from every record under ``records_dir``."""
    records = load_records(records_dir) if Path(records_dir).exists() else []
    lines = ["# textgym leaderboard", "",
             "Generated by `python benchmarks/leaderboard.py render` from the JSON records in "
             "`benchmarks/records/` (one per run). Held-out metrics, greedy decoding, mean ± sample std over "
             "seeds; `perplexity` is that of the outputs under the base model; `repetition` is the mean share "
             "of an output's word trigrams that repeat an earlier one in it; `sentiment` is IMDB-v0's "
             "positive-sentiment probability; `dialogue_act` is DailyDialog-v0's probability of the reference "
             "turn's act under the packaged act model and `dialogue_act_acc` the share of replies whose most likely act is it; "
             "`train s` is training time "
             "without evaluation, `wall s` the whole run with its evaluation; `rollout tok/s` is generated tokens per second of the rollout phase (sampling "
             "plus the reference and value passes). Records "
             "whose metric signature differs are listed apart, never averaged together; so are runs on different "
             "torch thread counts (rows marked `[N threads]`, whose timings are not comparable).", ""]
    if not records:
        lines.append("No records yet: run `python benchmarks/leaderboard.py run --suite quick`.")
    by_suite: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_suite[r["suite"]].append(r)
    for suite, suite_records in sorted(by_suite.items()):
        lines += [f"## Suite `{suite}`", ""]
        by_task: dict[str, list[Record]] = defaultdict(list)
        for r in suite_records:
            by_task[r["task"]].append(r)
        for task, task_records in sorted(by_task.items()):
            groups = Counter(r["metric_signature"] for r in task_records).most_common()
            for k, (signature, _) in enumerate(groups):
                group = [r for r in task_records if r["metric_signature"] == signature]
                heading = f"### {task}" if k == 0 else f"### {task}: different metric signature ({len(group)} runs)"
                lines += [heading, "", f"Metric signature: `{signature}`", "", *table(group), ""]
                name = f"{suite}__{task.split('/')[-1]}" + (f"__sig{k}" if k else "") + ".png"
                plot = plot_curves(group, Path(plots_dir) / name, f"{suite}: {task} (training reward)")
                if plot is not None:
                    rel = Path(plots_dir).resolve().relative_to(Path(out).resolve().parent) \
                        if Path(plots_dir).resolve().is_relative_to(Path(out).resolve().parent) else Path(plots_dir)
                    lines += [f"![learning curves]({(rel / name).as_posix()})", ""]
        lines += ["Provenance:", "", *_facts(suite_records), ""]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines).rstrip() + "\n")
    tmp.replace(out)
    return out


def readme_markers(suite: str) -> tuple[str, str]:
    """The comment lines around a suite's block in a README: ``<!-- leaderboard:NAME -->`` ... ``<!-- /leaderboard:NAME -->``."""
    return f"<!-- leaderboard:{suite} -->", f"<!-- /leaderboard:{suite} -->"


def update_readme(records_dir: Path, readme: Path, plots_prefix: str = "benchmarks/plots") -> list[str]:
    """Replace each suite's block between its :func:`readme_markers` in ``readme`` with that suite's tables.

    Returns the suites whose blocks were replaced (empty, and nothing written, when no markers match).
    """
    text = Path(readme).read_text()
    records = load_records(records_dir) if Path(records_dir).exists() else []
    updated = []
    for suite in sorted({r["suite"] for r in records}):
        start, end = readme_markers(suite)
        if start not in text or end not in text:
            continue
        lines = []
        suite_records = [r for r in records if r["suite"] == suite]
        for task in sorted({r["task"] for r in suite_records}):
            group = [r for r in suite_records if r["task"] == task]
            signature = Counter(r["metric_signature"] for r in group).most_common(1)[0][0]
            group = [r for r in group if r["metric_signature"] == signature]
            lines += [f"**{task}** (`{signature}`)", "", *table(group), ""]
            if any(r.get("curve") for r in group):  # zero-shot alone draws no plot
                lines += [f"![learning curves]({plots_prefix}/{suite}__{task.split('/')[-1]}.png)", ""]
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + start + "\n" + "\n".join(lines) + end + tail
        updated.append(suite)
    if updated:
        Path(readme).write_text(text)
    return updated
