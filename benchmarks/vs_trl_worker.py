"""The TRL side of benchmarks/vs_trl.py: run with the Python of a TRL environment, never imported by textgym.

    /work/venvs/trl112/bin/python benchmarks/vs_trl_worker.py ppo SPEC.json
    /work/venvs/trl-latest/bin/python benchmarks/vs_trl_worker.py grpo SPEC.json

``SPEC.json`` is written by vs_trl.py (model folder, prompts, lengths, settings). Prints one line
``RESULT {"iteration_seconds": [...], ...}``. Written against TRL's public API: ``PPOConfig`` /
``PPOTrainer`` (``trl.experimental.ppo`` in 1.12) and ``GRPOConfig`` / ``GRPOTrainer``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any

import torch
from datasets import Dataset
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer,
                          TrainerCallback)


class IterationClock(TrainerCallback):
    """Wall-clock seconds of every optimisation step (one PPO / GRPO iteration here)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.last = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.seconds.append(now - self.last)
        self.last = now


def common_args(spec: dict[str, Any], out: str) -> dict[str, Any]:
    return dict(output_dir=out, learning_rate=spec["learning_rate"], report_to=[], save_strategy="no",
                logging_steps=10_000, use_cpu=not torch.cuda.is_available(), seed=0, dataloader_num_workers=0,
                bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def run_ppo(spec: dict[str, Any], tokenizer: Any, out: str) -> IterationClock:
    try:
        from trl.experimental.ppo import PPOConfig, PPOTrainer
    except ImportError:  # TRL releases before PPO moved to experimental
        from trl import PPOConfig, PPOTrainer
    n = spec["warmup"] + spec["iterations"]
    config = PPOConfig(**common_args(spec, out), per_device_train_batch_size=spec["batch"], num_mini_batches=1,
                       gradient_accumulation_steps=1, num_ppo_epochs=1, total_episodes=spec["batch"] * n,
                       response_length=spec["new_tokens"], temperature=1.0, kl_coef=spec["kl_coef"],
                       local_rollout_forward_batch_size=spec["batch"], num_sample_generations=0,
                       stop_token=None)  # no stop token: every response has response_length tokens
    policy = AutoModelForCausalLM.from_pretrained(spec["model_dir"])
    ref = AutoModelForCausalLM.from_pretrained(spec["model_dir"])
    value = AutoModelForSequenceClassification.from_pretrained(spec["model_dir"], num_labels=1)
    # textgym's reward is BLEU (no model); TRL's PPO needs a reward *model*, so give it a tiny one
    # (2 layers, width 64) whose cost is negligible, rather than a second 135M network.
    small = AutoConfig.from_pretrained(spec["model_dir"], num_labels=1, hidden_size=64, intermediate_size=128,
                                       num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    reward = AutoModelForSequenceClassification.from_config(small)
    for model in (policy, ref, value, reward):
        model.config.pad_token_id = spec["pad_token_id"]
    data = Dataset.from_dict({"input_ids": spec["prompt_ids"]})
    clock = IterationClock()
    trainer = PPOTrainer(args=config, processing_class=tokenizer, model=policy, ref_model=ref, reward_model=reward,
                         train_dataset=data, value_model=value, callbacks=[clock])
    clock.last = time.perf_counter()
    trainer.train()
    return clock


def run_grpo(spec: dict[str, Any], tokenizer: Any, out: str) -> IterationClock:
    from trl import GRPOConfig, GRPOTrainer

    n = spec["warmup"] + spec["iterations"]
    config = GRPOConfig(**common_args(spec, out), per_device_train_batch_size=spec["batch"], num_generations=2,
                        gradient_accumulation_steps=1, num_iterations=1, max_steps=n,
                        max_completion_length=spec["new_tokens"], temperature=1.0, beta=spec["kl_coef"],
                        generation_kwargs={"min_new_tokens": spec["new_tokens"]})  # no early stop

    def reward_length(completions: list[str], **kwargs: Any) -> list[float]:
        return [len(c) / 100.0 for c in completions]  # any cheap reward: GRPO needs reward differences

    policy = AutoModelForCausalLM.from_pretrained(spec["model_dir"])
    data = Dataset.from_dict({"prompt": spec["prompt_texts"]})
    clock = IterationClock()
    trainer = GRPOTrainer(model=policy, reward_funcs=reward_length, args=config, train_dataset=data,
                          processing_class=tokenizer, callbacks=[clock])
    clock.last = time.perf_counter()
    trainer.train()
    return clock


def main(system: str, spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"], padding_side="left")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = spec["pad_token_id"]
    with tempfile.TemporaryDirectory() as out:
        clock = (run_ppo if system == "ppo" else run_grpo)(spec, tokenizer, out)
    import trl

    print("RESULT " + json.dumps({"iteration_seconds": clock.seconds, "trl": trl.__version__,
                                  "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("ppo", "grpo"):
        sys.exit("usage: vs_trl_worker.py {ppo,grpo} SPEC.json")
    main(sys.argv[1], sys.argv[2])
