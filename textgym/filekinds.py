"""What is this path? One identification of every file and folder textgym writes or reads.

Every loader (``PPO.load``, ``make_reward("rm:...")``, ``--checkpoint``, ``--model``, ``--init``,
``rlhf import``, ``train-rm``, ``leaderboard merge``, ``load_config``) asks :func:`require` before it
opens anything, so a file given to the wrong loader gets one error that says what the file is and
what opens it, and is never modified. Identification only reads: a few bytes, a zip's ``data`` entry,
a folder's ``config.json``.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

__all__ = ["META_FILE", "FileKind", "WrongFileError", "identify", "require"]

META_FILE = "textgym_checkpoint.json"  # a checkpoint folder's metadata (read and written via textgym.checkpoints)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_PREFERENCE_KEYS = {"prompt", "chosen", "rejected"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model")  # any one of them makes a tokenizer folder
_SNIFF_BYTES = 1 << 20  # text kinds are identified from their first MiB


class WrongFileError(ValueError):
    """A file or folder of another kind than the loader opens; the message says what it is and what opens it."""


@dataclass(frozen=True)
class FileKind:
    """The answer of :func:`identify`.

    Attributes:
        kind: A short key (``"agent-zip:PPO"``, ``"checkpoint"``, ``"causal-lm"``, ``"sqlite-preferences"``...).
        what: What it is, for a message (``"a saved PPO agent (LoRA)"``).
        opens: What opens it (``"agents.PPO.load(PATH)"``); empty when nothing in textgym does.
    """

    kind: str
    what: str
    opens: str = ""


def _model_folder(path: Path, config: dict) -> FileKind:
    archs = [str(a) for a in config.get("architectures") or []]
    arch = ", ".join(archs) or f"model_type {config.get('model_type')!r}"
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return FileKind("causal-lm", f"a causal LM folder ({arch})",
                        "--model / --init / load_causal_lm(PATH) / agents policy_kwargs model_name")
    if config.get("is_encoder_decoder") and any(a.endswith("ForConditionalGeneration") for a in archs):
        return FileKind("seq2seq-lm", f"an encoder-decoder LM folder ({arch})",
                        "--model / --init / load_lm(PATH) / agents policy_kwargs model_name")
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return FileKind("classifier", f"a sequence-classifier folder ({arch})", "make_reward('classifier:PATH')")
    if not archs:  # an old or hand-written config: the weights guard (textgym.models) decides
        return FileKind("model", f"a model folder ({arch}, no architecture recorded)", "")
    if any(a.endswith("Model") for a in archs):
        return FileKind("encoder", f"an encoder folder without a task head ({arch})",
                        "make_reward('embedding:PATH') or `rlhf train-rm --encoder PATH`")
    return FileKind("model", f"a model folder ({arch})", "")


def _folder(path: Path) -> FileKind:
    names = {p.name for p in path.iterdir()}
    if not names:
        return FileKind("empty-folder", "an empty folder", "")
    if "reward_model.json" in names:
        return FileKind("reward-model", "a saved reward model folder", "make_reward('rm:PATH')")
    if "config.json" in names:
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return FileKind("broken-model", "a model folder whose config.json is unreadable or truncated", "")
        if not isinstance(config, dict):
            return FileKind("broken-model", "a model folder whose config.json is not a JSON object", "")
        found = _model_folder(path, config)
        if META_FILE in names and found.kind in ("causal-lm", "seq2seq-lm"):
            agent = " (with agent.zip: agents.<ALGO>.load(PATH/agent.zip) resumes training)" if "agent.zip" in names else ""
            return FileKind("checkpoint", f"a textgym checkpoint folder ({found.what[2:]}){agent}",
                            "`textgym eval --checkpoint PATH`, `textgym train --init PATH`, --model PATH")
        return found
    if (path / "final" / "config.json").is_file():
        return FileKind("run-folder", "a training run folder", "its checkpoint PATH/final (--checkpoint, --init)")
    if names & set(TOKENIZER_FILES):
        return FileKind("tokenizer", "a tokenizer-only folder (no model weights)", "tokenizer=PATH (gym.make)")
    if any(n.endswith(".json") for n in names):
        return FileKind("records-folder", "a folder of JSON files", "`leaderboard merge PATH` (if they are records)")
    return FileKind("folder", f"a folder holding {sorted(names)[:3]}", "")


def _agent_zip(data: dict) -> FileKind:
    kwargs = data.get("policy_kwargs") if isinstance(data.get("policy_kwargs"), dict) else {}
    policy = data.get("policy_class")
    # SB3's format: {"__module__": ...} beside a pickle; textgym's safe format (agents.agent_zip): {"name": "module.Class"}
    module = (policy.get("__module__") or policy.get("name") or "") if isinstance(policy, dict) else ""
    if not str(module).startswith("agents."):
        return FileKind("sb3-zip", "an SB3 agent zip with a non-text policy", "stable_baselines3's own load")
    algo = data.get("text_algorithm") or ("PPO-family" if "clip_range" in data else "A2C-family")
    lora = " (LoRA adapters)" if kwargs.get("lora") else ""
    return FileKind(f"agent-zip:{algo}", f"a saved {algo} agent{lora}", f"agents.{algo.split('-')[0]}.load(PATH)")


def _zip(path: Path) -> FileKind:
    try:
        with zipfile.ZipFile(path) as archive:
            if "data" not in archive.namelist():
                return FileKind("zip", "a zip that is not a saved agent (no 'data' entry)", "")
            data = json.loads(archive.read("data").decode("utf-8"))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        return FileKind("truncated", "a damaged or truncated zip", "")
    return _agent_zip(data) if isinstance(data, dict) else FileKind("zip", "a zip with a corrupt 'data' entry", "")


def _json_kind(value: object, lines: int) -> FileKind:
    if isinstance(value, dict) and "record_version" in value:
        return FileKind("record", "a leaderboard record (JSON)", "`python -m benchmarks.leaderboard merge PATH`")
    if isinstance(value, dict) and _PREFERENCE_KEYS <= set(value):
        return FileKind("jsonl-preferences", "a JSONL file of preference pairs", "`textgym rlhf import PATH`")
    return FileKind("jsonl" if lines > 1 else "json", "a JSON Lines file" if lines > 1 else "a JSON file", "")


def _text(path: Path, head: bytes) -> FileKind:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return FileKind("binary", "a binary file of an unknown format", "")
    if not text.strip():
        return FileKind("empty-file", "an empty file", "")
    rows = [r for r in text.splitlines() if r.strip()]
    try:
        first = json.loads(rows[0])
    except ValueError:
        first = None
    if isinstance(first, dict) and len(rows) > 1 and len(head) < _SNIFF_BYTES:
        try:
            json.loads(rows[-1])
        except ValueError:
            return FileKind("truncated", "a JSON Lines file whose last line is cut off (truncated?)", "")
    if isinstance(first, dict):
        return _json_kind(first, len(rows))
    try:
        whole = json.loads(text)
        return _json_kind(whole, 1)
    except ValueError:
        pass
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return FileKind("text", "a text file that is neither JSON nor YAML (truncated?)", "")
    if isinstance(data, dict):
        return FileKind("yaml", "a YAML config", "`textgym train --config PATH` / load_config(PATH)")
    return FileKind("text", "a plain text file", "")


def identify(path: str | os.PathLike) -> FileKind:
    """What ``path`` is, from its content (never its name); reads only.

    >>> identify("/no/such/file").kind
    'missing'
    """
    path = Path(path).expanduser()
    if not path.exists():
        return FileKind("missing", "missing (it does not exist)", "")
    if path.is_dir():
        return _folder(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        return FileKind("unreadable", f"unreadable ({exc.strerror})", "")
    if head.startswith(_SQLITE_MAGIC):
        return FileKind("sqlite", "an SQLite database (a preference store)", "`textgym rlhf ... --db PATH`")
    if head.startswith(_ZIP_MAGIC):
        return _zip(path)
    return _text(path, head)


#: Kinds that are no textgym save: content that a loader's own parser reports on in more detail.
UNRECOGNISED = frozenset({"text", "binary", "json", "jsonl", "empty-file", "truncated", "folder"})


def require(path: str | os.PathLike, accepted: Collection[str], opener: str, expected: str,
            strict: bool = False) -> FileKind:
    """Return :func:`identify`'s answer if its kind is in ``accepted``, else raise saying what ``path`` is.

    Args:
        path: The file or folder given.
        accepted: Kinds ``opener`` opens (a kind ending in ``:*`` matches every suffix, e.g. ``"agent-zip:*"``).
        opener: The call or option that was given ``path`` (``"PPO.load"``, ``"--checkpoint"``).
        expected: What ``opener`` needs, in words.
        strict: Refuse :data:`UNRECOGNISED` content here too (default: pass it on to the loader's parser,
            whose errors name the line or byte at fault).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WrongFileError: ``path`` is something else; the message names what it is and what opens it.
    """
    found = identify(path)
    if found.kind == "missing":
        raise FileNotFoundError(f"{opener}: {path} does not exist")
    if found.kind in accepted or any(a.endswith(":*") and found.kind.startswith(a[:-1]) for a in accepted):
        return found
    if not strict and found.kind in UNRECOGNISED:
        return found  # the loader's own parser names the line or byte that is wrong
    hint = f"; open it with {found.opens.replace('PATH', str(path))}" if found.opens else ""
    raise WrongFileError(f"{opener}: {path} is {found.what}, not {expected}{hint}")
