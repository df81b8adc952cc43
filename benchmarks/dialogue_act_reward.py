"""Build the packaged dialogue-act model of DailyDialog (``reward="dialogue_act"``) and report its accuracy.

Run: ``TEXTGYM_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/dialogue_act_reward.py``
(about a minute on one core; ``--out FILE`` writes elsewhere than the packaged
``textgym/rewards/weights/dialogue_act.npz``).

Data: the DailyDialog items of a data folder laid out as ``shared/data`` (one item per turn ``i >= 1``
of a dialogue, its reference turn labelled with an act by ``dialogues_action.txt``):

* ``train`` (``dialogues_text_En.txt``): the dialogues are split at random (``--seed``, default 0) into
  a **dev** slice of ``--dev-fraction`` (10 %) of the dialogues, which picks the hash size ``bits``
  and the L2 strength from the grids below, and the rest, which is trained on; the chosen setting
  is then refitted on all train dialogues;
* ``validation`` (``en_dev_human.txt``): **held out**, never trained on nor used to choose anything;
  its accuracy is the one reported (beside the majority-class rate).

Turns without an act (559 train turns whose dialogue's act line does not align with its turns) are
left out. The model is :mod:`textgym.rewards.dialogue_act`'s: a softmax regression over the hashed
features of the reference turn alone, fitted by full-batch L-BFGS on the mean cross-entropy plus
``l2 / 2 * |W|^2``, starting from zeros (so the fit itself is deterministic; the seed only draws the
dev dialogues). The weights are stored as float16 and the reported accuracies use the stored values.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

Example = tuple[str, int]  # (reference turn, act index)


def act_examples(samples: Sequence[Any]) -> list[Example]:
    """``(reference turn, act index)`` of every item that has an act."""
    from textgym.rewards.dialogue_act import act_index

    return [(s.references[0], act_index(s.meta["act"])) for s in samples if s.meta.get("act") is not None]


def split_dialogues(samples: Sequence[Any], dev_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """``(train, dev)`` items, the dev ones being those of a seeded random ``dev_fraction`` of the dialogues."""
    dialogues = sorted({s.meta["dialogue"] for s in samples})
    dev = set(random.Random(seed).sample(dialogues, round(dev_fraction * len(dialogues))))
    return [s for s in samples if s.meta["dialogue"] not in dev], [s for s in samples if s.meta["dialogue"] in dev]


def fit(examples: Sequence[Example], bits: int, l2: float, max_iter: int) -> tuple[Any, Any]:
    """Softmax regression on hashed binary features; returns ``(weights (4, 2**bits), bias (4,))`` tensors."""
    import torch

    from textgym.rewards.dialogue_act import ACTS, act_features

    feats = [act_features(t, bits) for t, _ in examples]
    flat = torch.tensor([f for fs in feats for f in fs], dtype=torch.long)  # (nnz,)
    offsets = torch.tensor([0] + [len(fs) for fs in feats[:-1]], dtype=torch.long).cumsum(0)  # (N,)
    labels = torch.tensor([y for _, y in examples])  # (N,)
    w = torch.zeros(1 << bits, len(ACTS), requires_grad=True)  # (2**bits, 4)
    b = torch.zeros(len(ACTS), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = torch.nn.functional.embedding_bag(flat, w, offsets, mode="sum") + b  # (N, 4)
        loss = torch.nn.functional.cross_entropy(logits, labels) + 0.5 * l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().T.contiguous(), b.detach()


def accuracy(weights: Any, bias: Any, examples: Sequence[Example], bits: int) -> float:
    """Share of examples whose most likely act is their label (weights as given, no rounding)."""
    from textgym.rewards.dialogue_act import act_features

    hits = sum(int((bias + weights[:, act_features(t, bits)].sum(1)).argmax()) == y for t, y in examples)
    return hits / len(examples)


def build(data_dir: str | None, out: str | Path | None = None, *, bits_grid: Sequence[int] = (14, 15, 16),
          l2_grid: Sequence[float] = (1e-5, 3e-5, 1e-4, 3e-4), dev_fraction: float = 0.1, seed: int = 0,
          max_iter: int = 150, limit: int | None = None) -> dict[str, Any]:
    """Choose ``bits`` and L2 on the dev dialogues, refit on all train, save, and return the metrics.

    Args:
        data_dir: Data folder (default: ``$TEXTGYM_DATA_DIR``).
        out: Where to write the ``.npz`` (default: the packaged weights).
        bits_grid: Hash sizes tried (16: 4 x 65,536 float16 weights, 512 KB before compression).
        l2_grid: L2 strengths tried.
        dev_fraction: Share of the train dialogues in the dev slice.
        seed: Seed of the dev dialogues.
        max_iter: L-BFGS iterations per fit.
        limit: Use at most this many train and held-out items (quick runs and tests).

    Raises:
        ValueError: A bits value outside [8, 16] (the package keeps under 1 MB), an empty or
            non-positive grid, or a dev fraction outside (0, 1).
    """
    from textgym.data import load_samples
    from textgym.rewards.dialogue_act import ACTS, DIALOGUE_ACT_WEIGHTS, save_act_weights

    if not bits_grid or any(isinstance(b, bool) or not isinstance(b, int) or not 8 <= b <= 16 for b in bits_grid):
        raise ValueError(f"bits_grid must hold integers in [8, 16] (16: 512 KB of float16 weights), got {bits_grid!r}")
    if not l2_grid or any(not l2 > 0 for l2 in l2_grid):
        raise ValueError(f"l2_grid must be a non-empty list of positive numbers, got {l2_grid!r}")
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction!r}")
    samples = load_samples("dailydialog", "train", data_dir)
    held = act_examples(load_samples("dailydialog", "validation", data_dir))[:limit]
    train_items, dev_items = split_dialogues(samples[:limit] if limit else samples, dev_fraction, seed)
    train, dev = act_examples(train_items), act_examples(dev_items)
    scores = {}
    for bits in bits_grid:
        for l2 in l2_grid:
            scores[(bits, l2)] = accuracy(*fit(train, bits, l2, max_iter), dev, bits)
            print(f"dev accuracy bits={bits} l2={l2:g}: {scores[(bits, l2)]:.4f}", file=sys.stderr, flush=True)
    bits, l2 = max(scores, key=lambda k: (scores[k], -k[0]))  # ties: the smaller model
    weights, bias = fit(train + dev, bits, l2, max_iter)
    weights = weights.half().float()  # report what the stored model scores
    counts = Counter(y for _, y in held)
    metrics: dict[str, Any] = {
        "heldout_accuracy": accuracy(weights, bias, held, bits),
        "heldout_majority_rate": max(counts.values()) / len(held),
        "heldout_acts": {ACTS[k]: counts[k] for k in sorted(counts)},
        "n_heldout": len(held), "n_train": len(train) + len(dev), "n_dev": len(dev),
        "bits": bits, "l2": l2, "dev_accuracy": {f"bits={b} l2={v:g}": s for (b, v), s in scores.items()},
        "seed": seed, "dev_fraction": dev_fraction, "max_iter": max_iter,
        "heldout": "dailydialog validation (en_dev_human.txt)", "dev": f"{dev_fraction:g} of the train dialogues",
    }
    path = save_act_weights(out or DIALOGUE_ACT_WEIGHTS, weights.numpy(), bias.numpy(), metrics)
    metrics["path"], metrics["bytes"] = str(path), Path(path).stat().st_size
    return metrics


def scoring_ms(path: str | Path, texts: Sequence[str]) -> float:
    """Median milliseconds of scoring one batch of ``texts`` with the saved model (20 calls)."""
    from textgym.rewards.base import References
    from textgym.rewards.dialogue_act import DialogueActReward

    reward = DialogueActReward(path)
    refs = [References([""], {"act": 1})] * len(texts)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        reward([""] * len(texts), list(texts), refs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="data folder (default: $TEXTGYM_DATA_DIR)")
    parser.add_argument("--out", default=None, help="output .npz (default: the packaged weights)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev dialogues (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many train and held-out items (quick runs)")
    args = parser.parse_args(argv)
    metrics = build(args.data_dir, args.out, seed=args.seed, limit=args.limit)
    from textgym.data import load_samples

    batch = [s.references[0] for s in load_samples("dailydialog", "validation[:32]", args.data_dir)]
    metrics["batch32_ms_median"] = scoring_ms(metrics["path"], batch)
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
