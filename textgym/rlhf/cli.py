"""``textgym rlhf ...``: a thin command-line layer over :mod:`textgym.rlhf`."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from textgym.argtypes import float_in, int_in, port
from textgym.catalogue import MAX_TOKENS, SPLITS

__all__ = ["add_rlhf_commands"]


def _print_metrics(metrics: dict[str, Any], where: Any) -> None:
    for key, value in metrics.items():
        print(f"  {key:<40} {value:.4f}" if isinstance(value, float) else f"  {key:<40} {value}")
    print(f"saved {where}")


def _fit_config(args: argparse.Namespace):
    from textgym.rlhf.train import FitConfig

    return FitConfig(n_epochs=args.n_epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
                     train_encoder=args.train_encoder, seed=args.seed)


def _cmd_collect(args: argparse.Namespace) -> int:
    from textgym.rlhf.collect import sample_pairs, serve
    from textgym.rlhf.store import PreferenceStore

    from textgym import check_env_id

    check_env_id(args.env)
    store = PreferenceStore(args.db)
    if args.n > 0:
        kwargs = {"data_dir": args.data_dir} if args.data_dir else {}
        if args.max_new_tokens is not None:  # 0 would be a value, not "unset" (and is refused by its type)
            kwargs["max_new_tokens"] = args.max_new_tokens
        start = time.perf_counter()
        ids = sample_pairs(args.env, args.policy, store, args.n, split=args.split, temperature=args.temperature,
                           seed=args.seed, device=args.device, **kwargs)
        print(f"sampled {len(ids)} pairs from {args.policy} on {args.env} in {time.perf_counter() - start:.1f} s")
    print(f"{args.db}: {store.progress()}")
    if not args.no_serve:
        serve(store, args.port)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from textgym.rlhf.collect import serve
    from textgym.rlhf.store import PreferenceStore

    store = PreferenceStore(args.db)
    print(f"{args.db}: {store.progress()}")
    serve(store, args.port)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from textgym.rlhf.store import PreferenceStore

    store = PreferenceStore(args.db)
    for path in args.jsonl:
        read, added = store.import_jsonl(path)
        print(f"{path}: {read} pairs read, {added} new answers, {read - added} skipped (already imported)")
    print(f"{args.db}: {store.progress()}")
    return 0


def _cmd_train_rm(args: argparse.Namespace) -> int:
    from textgym.io import check_writable_dir
    from textgym.rlhf.train import train_reward_model

    check_writable_dir(args.out, "--out")
    metrics = train_reward_model(args.db, args.out, encoder=args.encoder, input=args.input,
                                 max_length=args.max_length, head_hidden=args.head_hidden,
                                 heldout_fraction=args.heldout, config=_fit_config(args), device=args.device)
    _print_metrics(metrics, args.out)
    print(f"use it as a reward: gym.make(ENV_ID, reward='rm:{args.out}')")
    return 0


def _cmd_train_sentiment(args: argparse.Namespace) -> int:
    from textgym.rlhf.sentiment import sentiment_model_path, train_sentiment_model

    from textgym.io import check_writable_dir

    out = check_writable_dir(args.out or sentiment_model_path(), "--out")
    start = time.perf_counter()
    metrics = train_sentiment_model(args.data_dir, out, encoder=args.encoder, max_length=args.max_length,
                                    head_hidden=args.head_hidden, heldout_fraction=args.heldout, limit=args.limit,
                                    config=_fit_config(args), device=args.device)
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    _print_metrics(metrics, out)
    if args.json:
        print(json.dumps(metrics))
    return 0


def _cmd_build_sentiment(args: argparse.Namespace) -> int:
    from textgym.rlhf.builtin_sentiment import build_sentiment_model

    start = time.perf_counter()
    metrics = build_sentiment_model(args.data_dir, args.out, bits=args.bits, windows=args.windows, seed=args.seed,
                                    limit=args.limit)
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    _print_metrics({k: v for k, v in metrics.items() if k != "path"}, metrics["path"])
    return 0


def _train_options(p: argparse.ArgumentParser, n_epochs: int, max_length: int) -> None:
    p.add_argument("--encoder", default="all-MiniLM-L6-v2", help="encoder name or folder (default: %(default)s)")
    p.add_argument("--max-length", type=int_in(1, MAX_TOKENS), default=max_length, help="tokens per input (default: %(default)s)")
    p.add_argument("--head-hidden", type=int_in(0, 65536), default=0, help="hidden width of the head; 0: linear")
    p.add_argument("--heldout", type=float_in(0, 1, high_open=True), default=0.1, help="held-out share for the report (default: %(default)s)")
    p.add_argument("--n-epochs", type=int_in(1), default=n_epochs)
    p.add_argument("--learning-rate", type=float_in(0, low_open=True), default=3e-3)
    p.add_argument("--batch-size", type=int_in(1), default=64)
    p.add_argument("--train-encoder", action="store_true", help="fine-tune the encoder too (slow on a CPU)")
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    p.add_argument("--device", default="auto")


def add_rlhf_commands(subparsers: Any) -> None:
    """Add ``rlhf collect|serve|import|train-rm|train-sentiment|build-sentiment`` to a ``textgym`` parser."""
    rlhf = subparsers.add_parser("rlhf", help="collect human preferences and train reward models")
    sub = rlhf.add_subparsers(dest="rlhf_command", required=True)

    col = sub.add_parser("collect", help="sample pairs from a policy and serve the labelling page")
    col.add_argument("--env", default="textgym/Generation-v0", help="registered id (default: %(default)s)")
    col.add_argument("--policy", default=None, help="model name or folder (default: $TEXTGYM_DEFAULT_MODEL, else smollm2-135m)")
    col.add_argument("--db", default="preferences.sqlite", help="preference store (default: %(default)s)")
    col.add_argument("--n", type=int_in(0), default=32, help="new prompts to sample; 0: only serve (default: %(default)s)")
    col.add_argument("--split", default="train", choices=SPLITS)
    col.add_argument("--data-dir", default=None, help="data folder (default: $TEXTGYM_DATA_DIR)")
    col.add_argument("--max-new-tokens", type=int_in(1, MAX_TOKENS), default=None)
    col.add_argument("--temperature", type=float_in(0, low_open=True), default=1.0)
    col.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    col.add_argument("--device", default="auto")
    col.add_argument("--port", type=port, default=0, help="port on 127.0.0.1 (default: a free one)")
    col.add_argument("--no-serve", action="store_true", help="only sample; label later with `rlhf serve`")
    col.set_defaults(func=_cmd_collect)

    srv = sub.add_parser("serve", help="serve the labelling page for a store (resumes where it stopped)")
    srv.add_argument("--db", default="preferences.sqlite")
    srv.add_argument("--port", type=port, default=0, help="port on 127.0.0.1 (default: a free one)")
    srv.set_defaults(func=_cmd_serve)

    imp = sub.add_parser("import", help="load preference pairs from JSONL (prompt, chosen, rejected)")
    imp.add_argument("jsonl", nargs="+")
    imp.add_argument("--db", default="preferences.sqlite")
    imp.set_defaults(func=_cmd_import)

    trm = sub.add_parser("train-rm", help="train a reward model on the stored preferences")
    trm.add_argument("--db", default="preferences.sqlite")
    trm.add_argument("--out", required=True, help="folder to save the reward model to")
    trm.add_argument("--input", default="pair", choices=("pair", "generation"),
                     help="score (prompt, generation) pairs or the generation alone (default: %(default)s)")
    _train_options(trm, n_epochs=60, max_length=128)
    trm.set_defaults(func=_cmd_train_rm)

    sen = sub.add_parser("train-sentiment", help="train the IMDB sentiment reward model (rm:imdb-sentiment)")
    sen.add_argument("--data-dir", default=None, help="folder with imdb/ and sentiment/ (default: $TEXTGYM_DATA_DIR)")
    sen.add_argument("--out", default=None, help="folder (default: <textgym cache>/reward_models/imdb-sentiment)")
    sen.add_argument("--limit", type=int_in(1), default=None, help="at most this many texts per source (quick runs)")
    sen.add_argument("--json", action="store_true", help="also print the metrics as one JSON line")
    _train_options(sen, n_epochs=40, max_length=128)
    sen.set_defaults(func=_cmd_train_sentiment)

    bsen = sub.add_parser("build-sentiment", help="rebuild the packaged sentiment model (reward 'sentiment', IMDB-v0's "
                          "default): hashed n-gram logistic regression; prints held-out accuracy")
    bsen.add_argument("--data-dir", default=None, help="folder with imdb/ and sentiment/ (default: $TEXTGYM_DATA_DIR)")
    bsen.add_argument("--out", default=None, help=".npz file (default: the packaged textgym/rewards/weights/sentiment.npz)")
    bsen.add_argument("--bits", type=int_in(8, 20), default=18, help="2**bits hash buckets (default: %(default)s)")
    bsen.add_argument("--windows", type=int_in(0), default=3, help="random 40-word windows per review (default: %(default)s)")
    bsen.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    bsen.add_argument("--limit", type=int_in(1), default=None, help="at most this many texts per source (quick runs)")
    bsen.set_defaults(func=_cmd_build_sentiment)
