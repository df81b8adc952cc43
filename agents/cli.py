"""``textgym train``: the command lives with the agents; textgym finds it through the
``textgym.commands`` entry-point group (setup.cfg), so the env package never imports the agents."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from agents.settings import ALGOS
from textgym.argtypes import int_in
from textgym.console import OneLineParser
from textgym.threads import THREADS_HELP, parse_threads

_TRAIN_FLAGS = {"env": "env.id", "algo": "algo", "model": "model", "init": "init", "total_timesteps": "total_timesteps",
                "num_envs": "num_envs", "device": "device", "seed": "seed", "out": "out", "threads": "threads",
                "lora_r": "policy.lora.r"}


def build_train_parser(prog: str = "textgym train") -> argparse.ArgumentParser:
    """The ``textgym train`` arguments."""
    tr = OneLineParser(
        prog=prog, description="Train a language model on a textgym environment. With no arguments: PPO on "
        "textgym/Generation-v0 with the offline SmolLM2-135M-Instruct, a few minutes on a CPU. "
        "Precedence: defaults < --config file < --set < the flags below.")
    tr.add_argument("--env", help="registered id (default: textgym/Generation-v0)")
    tr.add_argument("--algo", choices=ALGOS, help="default: ppo")
    tr.add_argument("--model", help="base model alias, folder or hub id (default: smollm2-135m)")
    tr.add_argument("--init", help="start from this checkpoint folder (e.g. an sft run's final/)")
    tr.add_argument("--config", help="YAML file loaded into agents.config.TrainConfig (unknown keys are errors)")
    tr.add_argument("--total-timesteps", type=int_in(1), help="environment steps (generated tokens) for ppo/a2c")
    tr.add_argument("--num-envs", type=int_in(1), help="parallel episodes")
    tr.add_argument("--device", help="auto, cpu, cuda, ...")
    tr.add_argument("--seed", type=int_in(0, 2**32 - 1))
    tr.add_argument("--out", help="output folder (default: runs/<algo>-<env>-seed<seed>)")
    tr.add_argument("--threads", type=parse_threads, help=THREADS_HELP)
    tr.add_argument("--lora-r", type=int_in(0), help="train LoRA adapters of this rank instead of the whole model "
                    "(pip install 'textgym[lora]'); same as --set policy.lora.r=R")
    tr.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config field, e.g. ppo.n_epochs=4")
    tr.add_argument("--no-progress", action="store_true", help="no progress bars")
    return tr


def train_command(argv: Sequence[str]) -> int:
    """Run ``textgym train ARGV``; errors propagate to ``textgym.cli.main``, which prints one line."""
    from agents.config import load_config, parse_set
    from agents.train import run_training
    from textgym.threads import AUTO, resolve_threads

    args = build_train_parser().parse_args(list(argv))
    overrides = parse_set(args.set or [])
    overrides.update({key: getattr(args, flag) for flag, key in _TRAIN_FLAGS.items()
                      if getattr(args, flag) not in (None, AUTO)})
    if args.no_progress:
        overrides["progress_bar"] = False
    config = load_config(args.config, overrides)
    if args.threads is not None or config.threads is None:  # else the config file's number stands
        config.threads, why = resolve_threads(args.threads)
        print(f"textgym train: {config.threads} CPU thread(s) ({why})")
    run_training(config)
    return 0


if __name__ == "__main__":
    # `python -m agents.cli ARGS` runs the textgym program as `textgym train ARGS` (its one-line
    # errors, --debug, --verbose): the program is run, not imported, as agents import no CLI code.
    import runpy

    sys.argv = ["textgym", "train", *sys.argv[1:]]
    runpy.run_module("textgym.cli", run_name="__main__", alter_sys=True)
