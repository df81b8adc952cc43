"""The TRL side of benchmarks/vs_trl.py: run with the Python of a TRL environment, never imported by textgym.

    /work/venvs/trl112/bin/python benchmarks/vs_trl_worker.py ppo SPEC.json
    /work/venvs/trl-latest/bin/python benchmarks/vs_trl_worker.py grpo SPEC.json

``SPEC.json`` is written by vs_trl.py (model folder, prompts, lengths, settings). Prints one line
``RESULT {"iteration_seconds": [...], ...}``.

The learning race (``vs_trl.py --learning``, see :mod:`benchmarks.learning_race`) trains with LoRA on
IMDB prompts against textgym's packaged sentiment scorer and saves the merged model in OUT:

    /work/venvs/trl112/bin/python benchmarks/vs_trl_worker.py ppo-learn SPEC.json OUT
    /work/venvs/trl-latest/bin/python benchmarks/vs_trl_worker.py grpo-learn SPEC.json OUT

It prints ``RESULT {"train_seconds": ..., "episodes": ..., "curve": [...]}``. The scorer is imported from
the textgym checkout named in the spec (its environment needs gymnasium, sacrebleu and rouge-score). Written against TRL's public API: ``PPOConfig`` /
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


# --- the learning race ---------------------------------------------------------------------------
def sentiment_scorer(spec: dict[str, Any]) -> Any:
    """textgym's packaged sentiment reward, as a function of the completions' text."""
    sys.path.insert(0, spec["repo"])
    from textgym.rewards.sentiment import SentimentReward

    reward = SentimentReward()
    return lambda texts: reward([""] * len(texts), list(texts), [[]] * len(texts))


def lora_config(spec: dict[str, Any]) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=spec["lora_r"], lora_alpha=spec["lora_alpha"], target_modules=spec["lora_targets"],
                      lora_dropout=0.0, task_type="CAUSAL_LM")


def learn_args(spec: dict[str, Any], out: str) -> dict[str, Any]:
    return {**common_args({"learning_rate": spec["learning_rate"]}, out), "seed": spec["seed"], "logging_steps": 1}


def learn_ppo(spec: dict[str, Any], tokenizer: Any, out: str) -> tuple[Any, list[list[float]]]:
    """TRL PPO with the sentiment scorer in place of a reward model's forward pass."""
    try:
        from trl.experimental.ppo import PPOConfig, PPOTrainer
        from trl.experimental.ppo import ppo_trainer as ppo_module
    except ImportError:
        from trl import PPOConfig, PPOTrainer
        from trl.trainer import ppo_trainer as ppo_module
    score = sentiment_scorer(spec)
    model_forward = ppo_module.get_reward  # TRL runs the value model through it too

    def get_reward(model: Any, query_responses: torch.Tensor, pad_token_id: int, context_length: int) -> Any:
        if model is not unused_reward_model:
            return model_forward(model, query_responses, pad_token_id, context_length)
        texts = tokenizer.batch_decode(query_responses[:, context_length:], skip_special_tokens=True)
        return None, torch.tensor(score(texts), dtype=torch.float32, device=query_responses.device), None

    ppo_module.get_reward = get_reward  # TRL's PPO takes a reward *model*; this hands it the function
    batch = spec["num_envs"]
    config = PPOConfig(**learn_args(spec, out), per_device_train_batch_size=batch,
                       num_mini_batches=batch // spec["ppo_minibatch_episodes"], gradient_accumulation_steps=1,
                       num_ppo_epochs=spec["ppo_epochs"], total_episodes=spec["episodes"],
                       response_length=spec["new_tokens"], temperature=1.0, kl_coef=spec["kl_coef"],
                       local_rollout_forward_batch_size=batch, num_sample_generations=0, stop_token=None)
    policy = AutoModelForCausalLM.from_pretrained(spec["model_dir"])
    value = AutoModelForSequenceClassification.from_pretrained(spec["model_dir"], num_labels=1)
    # With LoRA the critic is a value head on the frozen base model (as textgym's LoRA critic): only
    # its score layer trains, so one learning rate suits the adapters and the critic alike.
    for parameter in value.base_model.parameters():
        parameter.requires_grad_(False)
    small = AutoConfig.from_pretrained(spec["model_dir"], num_labels=1, hidden_size=64, intermediate_size=128,
                                       num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    unused_reward_model = AutoModelForSequenceClassification.from_config(small)  # never run (see get_reward)
    for model in (policy, value, unused_reward_model):
        model.config.pad_token_id = spec["pad_token_id"]
    data = Dataset.from_dict({"input_ids": spec["prompt_ids"]})
    trainer = PPOTrainer(args=config, processing_class=tokenizer, model=policy, ref_model=None,
                         reward_model=unused_reward_model, train_dataset=data, value_model=value,
                         peft_config=lora_config(spec))
    trainer.train()
    curve = [[(i + 1) * batch, e["objective/scores"]] for i, e in
             enumerate(e for e in trainer.state.log_history if "objective/scores" in e)]
    return trainer.policy_model, curve


def learn_grpo(spec: dict[str, Any], tokenizer: Any, out: str) -> tuple[Any, list[list[float]]]:
    from trl import GRPOConfig, GRPOTrainer

    score = sentiment_scorer(spec)
    batch = spec["num_envs"]
    config = GRPOConfig(**learn_args(spec, out), per_device_train_batch_size=batch,
                        num_generations=spec["group_size"], gradient_accumulation_steps=1, num_iterations=1,
                        max_steps=spec["episodes"] // batch, max_completion_length=spec["new_tokens"],
                        temperature=1.0, beta=spec["kl_coef"], generation_kwargs={"min_new_tokens": spec["new_tokens"]})

    def sentiment(completions: list[str], **kwargs: Any) -> list[float]:
        return score(completions)

    policy = AutoModelForCausalLM.from_pretrained(spec["model_dir"])
    policy.config.pad_token_id = spec["pad_token_id"]
    data = Dataset.from_dict({"prompt": spec["prompt_texts"]})
    trainer = GRPOTrainer(model=policy, reward_funcs=sentiment, args=config, train_dataset=data,
                          processing_class=tokenizer, peft_config=lora_config(spec))
    trainer.train()
    curve = [[(i + 1) * batch, e["reward"]] for i, e in
             enumerate(e for e in trainer.state.log_history if "reward" in e)]
    return trainer.model, curve


def learn(system: str, spec_path: str, out: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"], padding_side="left")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = spec["pad_token_id"]
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        model, curve = (learn_ppo if system == "ppo-learn" else learn_grpo)(spec, tokenizer, scratch)
        seconds = time.perf_counter() - start
    model.merge_and_unload().save_pretrained(out)
    tokenizer.save_pretrained(out)
    import trl

    print("RESULT " + json.dumps({"train_seconds": seconds, "episodes": int(curve[-1][0]) if curve else 0,
                                  "curve": curve, "trl": trl.__version__, "threads": torch.get_num_threads()}),
          flush=True)


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
    if len(sys.argv) == 4 and sys.argv[1] in ("ppo-learn", "grpo-learn"):
        learn(*sys.argv[1:])
    elif len(sys.argv) == 3 and sys.argv[1] in ("ppo", "grpo"):
        main(sys.argv[1], sys.argv[2])
    else:
        sys.exit("usage: vs_trl_worker.py {ppo,grpo} SPEC.json | vs_trl_worker.py {ppo-learn,grpo-learn} SPEC.json OUT")
