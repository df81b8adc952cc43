"""Held-out accuracy, size and one-core scoring time of the packaged sentiment model (IMDB-v0's reward).

Run: ``TEXTGYM_DATA_DIR=../shared/data python benchmarks/sentiment_reward.py``. The held-out slice is
``imdb train[90%:]`` (never trained on, see :mod:`textgym.rlhf.builtin_sentiment`); the timing is
one batch of 32 IMDB-v0 continuations, median of 20 calls, with ``torch.set_num_threads(1)``.
"""

from __future__ import annotations

import statistics
import time


def main() -> None:
    import torch

    from textgym.rewards.sentiment import SENTIMENT_WEIGHTS, SentimentReward
    from textgym.rlhf.builtin_sentiment import _continuations, imdb_slices
    from textgym.rlhf.sentiment import load_sentiment_corpus

    torch.set_num_threads(1)
    held = imdb_slices(None, load_sentiment_corpus(None)["imdb"])["heldout"]
    reward = SentimentReward()
    sets = {"reviews": [(t, y) for _, t, y in held], "continuations": _continuations(held)}
    for name, items in sets.items():
        probs = reward([""] * len(items), [t for t, _ in items], [[""]] * len(items))
        accuracy = sum((p > 0.5) == bool(y) for p, (_, y) in zip(probs, items)) / len(items)
        print(f"held-out {name}: {accuracy:.4f} on {len(items)}")
    batch = [t for t, _ in sets["continuations"][:32]]
    times = []
    for _ in range(20):
        start = time.perf_counter()
        reward([""] * 32, batch, [[""]] * 32)
        times.append(time.perf_counter() - start)
    print(f"weights: {SENTIMENT_WEIGHTS.stat().st_size} bytes; batch of 32 on 1 thread: median "
          f"{statistics.median(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
