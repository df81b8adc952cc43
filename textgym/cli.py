"""The ``textgym`` command line: a thin layer over the Python API.

``textgym list`` (the registered ids), ``textgym eval`` (metrics, diversity and perplexity of a
model or checkpoint), ``textgym rlhf ...``, and the commands other packages declare in the
``textgym.commands`` entry-point group: ``textgym train`` comes from ``agents.cli`` that way, so
textgym never imports the agents (imports point agents -> textgym only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from textgym.argtypes import int_in
from textgym.catalogue import MAX_TOKENS, TASKS
from textgym.console import OneLineParser, format_table  # noqa: F401  (format_table: textgym.cli.format_table keeps working)
from textgym.io import atomic_write_json, check_writable_file
from textgym.threads import THREADS_HELP, parse_threads


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [["id", "family", "dataset", "default reward", "obs length", "max new tokens"]]
    for task in TASKS:
        preset = task.preset
        reward = preset.reward if isinstance(preset.reward, str) else json.dumps(preset.reward)
        rows.append([task.env_id, task.family, task.dataset, reward,
                     str(preset.max_prompt_length + preset.max_new_tokens), str(preset.max_new_tokens)])
    print(format_table(rows))
    print("\naction space: Discrete(len(tokenizer)); observation: Dict(input_ids, attention_mask), int64")
    return 0


# --- eval ----------------------------------------------------------------------------------
def _eval_model(args: argparse.Namespace) -> tuple[str, str]:
    """(model to evaluate, base model for perplexity) from --checkpoint / --model / --base-model."""
    if args.checkpoint:
        from textgym.checkpoints import check_checkpoint, read_meta

        path = check_checkpoint(args.checkpoint, what="checkpoint")
        return str(path), args.base_model or read_meta(path).get("base_model") or str(path)
    from textgym.models import default_model

    model = args.model or default_model()
    return model, args.base_model or model


def _cmd_eval(args: argparse.Namespace) -> int:
    from textgym.evaluation import eval_metrics, evaluate

    from textgym import check_env_id

    check_env_id(args.env)
    model, base_model = _eval_model(args)
    out = Path(args.out) if args.out else Path("runs") / "eval" / f"{_slug(model)}-{_slug(args.env)}-{args.split}.json"
    check_writable_file(out, "--out")  # before the evaluation runs, not after
    env_kwargs: dict[str, Any] = {"metrics": eval_metrics(args.env, args.metrics)}
    for key in ("data_dir", "max_new_tokens", "reward"):
        if getattr(args, key) is not None:  # 0 is a value, not "unset"
            env_kwargs[key] = getattr(args, key)
    from textgym.threads import resolve_threads, set_threads

    threads, why = resolve_threads(args.threads)
    print(f"textgym eval: {set_threads(threads)} CPU thread(s) ({why})")
    result = evaluate(args.env, model, split=args.split, n=args.n, batch_size=args.batch_size,
                      device=args.device, do_sample=args.sample, seed=args.seed,
                      perplexity=not args.no_perplexity, base_model=base_model, **env_kwargs)
    metrics = dict(result.metrics)
    print(f"\n{args.env} ({args.split}, {len(result.records)} items, model {model}, {result.seconds:.1f} s)")
    print(format_table([["metric", "value"], *([k, f"{v:.4f}"] for k, v in metrics.items())]))
    if not args.no_perplexity:
        print(f"(perplexity of the outputs under the base model {base_model})")
    print("\nsamples:")
    for record in result.records[: args.show]:
        print(f"  source:     {record['source'][:200]!r}")
        print(f"  generation: {record['generation']!r}")
        print(f"  reference:  {record['references'][0]!r}\n")
    payload = {"env": args.env, "split": args.split, "model": str(model), "base_model": base_model,
               "metrics": metrics, "records": result.records, "seconds": result.seconds}
    atomic_write_json(out, payload)
    print(f"wrote {out}")
    return 0


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text).strip("/").replace("textgym/", ""))[-60:]


def _add_eval(sub: Any) -> None:
    ev = sub.add_parser("eval", help="score a model or checkpoint on an environment (metrics table, samples, JSON)")
    ev.add_argument("--env", default="textgym/Generation-v0", help="registered id (default: %(default)s)")
    which = ev.add_mutually_exclusive_group()
    which.add_argument("--model", default=None, help="model alias, folder or hub id (default: smollm2-135m)")
    which.add_argument("--checkpoint", default=None, help="a checkpoint folder written by textgym train")
    ev.add_argument("--base-model", default=None, help="judge of perplexity (default: the checkpoint's base model)")
    ev.add_argument("--split", default="test", help="train, validation or test, optionally sliced: validation[:700], train[90%%:]")
    ev.add_argument("--n", type=int_in(1), default=32, help="number of items (default: %(default)s)")
    ev.add_argument("--batch-size", type=int_in(1), default=16)
    ev.add_argument("--max-new-tokens", type=int_in(1, MAX_TOKENS), default=None)
    ev.add_argument("--reward", default=None, help="reward name (default: the id's)")
    ev.add_argument("--metrics", nargs="*", help="extra metrics, e.g. chrf or a learned reward rm:NAME")
    ev.add_argument("--data-dir", default=None, help="data folder (default: $TEXTGYM_DATA_DIR)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--threads", type=parse_threads, default=None, help=THREADS_HELP)
    ev.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    ev.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    ev.add_argument("--no-perplexity", action="store_true", help="skip the perplexity under the base model")
    ev.add_argument("--show", type=int_in(0), default=3, help="sample generations to print")
    ev.add_argument("--out", default=None, help="JSON file (default: runs/eval/<model>-<env>-<split>.json)")
    ev.set_defaults(func=_cmd_eval)


def _cmd_plot(args: argparse.Namespace) -> int:
    from textgym.plots import plot_curves, read_run

    curves = [read_run(run) for run in args.runs]
    out = plot_curves(curves, args.out, metrics=args.metrics, band=args.band)
    print(f"wrote {out} ({len(curves)} run(s))")
    return 0


def _add_plot(sub: Any) -> None:
    pl = sub.add_parser("plot", help="learning curves of training runs (reward, KL, task metrics) as a PNG",
                        description="Plot curve.jsonl of one or more `textgym train` run folders against timesteps. "
                        "Runs that differ only in their seed share a colour: one line per seed, or --band for "
                        "the mean with a one-std band.")
    pl.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by textgym train")
    pl.add_argument("--out", default="curves.png", help="PNG file (default: %(default)s)")
    pl.add_argument("--metrics", nargs="*", help="metrics to draw (default: ep_rew_mean, kl and every task metric)")
    pl.add_argument("--band", action="store_true", help="mean and one-std band over seeds instead of one line per seed")
    pl.set_defaults(func=_cmd_plot)


COMMAND_GROUP = "textgym.commands"  # entry points: name = "module:function(argv) -> exit status"


def command_plugins() -> dict[str, Any]:
    """Commands other installed packages add (``textgym train`` from the agents), by name."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="textgym", description="RL environments for language models on real text tasks")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--verbose", action="store_true",
                        help="also show the libraries' own progress bars, logs and warnings (hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="table of every registered environment id").set_defaults(func=_cmd_list)
    for name, ep in sorted(command_plugins().items()):
        # Its own parser reads the arguments (and --help) when it runs; nothing is imported here.
        sub.add_parser(name, add_help=False, help=f"see textgym {name} --help (from {ep.value.split(':')[0]})"
                       ).set_defaults(plugin=ep)
    _add_eval(sub)
    _add_plot(sub)
    from textgym.rlhf.cli import add_rlhf_commands  # cheap: torch loads only when a command runs
    add_rlhf_commands(sub)
    return parser


MAX_ERROR_CHARS = 400


def error_line(exc: BaseException) -> str:
    r"""One short line for an exception: its message on one line, cut to ``MAX_ERROR_CHARS``.

    Exceptions that do not describe bad input themselves (anything but ValueError, TypeError,
    OSError, ImportError, LookupError) are prefixed with their type.

    >>> error_line(ValueError("n must be >= 1,\n  got 0"))
    'n must be >= 1, got 0'
    >>> error_line(ZeroDivisionError("division by zero"))
    'ZeroDivisionError: division by zero'
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = f"no such key {exc.args[0]!r}"
    if not isinstance(exc, (ValueError, TypeError, OSError, ImportError, LookupError)):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Run a ``textgym`` command. Every failure prints one ``error:`` line and returns 2
    (130 on Ctrl-C); ``--debug`` (anywhere on the line) shows the traceback instead, and
    ``--verbose`` (anywhere) lets the libraries' own progress bars, logs and warnings through."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, verbose = "--debug" in argv, "--verbose" in argv
    argv = [a for a in argv if a not in ("--debug", "--verbose")]
    if not verbose:
        from textgym.console import quiet_libraries

        quiet_libraries()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    plugin = getattr(args, "plugin", None)
    if plugin is None and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    command = " ".join(filter(None, [args.command, getattr(args, "rlhf_command", None)]))
    try:
        return plugin.load()(rest) if plugin is not None else args.func(args)
    except KeyboardInterrupt:
        print(f"textgym {command}: error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001: the CLI's one place that turns failures into a line
        if debug:
            raise
        print(f"textgym {command}: error: {error_line(exc)} (--debug shows the traceback)"
              if not isinstance(exc, (ValueError, TypeError, OSError, ImportError, LookupError))
              else f"textgym {command}: error: {error_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
