"""How much of a rollout's sampling time is the prompt's prefill, and what encoding each prompt once per
group saves (``group_size=k``: the k envs of a group share a prompt and its KV cache).

    python benchmarks/group_prefill.py --model smollm2-135m --prompt-length 400 --new-tokens 48 --threads 1

Times, side by side in one process on pinned threads (median of ``--repeats``): the prefill of all
``N`` prompts, the prefill of one prompt per group, and a whole fast-path rollout
(``agents.rollout.generate_episodes``) with the prefill shared and not shared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import build, timed  # noqa: E402  (run as a script, beside throughput.py)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="'config' or a model name (see throughput.py)")
    parser.add_argument("--tokenizer", default=None)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16, help="envs (a multiple of --group-size)")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--prompt-length", type=int, default=400, help="prompt words (about as many tokens)")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--reward", default="bleu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, required=True, help="torch CPU threads, pinned for every phase")
    args = parser.parse_args(argv)
    args.precision, args.lora_r = "fp32", 0
    torch.set_num_threads(args.threads)

    from agents.policies import TransformerPolicy
    from agents.rollout import generate_episodes
    from agents.policies import position_ids
    from textgym.vector import TokenVecEnv

    device = torch.device("cpu")
    env, policy_kwargs = build(args, device)
    env.group_size = args.group_size  # the template env: every prompt goes to k consecutive envs
    venv = TokenVecEnv(env, args.batch, device=device)
    policy = TransformerPolicy(venv.observation_space, venv.action_space, lambda _: 0.0, **policy_kwargs)
    policy.set_training_mode(False)
    venv.reset_all(seed=0)
    ids, mask = venv.input_ids[:, : venv.prompt_length], venv.attention_mask[:, : venv.prompt_length]
    trunk, k = policy.lm.base_model, args.group_size

    def prefill(rows: slice) -> int:
        with torch.no_grad():
            trunk(input_ids=ids[rows], attention_mask=mask[rows], position_ids=position_ids(mask[rows]), use_cache=True)
        return int(mask[rows].sum())

    def rollout(share: bool) -> int:
        return generate_episodes(policy, venv, share_prefill=share).num_steps

    rows = {"prefill, every env": timed(lambda: prefill(slice(None)), args.repeats, device)[0],
            "prefill, one per group": timed(lambda: prefill(slice(None, None, k)), args.repeats, device)[0],
            "rollout, prefill per env": timed(lambda: rollout(False), args.repeats, device)[0],
            "rollout, prefill per group": timed(lambda: rollout(True), args.repeats, device)[0]}
    result = {"model": args.model, "envs": args.batch, "group_size": k, "prompt_tokens": int(mask.sum(-1).max()),
              "new_tokens": args.new_tokens, "threads": torch.get_num_threads(), "seconds": rows,
              "prefill_share_of_rollout": rows["prefill, every env"] / rows["rollout, prefill per env"],
              "rollout_speedup": rows["rollout, prefill per env"] / rows["rollout, prefill per group"]}
    for name, seconds in rows.items():
        print(f"{name:28s} {seconds:8.2f} s")
    print(f"prefill is {result['prefill_share_of_rollout']:.0%} of a rollout; sharing it per group: "
          f"{result['rollout_speedup']:.2f}x faster rollouts")
    print("RESULT " + json.dumps(result))
    return result


if __name__ == "__main__":
    main()
