"""The ``textgym`` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence


def _cmd_list(args: argparse.Namespace) -> int:
    import textgym

    rows = [("id", "family", "dataset", "default reward", "obs length", "max new tokens")]
    for env in textgym.ENVS:
        cls = _env_class(env.entry_point)
        preset = cls.PRESETS[env.dataset]
        reward = preset.reward if isinstance(preset.reward, str) else json.dumps(preset.reward)
        rows.append((env.env_id, env.family, env.dataset, reward,
                     str(preset.max_prompt_length + preset.max_new_tokens), str(preset.max_new_tokens)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print("\naction space: Discrete(len(tokenizer)); observation: Dict(input_ids, attention_mask), int64")
    return 0


def _env_class(entry_point: str):
    import importlib

    module, _, name = entry_point.partition(":")
    return getattr(importlib.import_module(module), name)


def _cmd_eval(args: argparse.Namespace) -> int:
    from textgym.evaluation import evaluate

    env_kwargs = {}
    if args.data_dir:
        env_kwargs["data_dir"] = args.data_dir
    if args.max_new_tokens:
        env_kwargs["max_new_tokens"] = args.max_new_tokens
    result = evaluate(args.env, args.model, split=args.split, n=args.n, batch_size=args.batch_size,
                      device=args.device, do_sample=args.sample, seed=args.seed, **env_kwargs)
    print(f"\n{args.env} ({args.split}, {len(result.records)} items, model {args.model}, {result.seconds:.1f} s)")
    for name, value in result.metrics.items():
        print(f"  {name:<12} {value:.4f}")
    print("\nsamples:")
    for record in result.records[: args.show]:
        print(f"  source:     {record['source'][:200]!r}")
        print(f"  generation: {record['generation']!r}")
        print(f"  reference:  {record['references'][0]!r}\n")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"env": args.env, "split": args.split, "model": str(args.model), "metrics": result.metrics,
                   "records": result.records, "seconds": result.seconds}
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
        tmp.replace(path)
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textgym", description="RL environments for language models on real text tasks")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="table of every registered environment id").set_defaults(func=_cmd_list)

    ev = sub.add_parser("eval", help="score a model on an environment (metrics table and samples)")
    ev.add_argument("--env", default="textgym/Generation-v0", help="registered id (default: %(default)s)")
    ev.add_argument("--model", default="smollm2-135m", help="model alias, folder or hub id (default: %(default)s)")
    ev.add_argument("--split", default="test", choices=("train", "validation", "test"))
    ev.add_argument("--n", type=int, default=32, help="number of items (default: %(default)s)")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--max-new-tokens", type=int, default=None)
    ev.add_argument("--data-dir", default=None, help="data folder (default: $TEXTGYM_DATA_DIR)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--show", type=int, default=3, help="sample generations to print")
    ev.add_argument("--out", default=None, help="write metrics and records as JSON here")
    ev.set_defaults(func=_cmd_eval)
    from textgym.rlhf.cli import add_rlhf_commands  # cheap: torch loads only when a command runs
    add_rlhf_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        print(f"textgym {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
