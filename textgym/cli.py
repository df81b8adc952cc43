"""The ``textgym`` command line: a thin layer over the Python API.

``textgym list`` (the registered ids), ``textgym train`` (PPO / A2C / supervised; imports the
``agents`` package only when it runs, so ``import textgym`` never does), ``textgym eval`` (metrics,
diversity and perplexity of a model or checkpoint) and ``textgym rlhf ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

CHECKPOINT_META = "textgym_checkpoint.json"  # written by agents.checkpoints.save_checkpoint
EVAL_METRICS = ("bleu", "rouge1", "rouge2", "rougeL")


def format_table(rows: list[list[str]]) -> str:
    """Left-aligned columns with a rule under the header row.

    >>> print(format_table([["a", "bb"], ["ccc", "d"]]))
    a    bb
    ---  --
    ccc  d
    """
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    import textgym

    rows = [["id", "family", "dataset", "default reward", "obs length", "max new tokens"]]
    for env in textgym.ENVS:
        preset = _env_class(env.entry_point).PRESETS[env.dataset]
        reward = preset.reward if isinstance(preset.reward, str) else json.dumps(preset.reward)
        rows.append([env.env_id, env.family, env.dataset, reward,
                     str(preset.max_prompt_length + preset.max_new_tokens), str(preset.max_new_tokens)])
    print(format_table(rows))
    print("\naction space: Discrete(len(tokenizer)); observation: Dict(input_ids, attention_mask), int64")
    return 0


def _env_class(entry_point: str):
    import importlib

    module, _, name = entry_point.partition(":")
    return getattr(importlib.import_module(module), name)


def _check_env_id(env_id: str) -> None:
    import gymnasium as gym

    import textgym

    if env_id not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}; registered textgym ids: {[e.env_id for e in textgym.ENVS]}")


# --- eval ----------------------------------------------------------------------------------
def _eval_model(args: argparse.Namespace) -> tuple[str, str]:
    """(model to evaluate, base model for perplexity) from --checkpoint / --model / --base-model."""
    if args.checkpoint:
        path = Path(args.checkpoint).expanduser()
        if not (path / "config.json").is_file():
            hint = f"; did you mean {path / 'final'}?" if (path / "final" / "config.json").is_file() else ""
            what = "does not exist" if not path.exists() else "is not a model checkpoint (no config.json)"
            raise FileNotFoundError(f"checkpoint {path} {what}{hint}")
        meta_file = path / CHECKPOINT_META
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        return str(path), args.base_model or meta.get("base_model") or str(path)
    model = args.model or "smollm2-135m"
    return model, args.base_model or model


def eval_metrics(env_id: str, extra: Sequence[str] | None = None) -> list[str]:
    """The metrics every evaluation reports: BLEU, ROUGE-1/2/L, the id's preset metrics, and ``extra``."""
    import textgym

    info = next((e for e in textgym.ENVS if e.env_id == env_id), None)
    preset = _env_class(info.entry_point).PRESETS[info.dataset].metrics if info else ()
    return list(dict.fromkeys([*EVAL_METRICS, *preset, *(extra or [])]))


def _cmd_eval(args: argparse.Namespace) -> int:
    from textgym.evaluation import evaluate

    _check_env_id(args.env)
    model, base_model = _eval_model(args)
    env_kwargs: dict[str, Any] = {"metrics": eval_metrics(args.env, args.metrics)}
    for key in ("data_dir", "max_new_tokens", "reward"):
        if getattr(args, key):
            env_kwargs[key] = getattr(args, key)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
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
    out = Path(args.out) if args.out else Path("runs") / "eval" / f"{_slug(model)}-{_slug(args.env)}-{args.split}.json"
    payload = {"env": args.env, "split": args.split, "model": str(model), "base_model": base_model,
               "metrics": metrics, "records": result.records, "seconds": result.seconds}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text).strip("/").replace("textgym/", ""))[-60:]


# --- train ---------------------------------------------------------------------------------
_TRAIN_FLAGS = {"env": "env.id", "algo": "algo", "model": "model", "init": "init", "total_timesteps": "total_timesteps",
                "num_envs": "num_envs", "device": "device", "seed": "seed", "out": "out", "threads": "threads"}


def _cmd_train(args: argparse.Namespace) -> int:
    from agents.config import load_config, parse_set  # lazy: `import textgym` must not import agents
    from agents.train import run_training

    overrides = parse_set(args.set or [])
    overrides.update({key: getattr(args, flag) for flag, key in _TRAIN_FLAGS.items() if getattr(args, flag) is not None})
    if args.no_progress:
        overrides["progress_bar"] = False
    config = load_config(args.config, overrides)
    _check_env_id(config.env.id)
    run_training(config)
    return 0


def _add_train(sub: Any) -> None:
    tr = sub.add_parser("train", help="train PPO / A2C / supervised (sft) on an environment",
                        description="Train a language model on a textgym environment. With no arguments: PPO on "
                        "textgym/Generation-v0 with the offline SmolLM2-135M-Instruct, a few minutes on a CPU. "
                        "Precedence: defaults < --config file < --set < the flags below.")
    tr.add_argument("--env", help="registered id (default: textgym/Generation-v0)")
    tr.add_argument("--algo", choices=("ppo", "a2c", "sft"), help="default: ppo")
    tr.add_argument("--model", help="base model alias, folder or hub id (default: smollm2-135m)")
    tr.add_argument("--init", help="start from this checkpoint folder (e.g. an sft run's final/)")
    tr.add_argument("--config", help="YAML file loaded into agents.config.TrainConfig (unknown keys are errors)")
    tr.add_argument("--total-timesteps", type=int, help="environment steps (generated tokens) for ppo/a2c")
    tr.add_argument("--num-envs", type=int, help="parallel episodes")
    tr.add_argument("--device", help="auto, cpu, cuda, ...")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--out", help="output folder (default: runs/<algo>-<env>-seed<seed>)")
    tr.add_argument("--threads", type=int, help="CPU threads (default: the idle cores)")
    tr.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config field, e.g. ppo.n_epochs=4")
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")
    tr.set_defaults(func=_cmd_train)


def _add_eval(sub: Any) -> None:
    ev = sub.add_parser("eval", help="score a model or checkpoint on an environment (metrics table, samples, JSON)")
    ev.add_argument("--env", default="textgym/Generation-v0", help="registered id (default: %(default)s)")
    which = ev.add_mutually_exclusive_group()
    which.add_argument("--model", default=None, help="model alias, folder or hub id (default: smollm2-135m)")
    which.add_argument("--checkpoint", default=None, help="a checkpoint folder written by textgym train")
    ev.add_argument("--base-model", default=None, help="judge of perplexity (default: the checkpoint's base model)")
    ev.add_argument("--split", default="test", help="train, validation or test, optionally sliced: validation[:700], train[90%%:]")
    ev.add_argument("--n", type=int, default=32, help="number of items (default: %(default)s)")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--max-new-tokens", type=int, default=None)
    ev.add_argument("--reward", default=None, help="reward name (default: the id's)")
    ev.add_argument("--metrics", nargs="*", help="extra metrics, e.g. chrf or a learned reward rm:NAME")
    ev.add_argument("--data-dir", default=None, help="data folder (default: $TEXTGYM_DATA_DIR)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--threads", type=int, default=None)
    ev.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--no-perplexity", action="store_true", help="skip the perplexity under the base model")
    ev.add_argument("--show", type=int, default=3, help="sample generations to print")
    ev.add_argument("--out", default=None, help="JSON file (default: runs/eval/<model>-<env>-<split>.json)")
    ev.set_defaults(func=_cmd_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textgym", description="RL environments for language models on real text tasks")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="table of every registered environment id").set_defaults(func=_cmd_list)
    _add_train(sub)
    _add_eval(sub)
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
