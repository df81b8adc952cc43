"""Shared fixtures: where the real data and tokenizers live (never the network)."""

from __future__ import annotations

import os
from pathlib import Path

# Unit tests use tiny models: one thread avoids OpenMP oversubscription on a shared 2-core
# machine (measured 10x faster here). Slow end-to-end tests raise it themselves.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TEXTGYM_SHARED_DIR", REPO.parent / "shared"))
# Code under test that reads $TEXTGYM_DATA_DIR (loaders, README blocks, suites) finds the real data
# beside the checkout too, as the README says, also when the variable is not set.
if (SHARED / "data").is_dir():
    os.environ.setdefault("TEXTGYM_DATA_DIR", str(SHARED / "data"))


STRICT_SKIPS = "TEXTGYM_STRICT_SKIPS"


def needs(available: bool, what: str, install: str) -> None:
    """Skip a test whose optional system dependency is missing, with a one-line reason.

    With ``$TEXTGYM_STRICT_SKIPS=1`` (set by ``.ci/run``, which installs everything) the skip is a
    failure instead, so CI can never pass by skipping.
    """
    if available:
        return
    message = f"needs {what}: {install}"
    if os.environ.get(STRICT_SKIPS, "") not in ("", "0"):
        pytest.fail(f"{message} (${STRICT_SKIPS} is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data not found at {path}; set TEXTGYM_SHARED_DIR or TEXTGYM_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data sets in the layout of shared/data/SOURCES.md."""
    env = os.environ.get("TEXTGYM_DATA_DIR")
    return _require(Path(env) if env else SHARED / "data")


@pytest.fixture(scope="session")
def smollm_tokenizer_dir() -> Path:
    return _require(SHARED / "tokenizers" / "smollm2-135m-instruct")


@pytest.fixture(scope="session")
def gpt2_tokenizer_dir() -> Path:
    return _require(SHARED / "tokenizers" / "gpt2")


@pytest.fixture(scope="session")
def smollm_tokenizer(smollm_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm_tokenizer_dir))


@pytest.fixture(scope="session")
def quick_sentiment_cache(tmp_path_factory, data_dir):
    """A textgym cache holding a quick ``rm:imdb-sentiment`` (the trained alternative to IMDB-v0's default).

    Trained once per session on a small subset of the real labelled reviews; the full model
    (``textgym rlhf train-sentiment``) is better, but any model will do for API tests.
    Returns ``(cache folder, held-out metrics)``.
    """
    from textgym.rlhf.sentiment import train_sentiment_model
    from textgym.rlhf.train import FitConfig

    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("TEXTGYM_CACHE", str(cache))
    try:
        metrics = train_sentiment_model(data_dir, limit=120, max_length=64, config=FitConfig(n_epochs=40),
                                        device="auto")
    finally:
        mp.undo()
    return cache, metrics


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A randomly initialised tiny llama + word-level tokenizer, saved like any Hugging Face model folder."""
    from tiny import tiny_llama_config, tiny_tokenizer
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = tiny_tokenizer()
    cfg = tiny_llama_config(len(tok), max_position_embeddings=128)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    folder = tmp_path_factory.mktemp("models") / "tiny"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)
