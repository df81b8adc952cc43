"""Learnability: each algorithm reaches 0.9 of a known optimum within a stated budget (as SB3's "it learns CartPole").

The tasks (``tests/learnability.py``) run on a config-built tiny llama with a word-level
vocabulary of 16 tokens, on the fast path, one thread. Budgets are in environment steps
(``num_timesteps``: generated tokens, counted as SB3 does) and were set at about 1.5x the worst of
seeds 0-11 (measured with ``benchmarks/learnability.py``); the tests run seed 0, deterministically.
``benchmarks/mutation_check.py`` shows that they fail when an advantage's sign, the baseline, the
KL's sign or the log-probs' alignment is wrong.

The hyperparameters are not the ``textgym train`` defaults (``PPOConfig``/``A2CConfig``, sized
for a pretrained 135M model): a random tiny model needs a learning rate near 3e-3 to move
within a few thousand steps, and no KL penalty where only the task is tested.

To test another algorithm, add a :class:`Learner` to ``LEARNERS`` and its budgets to ``BUDGETS``.
"""

from __future__ import annotations

import pytest
import torch as th
from learnability import TASKS, ContainsWord, Learner, Task, first_token_distributions, frequent_word_model, \
    make_env, regularized_objective, task_tokenizer, tiny_policy_kwargs, train

from agents import A2C, GRPO, NLPO, PPO, RLOO

LEARNERS = {
    # vf_coef=1.0 (PPOConfig: 0.1): a critic that learns fast both speeds length_5 up (median 4.0k steps against
    # 5.3k) and makes a baseline that sees the action hurt, so that bug fails a test.
    "ppo": Learner(PPO, dict(learning_rate=3e-3, n_steps=16, batch_size=128, n_epochs=4, vf_coef=1.0, kl_coef=0.0)),
    # One full-batch step per rollout. Without advantage normalisation (SB3's A2C default) the critic is the
    # only baseline, so a baseline that sees the action fails the bandit test; with it, nothing notices.
    "a2c": Learner(A2C, dict(learning_rate=3e-3, n_steps=8, vf_coef=1.0, normalize_advantage=False, kl_coef=0.0)),
    # The critic-free ones: 4 prompts x 4 completions per rollout.
    "rloo": Learner(RLOO, dict(learning_rate=3e-3, n_steps=8, kl_coef=0.0), group_size=4),
    "grpo": Learner(GRPO, dict(learning_rate=3e-3, n_steps=16, batch_size=128, n_epochs=4, kl_coef=0.0), group_size=4),
    # PPO's settings inside the mask policy's nucleus.
    "nlpo": Learner(NLPO, dict(learning_rate=3e-3, n_steps=16, batch_size=128, n_epochs=4, vf_coef=1.0, kl_coef=0.0,
                               top_mask=0.9, target_update_iterations=2)),
}

# Environment steps within which the mean score of two consecutive rollouts must reach 0.9 of the optimum.
BUDGETS = {
    ("ppo", "target_word"): 3072,  # seeds 0-11: 2048 at worst
    ("ppo", "length_5"): 9216,  # 5904
    ("ppo", "avoid_frequent"): 3072,  # 1792
    ("a2c", "target_word"): 5120,  # 3200
    ("a2c", "length_5"): 40960,  # 29440 (median 13.3k: A2C is noisy here)
    ("a2c", "avoid_frequent"): 3072,  # 1920
    # seeds 0-3 only (measured this way, 1.5x the worst, rounded up to whole rollouts)
    ("rloo", "target_word"): 4864,  # 3200
    ("rloo", "length_5"): 15104,  # 10064
    ("rloo", "avoid_frequent"): 2688,  # 1792
    ("grpo", "target_word"): 3584,  # 2304
    ("grpo", "length_5"): 7424,  # 4928
    ("grpo", "avoid_frequent"): 2816,  # 1792
    ("nlpo", "target_word"): 3072,  # 2048
    ("nlpo", "length_5"): 7168,  # 4704
    ("nlpo", "avoid_frequent"): 2816,  # 1792
}
# The one-token bandit with a KL penalty: steps after which J(pi) >= 0.9 J* (closed-form optimum).
# Seeds 0-11 end at 0.92-0.99 J* (PPO) and 0.99-1.00 J* (A2C).
# GRPO is not in it: standardising each group's returns rescales the reward per prompt, so its fixed point is
# not this optimum (seeds 0-3: 0.52-0.77 J*). NLPO's policy lives inside a 0.9 nucleus that drops the tail
# the optimum keeps, so its bar is 0.8 J* (seeds 0-3: 0.85-0.92 J*; RLOO: 1.00).
KL_COEF, KL_BUDGETS = 0.4, {"ppo": 4096, "a2c": 4096, "rloo": 4096, "nlpo": 4096}
KL_FRACTIONS = {"nlpo": 0.8}
SEED = 0


@pytest.fixture(scope="module")
def frequent_model(tmp_path_factory) -> str:
    """A tiny llama that says "good" about 70% of the time (for the penalty on a frequent word)."""
    return frequent_word_model(str(tmp_path_factory.mktemp("models") / "frequent"), "good")


@pytest.mark.parametrize("learner", LEARNERS)
@pytest.mark.parametrize("task", ["target_word", "length_5", "avoid_frequent"])
def test_reaches_90_percent_of_the_optimum(learner, task, request):
    spec, budget = TASKS[task], BUDGETS[learner, task]
    model_name = request.getfixturevalue("frequent_model") if spec.frequent_word else None
    result = train(LEARNERS[learner], spec, budget, seed=SEED, policy_kwargs=tiny_policy_kwargs(model_name=model_name))
    curve = [round(score, 2) for score in result.curve]
    print(f"{learner} {task}: reached 0.9 at {result.reached_at} of {budget} steps; curve {curve}")
    assert result.reached_at is not None, \
        f"{learner} did not reach 0.9 of the optimum on {task} in {budget} steps: {curve}"


@pytest.mark.parametrize("learner", KL_BUDGETS)
def test_reaches_the_kl_regularized_optimum(learner):
    """One token, reward 1 for "cat", penalty ``kl_coef * KL(pi || ref)``: optimum ``pi* ∝ ref exp(r / kl_coef)``.

    With the KL's sign wrong (or no KL) the policy says "cat" always, far below J*.
    """
    task = TASKS["bandit"]
    result = train(LEARNERS[learner], task, KL_BUDGETS[learner], seed=SEED, stop_early=False, kl_coef=KL_COEF)
    log_pi, log_ref = first_token_distributions(result.model, task)  # (S, V) each
    rewards = th.zeros(log_pi.shape[-1])
    rewards[task_tokenizer().convert_tokens_to_ids("cat")] = 1.0
    value, best = regularized_objective(log_pi, log_ref, rewards, KL_COEF)
    at_start, _ = regularized_objective(log_ref, log_ref, rewards, KL_COEF)
    print(f"{learner}: J(pi) = {value:.3f}, J* = {best:.3f}, J(ref) = {at_start:.3f}")
    bar = KL_FRACTIONS.get(learner, 0.9)
    assert value >= bar * best, f"J(pi) = {value:.3f} < {bar} J* = {bar * best:.3f} (J(ref) = {at_start:.3f})"


# --- the real model (slow) ----------------------------------------------------------------------
ANIMAL_PROMPTS = ("Name an animal.", "Name a pet.", "What animal do you like?", "Tell me about an animal.",
                  "Name a small animal.", "Which animal says meow?", "Write one word.", "Say something.")
# SmolLM2-135M-Instruct, 16 replies of 8 tokens per rollout. Seed 0 reaches 0.9 at 1024 steps on one thread
# (4.5 min); seeds 0-2 on two threads at 1280, 640 and 1536. No KL penalty: the KL is tested on the bandit.
SMOLLM2_LEARNER = Learner(PPO, dict(learning_rate=1e-4, n_steps=8, batch_size=64, n_epochs=4, kl_coef=0.0))
SMOLLM2_BUDGET = 2560


@pytest.mark.slow
def test_smollm2_learns_to_say_a_target_word():
    """Reward 1 when the reply says "cat": about 0.1 at the start, 0.9 within the budget.

    With the ``textgym train`` defaults (``PPOConfig``: learning rate 1e-5, 2 epochs, kl_coef 0.05) the same
    run stays at 0.0-0.12 for 10 rollouts while its KL to the reference climbs to 1 nat per episode.
    """
    from textgym.data.base import Sample

    task = Task("say_cat", ContainsWord("cat"), 1.0, max_new_tokens=8)
    samples = [Sample(f"a{i}", prompt, ("-",)) for i, prompt in enumerate(ANIMAL_PROMPTS)]
    env = make_env(task, 16, tokenizer="smollm2-135m", samples=samples, max_prompt_length=64, prompt_template="auto")
    result = train(SMOLLM2_LEARNER, task, SMOLLM2_BUDGET, seed=SEED, env=env,
                   policy_kwargs=dict(model_name="smollm2-135m"))
    curve = [round(score, 2) for score in result.curve]
    print(f"smollm2 say_cat: reached 0.9 at {result.reached_at} of {SMOLLM2_BUDGET} steps; curve {curve}")
    assert result.reached_at is not None, f"PPO did not reach 0.9 on say_cat in {SMOLLM2_BUDGET} steps: {curve}"
