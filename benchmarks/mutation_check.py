"""Do the learnability tests catch real RL bugs? Put each bug into a copy of the code and run them.

    python benchmarks/mutation_check.py [--only a c] [--tests tests/test_learnability.py ...] [--keep]

Each mutation is a text patch (an exact string replaced, which must occur exactly once) applied
to a temporary copy of the working tree (tracked and untracked, not ignored, files); the tests run
there in a fresh process. The checkout itself is never changed. Prints which tests fail under each
mutation, and a table. A mutation whose text no longer occurs is reported as ``does not apply``:
update its patch after a refactor. Exit status 1 when the unmutated code fails, or a mutation
makes no test fail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    key: str
    title: str
    patches: tuple[tuple[str, str, str], ...]  # (file, old text, new text)


_GAE = "        return compute_gae(batch.rewards, batch.values, batch.step_mask, self.gamma, self.gae_lambda)\n"

# The critic reads the state *after* the action (prompt + actions <= t): b(s_t, a_t), an off-by-one in its pass.
_AFTER_ACTION = '''

def _after_action(trunk, batch, rows=slice(None)):
    ids, mask = batch.sequences(rows)
    prompt_len = batch.prompt_ids.shape[1]
    start = padding_columns(mask[:, :prompt_len])
    hidden = trunk(input_ids=ids[:, start:], attention_mask=mask[:, start:],
                   position_ids=position_ids(mask[:, start:])).last_hidden_state
    return hidden[:, prompt_len - start :]


def evaluate_episodes('''

_CRITIC = "policy.lm.base_model if policy.critic_trunk is None else policy.critic_trunk"

MUTATIONS = (
    Mutation("a", "flipped advantage sign", (
        ("agents/base.py", _GAE, _GAE.replace("return compute_gae", "advantages, returns = compute_gae")
         + "        return -advantages, returns\n"),
    )),
    Mutation("b", "baseline that uses the action (the critic sees the action it judges)", (
        ("agents/rollout.py", "\n\ndef evaluate_episodes(", _AFTER_ACTION),
        ("agents/rollout.py",
         "critic = actor if policy.critic_trunk is None else step_hidden(policy.critic_trunk, batch, rows,\n"
         "                                                                              column_align(policy))",
         f"critic = _after_action({_CRITIC}, batch, rows)"),
        ("agents/rollout.py", "hidden = step_hidden(policy.critic_trunk, batch, rows, column_align(policy))  # (e, T, H)",
         f"hidden = _after_action({_CRITIC}, batch, rows)"),
        ("agents/base.py", "        if self.policy.critic_trunk is not None:\n            batch.values =",
         "        if True:  # mutation: always the action-aware critic\n            batch.values ="),
    )),
    Mutation("c", "KL penalty with the wrong sign (a bonus for leaving the reference)", (
        ("agents/base.py", "batch.rewards = batch.env_rewards - self.kl_coef * kl",
         "batch.rewards = batch.env_rewards + self.kl_coef * kl"),
        ("agents/buffers.py", "reward = np.asarray(reward, dtype=np.float32) - self.penalty(",
         "reward = np.asarray(reward, dtype=np.float32) + self.penalty("),
    )),
    Mutation("d1", "log-probs shifted by one token (the pass that scores action t has already read it)", (
        ("agents/rollout.py", "ids, mask = ids[:, start:-1], mask[:, start:-1]  # the last action is never an input",
         "ids, mask = ids[:, start:], mask[:, start:]"),
        ("agents/rollout.py", "return hidden[:, prompt_len - start - 1 :]", "return hidden[:, prompt_len - start :]"),
    )),
    Mutation("d2", "log-probs shifted by one token (each action scored with the next step's logits)", (
        ("agents/rollout.py", "log_probs, entropy = log_probs_and_entropy(logits, batch.tokens[rows])",
         "log_probs, entropy = log_probs_and_entropy(logits, batch.tokens[rows].roll(-1, dims=1))"),
    )),
)


def copy_tree(dest: Path) -> None:
    """The working tree's tracked and untracked (not ignored) files, as they are now."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def apply(mutation: Mutation, tree: Path) -> str | None:
    """Apply the patches; the reason it cannot, or None."""
    for file, old, new in mutation.patches:
        path = tree / file
        text = path.read_text()
        if text.count(old) != 1:
            return f"{file}: expected the text once, found it {text.count(old)} times: {old.strip()[:60]!r}"
        path.write_text(text.replace(old, new))
    return None


def run_tests(tree: Path, tests: list[str]) -> tuple[dict[str, str], float, str]:
    """({test id: passed/failed/error}, seconds, output tail) of one pytest run in ``tree``."""
    report = tree / "report.xml"
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                           f"--junitxml={report}", *tests], cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    outcomes: dict[str, str] = {}
    if report.is_file():
        for case in ET.parse(report).getroot().iter("testcase"):
            status = "passed"
            for tag in ("failure", "error", "skipped"):
                if case.find(tag) is not None:
                    status = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
            outcomes[case.get("name", "?")] = status
    return outcomes, seconds, (done.stdout + done.stderr)[-1500:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="mutation keys (default: all)")
    parser.add_argument("--tests", nargs="+", default=["tests/test_learnability.py"])
    parser.add_argument("--keep", action="store_true", help="keep the mutated copies (their paths are printed)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or m.key in args.only]
    runs = ([Mutation("-", "none (the code as it is)", ())] if not args.no_baseline else []) + chosen
    table, status = [], 0
    for mutation in runs:
        tree = Path(tempfile.mkdtemp(prefix=f"mutation-{mutation.key}-"))
        try:
            copy_tree(tree)
            problem = apply(mutation, tree)
            if problem:
                print(f"[{mutation.key}] {mutation.title}: does not apply ({problem})", flush=True)
                table.append((mutation, None, 0.0))
                status = 1
                continue
            outcomes, seconds, tail = run_tests(tree, args.tests)
            failed = sorted(name for name, s in outcomes.items() if s in ("FAILED", "ERROR"))
            print(f"[{mutation.key}] {mutation.title}: {len(failed)} of {len(outcomes)} tests fail "
                  f"({seconds:.0f} s)", flush=True)
            for name in failed:
                print(f"    {outcomes[name]} {name}")
            if not outcomes:
                print(tail)
            table.append((mutation, outcomes, seconds))
            if (mutation.key == "-") == bool(failed) or not outcomes:
                status = 1
        finally:
            if args.keep:
                print(f"    copy kept at {tree}")
            else:
                shutil.rmtree(tree, ignore_errors=True)
    names = sorted({n for _, outcomes, _ in table if outcomes for n in outcomes})
    print("\n| mutation | " + " | ".join(names) + " | s |")
    print("|---|" + "---|" * (len(names) + 1))
    for mutation, outcomes, seconds in table:
        marks = {"passed": "pass", "FAILED": "**FAIL**", "ERROR": "**ERROR**"}
        cells = ["does not apply"] * len(names) if outcomes is None else \
            [marks.get(outcomes.get(n, ""), outcomes.get(n, "-")) for n in names]
        print(f"| {mutation.key}: {mutation.title} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    return status


if __name__ == "__main__":
    sys.exit(main())
