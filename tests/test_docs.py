"""Every code block of README.md and benchmarks/README.md runs, as written.

Each block runs in a fresh subprocess (``python`` blocks with the test's interpreter, ``bash``
blocks with ``bash -eo pipefail``) in a scratch folder laid out like a checkout: ``../shared`` is the
real shared folder, ``benchmarks/`` and ``docs/`` are copies, so nothing a block writes lands in the
repository. Only two things are swapped, by the substitutions in :data:`SWAPS` and the environment
in :func:`block_env`:

- **the model**: every ``smollm2-135m`` becomes a tiny randomly initialised Llama that uses the real
  SmolLM2 tokenizer (so env spaces and policies agree), and ``TEXTGYM_DEFAULT_MODEL`` points there
  for code that names no model; the encoder-decoder hub ids ``google-t5/t5-small`` and
  ``facebook/bart-base`` become tiny T5 / BART folders with the GPT-2 tokenizer (:data:`SEQ2SEQ_SWAPS`);
- **the budgets**: timesteps, item counts and repeats become small numbers (and a rebuild of the
  packaged sentiment model trains on a few texts and writes to the scratch folder).

The set-up and test commands (between the ``setup-command`` and ``test-command`` markers) are not
run here: ``.ci/run`` runs exactly those lines on a fresh clone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "README.md", REPO / "benchmarks" / "README.md")
RUNNABLE = {"python": "python", "bash": "bash"}
CI_MARKERS = ("setup-command", "test-command")
BLOCK_TIMEOUT_S = 600

# (pattern, replacement): the model and the budgets, nothing else.
SWAPS: list[tuple[str, str]] = [
    (r"(?<![\w/.-])smollm2-135m(?![\w-])", "{tiny_model}"),
    (r"total_timesteps\s*=\s*[\d_]+", "total_timesteps=64"),
    (r"\.learn\(\s*[\d_]+", ".learn(64"),
    (r"--total-timesteps[ =]\d+", "--total-timesteps 64"),
    (r"--repeats[ =]\d+", "--repeats 1"),
    (r"(?<=\s)--n[ =]\d+", "--n 4"),
    (r"--limit[ =]\d+", "--limit 40"),
    (r"--episodes[ =]\d+", "--episodes 16"),
    (r"--eval-n[ =]\d+", "--eval-n 2"),
    (r"eval\.n=\d+", "eval.n=4"),
    # rebuilding the packaged sentiment model: a small budget, written to the scratch folder (never
    # over the packaged file)
    (r"(textgym rlhf build-sentiment\b[^\n#]*?)(\s*#|\n)", r"\1 --limit 100 --out sentiment-test.npz\2"),
    # the same for the packaged dialogue-act model
    (r"(benchmarks/dialogue_act_reward\.py\b[^\n#]*?)(\s*#|\n)", r"\1 --limit 300 --out acts-test.npz\2"),
]


# Hub ids of encoder-decoders in the docs -> the tiny model (of that kind) that replaces them.
SEQ2SEQ_SWAPS = {"google-t5/t5-small": "t5", "facebook/bart-base": "bart"}


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    code: str
    run_by_ci: bool

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """Fenced code blocks of a Markdown file, with the line of their opening fence."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    inside_ci = False
    k = 0
    while k < len(lines):
        line = lines[k]
        if any(line.strip() == f"<!-- {m} -->" for m in CI_MARKERS):
            inside_ci = True
        elif any(line.strip() == f"<!-- /{m} -->" for m in CI_MARKERS):
            inside_ci = False
        fence = re.match(r"^(\s*)(```+)\s*([\w+-]*)", line)
        if fence:
            start, end = k, k + 1
            while end < len(lines) and not lines[end].strip().startswith(fence.group(2)):
                end += 1
            body = "\n".join(l[len(fence.group(1)):] for l in lines[start + 1 : end])
            blocks.append(Block(path, start + 1, fence.group(3).lower(), body + "\n", inside_ci))
            k = end
        k += 1
    return blocks


def swapped(code: str, tiny_model: str, tiny_seq2seq: dict[str, str] | None = None) -> str:
    """``code`` with the model and budgets swapped for tiny ones (:data:`SWAPS`).

    >>> swapped('PPO(..., policy_kwargs=dict(model_name="smollm2-135m")).learn(total_timesteps=2_000)', "/m")
    'PPO(..., policy_kwargs=dict(model_name="/m")).learn(total_timesteps=64)'
    >>> swapped("textgym train --total-timesteps 4096 --n 200", "/m")
    'textgym train --total-timesteps 64 --n 4'
    """
    for pattern, replacement in SWAPS:
        code = re.sub(pattern, replacement.format(tiny_model=tiny_model), code)
    for hub_id, kind in SEQ2SEQ_SWAPS.items():
        if tiny_seq2seq and hub_id in code:
            code = code.replace(hub_id, tiny_seq2seq[kind])
    return code


ALL_BLOCKS = [b for doc in DOCS for b in code_blocks(doc)]


def test_the_docs_have_blocks_and_every_block_is_runnable():
    assert len(ALL_BLOCKS) >= 5, [b.id for b in ALL_BLOCKS]
    unrunnable = [f"{b.id} ({b.lang or 'no language'})" for b in ALL_BLOCKS if b.lang not in RUNNABLE]
    assert not unrunnable, f"code blocks must be ```python or ```bash so the tests can run them: {unrunnable}"
    assert sum(b.run_by_ci for b in ALL_BLOCKS) == 2, "README.md must mark the set-up and the test command"


@pytest.fixture(scope="session")
def tiny_smollm(tmp_path_factory, smollm_tokenizer_dir) -> str:
    """A 2-layer, 32-wide Llama with SmolLM2's real tokenizer and vocabulary, saved as a model folder."""
    from tiny import tiny_llama_config
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(smollm_tokenizer_dir))
    cfg = tiny_llama_config(len(tokenizer), max_position_embeddings=1024,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    folder = tmp_path_factory.mktemp("docs-model") / "tiny-smollm2"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_seq2seq(tmp_path_factory, gpt2_tokenizer_dir) -> dict[str, str]:
    """Tiny T5 and BART folders with the GPT-2 tokenizer, for the encoder-decoder hub ids of the docs."""
    from tiny_seq2seq import save_tiny_seq2seq
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir))
    root = tmp_path_factory.mktemp("docs-seq2seq")
    return {kind: save_tiny_seq2seq(kind, root / kind, tokenizer, max_position_embeddings=1024)
            for kind in SEQ2SEQ_SWAPS.values()}


@pytest.fixture(scope="session")
def checkout(tmp_path_factory, data_dir) -> Path:
    """A scratch folder shaped like a checkout: ``../shared/data`` resolves, outputs stay out of the repo."""
    root = tmp_path_factory.mktemp("docs-checkout")
    (root / "shared").symlink_to(Path(data_dir).resolve().parent, target_is_directory=True)
    work = root / "textgym"
    work.mkdir()
    for name in ("benchmarks", "docs"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "README.md", work / "README.md")
    return work


def block_env(tiny_model: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "TEXTGYM_DEFAULT_MODEL": tiny_model,
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
    })
    return env


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if not b.run_by_ci], ids=lambda b: b.id)
def test_code_block_runs(block: Block, checkout: Path, tiny_smollm: str, tmp_path: Path, request):
    if block.lang not in RUNNABLE:
        pytest.fail(f"{block.id}: ```{block.lang} blocks cannot be run; use ```python or ```bash")
    seq2seq = request.getfixturevalue("tiny_seq2seq") if any(h in block.code for h in SEQ2SEQ_SWAPS) else None
    code = swapped(block.code, tiny_smollm, seq2seq)
    script = tmp_path / ("block.py" if block.lang == "python" else "block.sh")
    script.write_text(code)
    command = [sys.executable, str(script)] if block.lang == "python" else ["bash", "-eo", "pipefail", str(script)]
    result = subprocess.run(command, cwd=checkout, env=block_env(tiny_smollm), capture_output=True, text=True,
                            timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (f"{block.id} failed (exit {result.returncode}); as run:\n{code}\n"
                                    f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}")
