"""Time one random-action episode of every registered id (env overhead only, no model).

    python benchmarks/random_episodes.py --data-dir ../shared/data [--tokenizer PATH] [--episodes 5]

Prints, per id, its spaces and the median wall time of an episode (reset + steps until the end,
rewards and end-of-episode metrics included); random tokens rarely hit EOS, so most episodes run
to ``max_new_tokens``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym

import textgym

# Splits whose files ship in shared/data (the loaders accept every split of SOURCES.md).
SHIPPED_SPLIT = {"commongen": "validation", "cnn_dailymail": "validation", "samsum": "validation",
                 "dialogsum": "validation", "dailydialog": "validation"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="data folder (default: $TEXTGYM_DATA_DIR)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer name or folder (default: SmolLM2's)")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--reward-mode", default="terminal", choices=("terminal", "dense"))
    args = parser.parse_args()
    results = []
    for info in textgym.ENVS:
        kwargs = {"split": SHIPPED_SPLIT.get(info.dataset, "train"), "reward_mode": args.reward_mode}
        if args.tokenizer:
            kwargs["tokenizer"] = args.tokenizer
        if args.data_dir and not info.dataset.startswith("builtin_"):
            kwargs["data_dir"] = args.data_dir
        if info.dataset == "imdb":
            kwargs["reward"] = "rougeL"  # the learned default needs a trained model; time the env itself
        env = gym.make(info.env_id, **kwargs)
        env.action_space.seed(0)
        times, lengths = [], []
        for episode in range(args.episodes):
            start = time.perf_counter()
            env.reset(seed=episode)
            done, steps = False, 0
            while not done:
                _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                done, steps = terminated or truncated, steps + 1
            times.append(time.perf_counter() - start)
            lengths.append(steps)
        row = {"id": info.env_id, "obs_length": env.observation_space["input_ids"].shape[0],
               "actions": int(env.action_space.n), "median_episode_ms": 1000 * statistics.median(times),
               "median_steps": statistics.median(lengths), "reward": env.unwrapped.reward_fn.name}
        results.append(row)
        print(f"{row['id']:28} obs ({row['obs_length']},) x2 int64  Discrete({row['actions']})  "
              f"{row['median_episode_ms']:7.1f} ms/episode ({row['median_steps']:.0f} steps, {row['reward']})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
