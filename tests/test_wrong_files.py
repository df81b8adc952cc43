"""The wrong-file matrix: every kind of file or folder textgym writes or reads, fed to every loader.

Each kind is made once per module (tiny models built from a config). The right pairs load; every
other pair is refused with an error that names the path and, for a file textgym itself writes,
says what it is and what opens it; a refused load never modifies what it refused (hash before and
after). The kinds come from :mod:`textgym.filekinds`, the one identification every loader calls.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib.util import find_spec
from pathlib import Path

import pytest
from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

transformers = pytest.importorskip("transformers")
HAS_PEFT = find_spec("peft") is not None
ALGOS = ("PPO", "A2C", "RLOO", "GRPO")


def _bert():
    return transformers.BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=64)


def _bert_tokenizer(folder: Path) -> None:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "cat", "dog", "a", "b", "say"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)


def _agent(algo: str, lm_folder: str, lora: dict | None):
    import agents
    from textgym.vector import TokenVecEnv

    group = 2 if algo in ("RLOO", "GRPO") else 1
    venv = TokenVecEnv(tiny_env(tiny_tokenizer(), max_new_tokens=2, group_size=group), 2, device="cpu")
    extra = {"batch_size": 4} if algo in ("PPO", "GRPO") else {}
    extra.update({"group_size": 2} if group > 1 else {})
    return getattr(agents, algo)("TransformerPolicy", venv, n_steps=2, seed=0, device="cpu", **extra,
                                 policy_kwargs=dict(model_name=lm_folder, lora=lora))


def _record(tmp: Path) -> Path:
    source = sorted(Path(__file__).resolve().parents[1].glob("benchmarks/records/*/*.json"))[0]
    dest = tmp / "record.json"
    shutil.copy(source, dest)
    return dest


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, Path]:
    """Every kind of file or folder, made once: name -> path."""
    from agents.checkpoints import save_checkpoint
    from textgym.rewards.reward_model import RewardModel, RewardModelConfig
    from textgym.rlhf.store import PreferenceStore

    root = tmp_path_factory.mktemp("kinds")
    out: dict[str, Path] = {}
    tok = tiny_tokenizer()
    cfg = tiny_llama_config(len(tok), max_position_embeddings=64)
    lm = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    out["causal-lm"] = root / "lm"
    lm.save_pretrained(out["causal-lm"])
    tok.save_pretrained(out["causal-lm"])
    out["tokenizer"] = root / "tokenizer"
    tok.save_pretrained(out["tokenizer"])
    for name, cls in (("encoder", transformers.BertModel), ("classifier", transformers.BertForSequenceClassification)):
        out[name] = root / name
        cls(_bert()).save_pretrained(out[name])
        _bert_tokenizer(out[name])
    out["reward-model"] = root / "rm"
    RewardModel(RewardModelConfig(encoder=str(out["encoder"]), max_length=16), device="cpu").save(out["reward-model"])
    for algo in ALGOS:
        for lora in (None, dict(r=2, alpha=4)) if HAS_PEFT else (None,):
            name = f"agent:{algo}" + ("+lora" if lora else "")
            out[name] = root / f"{algo.lower()}{'_lora' if lora else ''}.zip"
            agent = _agent(algo, str(out["causal-lm"]), lora)
            agent.save(out[name])
            if algo == "PPO" and lora:  # a run folder whose final/ is the merged LM, and a checkpoint with agent.zip
                save_checkpoint(root / "run" / "final", agent.policy.export_lm(), tok, {"base_model": "lm"})
                out["run-folder"], out["final"] = root / "run", root / "run" / "final"
            if algo == "PPO" and not lora:
                out["checkpoint"] = save_checkpoint(root / "ckpt", agent.policy.lm, tok, {"base_model": "lm"}, agent)
    out["sqlite"] = root / "prefs.sqlite"
    store = PreferenceStore(out["sqlite"])
    store.answer(store.add_pair("p", "a", "b"), "A")
    out["jsonl"] = root / "prefs.jsonl"
    out["jsonl"].write_text(json.dumps({"prompt": "p", "chosen": "good", "rejected": "bad"}) + "\n")
    out["yaml"] = root / "config.yaml"
    out["yaml"].write_text("algo: a2c\na2c:\n  n_steps: 4\n")
    out["record"] = _record(root)
    out["records-folder"] = root / "records"
    (out["records-folder"] / "quick").mkdir(parents=True)
    shutil.copy(out["record"], out["records-folder"] / "quick" / out["record"].name)
    out["empty-folder"] = root / "empty"
    out["empty-folder"].mkdir()
    out["truncated"] = root / "truncated.zip"
    data = out["agent:PPO"].read_bytes()
    out["truncated"].write_bytes(data[: len(data) // 2])
    out["other-format"] = root / "picture.png"
    out["other-format"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    _RECEIVER[:] = [out["agent:PPO"]]
    return out


def _algo_load(algo: str):
    def load(path: Path):
        import agents

        return getattr(agents, algo).load(path, device="cpu")
    return load


def _reward(prefix: str):
    def load(path: Path):
        from textgym.rewards import make_reward

        return make_reward(f"{prefix}:{path}")
    return load


def _checkpoint(path: Path):  # textgym eval --checkpoint / textgym train --init: the check, then the LM
    from textgym.checkpoints import check_checkpoint
    from textgym.models import load_causal_lm

    return load_causal_lm(check_checkpoint(path, what="checkpoint"))


def _model(path: Path):  # --model (eval, train, policy_kwargs model_name): tokenizer and LM
    from textgym.models import load_causal_lm, load_tokenizer

    return load_tokenizer(path), load_causal_lm(path)


def _rlhf_import(path: Path):
    import tempfile

    from textgym.rlhf.store import PreferenceStore

    with tempfile.TemporaryDirectory() as tmp:
        return PreferenceStore(Path(tmp) / "new.sqlite").import_jsonl(path)


def _store(path: Path):  # --db of rlhf collect / import / train-rm
    from textgym.rlhf.store import PreferenceStore

    return PreferenceStore(path).progress()


def _train_rm_encoder(path: Path):
    from textgym.rewards.reward_model import RewardModel, RewardModelConfig

    return RewardModel(RewardModelConfig(encoder=str(path), max_length=16), device="cpu")


def _merge(path: Path):
    import tempfile

    from benchmarks.leaderboard_records import merge_records

    with tempfile.TemporaryDirectory() as tmp:
        return merge_records([path], Path(tmp) / "records")


_RECEIVER: list = []  # [the PPO agent zip of the kinds fixture], then [the agent loaded from it]


def _set_parameters(path: Path):  # agent.set_parameters(PATH) into a loaded PPO agent (no LoRA)
    if not hasattr(_RECEIVER[0], "set_parameters"):
        import agents

        _RECEIVER[0] = agents.PPO.load(_RECEIVER[0], device="cpu")
    return _RECEIVER[0].set_parameters(str(path))


def _config(path: Path):
    from agents.config import load_config

    return load_config(path)


LM_KINDS = {"causal-lm", "checkpoint", "final"}
AGENTS = {f"agent:{a}{s}" for a in ALGOS for s in ("", "+lora")}
# loader -> (the call, the kinds it opens)
LOADERS = {
    **{f"{a}.load": (_algo_load(a), {f"agent:{a}", f"agent:{a}+lora"}) for a in ALGOS},
    "rm:": (_reward("rm"), {"reward-model"}),
    "classifier:": (_reward("classifier"), {"classifier"}),
    "embedding:": (_reward("embedding"), {"encoder", "classifier"} | LM_KINDS),
    "--checkpoint/--init": (_checkpoint, LM_KINDS),
    "--model": (_model, LM_KINDS),
    "rlhf import": (_rlhf_import, {"jsonl"}),
    "--db": (_store, {"sqlite"}),
    "train-rm --encoder": (_train_rm_encoder, {"encoder", "classifier"} | LM_KINDS),
    "leaderboard merge": (_merge, {"record", "records-folder"}),
    "load_config": (_config, {"yaml"}),
    # the parameters of any algorithm's agent fit the same policy; a LoRA save does not fit one without LoRA
    "set_parameters": (_set_parameters, {f"agent:{a}" for a in ALGOS}),
}
KINDS = ["causal-lm", "tokenizer", "encoder", "classifier", "reward-model", *sorted(AGENTS), "run-folder", "final",
         "checkpoint", "sqlite", "jsonl", "yaml", "record", "records-folder", "empty-folder", "truncated",
         "other-format"]


def digest(path: Path) -> str:
    """A hash of a file, or of every file under a folder (names and bytes)."""
    h = hashlib.sha256()
    for p in sorted([path] if path.is_file() else path.rglob("*")):
        if p.is_file() and not p.name.endswith(("-wal", "-shm")):
            h.update(str(p.relative_to(path.parent)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_each_loader_opens_its_kinds_and_refuses_the_rest(kinds, loader, caplog):
    from textgym.filekinds import identify

    call, accepted = LOADERS[loader]
    problems = []
    for kind in KINDS:
        if kind not in kinds:
            continue  # (LoRA kinds without peft)
        path = kinds[kind]
        before = digest(path)
        try:
            call(path)
            outcome = None
        except (ValueError, TypeError, OSError) as exc:
            outcome = exc
        except Exception as exc:  # noqa: BLE001: any other type is a finding
            outcome = exc
            problems.append(f"{kind}: raw {type(exc).__name__}: {exc}")
        if digest(path) != before:
            problems.append(f"{kind}: the load modified {path}")
        if kind in accepted:
            if outcome is not None:
                problems.append(f"{kind}: refused though {loader} opens it: {outcome}")
            continue
        if outcome is None:
            problems.append(f"{kind}: loaded silently")
            continue
        text = str(outcome)
        if path.name not in text:
            problems.append(f"{kind}: the error does not name the path: {text}")
        found = identify(path)
        if found.opens and found.what not in text and kind not in AGENTS | {"final", "run-folder"}:
            problems.append(f"{kind}: the error does not say what it is ({found.what}): {text}")
    assert not problems, f"{loader}:\n" + "\n".join(problems)


def test_agent_zips_name_their_algorithm_and_the_opener(kinds):
    import agents

    with pytest.raises(ValueError, match=r"PPO.load needs a saved PPO agent, but .*a2c.zip is a saved A2C agent; "
                                         r"open it with agents.A2C.load"):
        agents.PPO.load(kinds["agent:A2C"])
    with pytest.raises(ValueError, match=r"is a textgym checkpoint folder .*agent.zip"):
        agents.PPO.load(kinds["checkpoint"])


@pytest.mark.parametrize("argv_head, kind", [
    (["eval", "--checkpoint"], "agent:PPO"), (["eval", "--checkpoint"], "reward-model"),
    (["eval", "--model"], "classifier"), (["eval", "--model"], "agent:A2C"), (["train", "--init"], "run-folder"),
    (["train", "--model"], "sqlite"), (["train", "--config"], "record"), (["rlhf", "import", "--db"], "yaml"),
])
def test_cli_refuses_the_wrong_kind_with_one_line(kinds, argv_head, kind, capsys, tmp_path, monkeypatch):
    from textgym.cli import main

    monkeypatch.chdir(tmp_path)
    argv = [*argv_head, str(kinds[kind])]
    if argv_head[:2] == ["rlhf", "import"]:
        argv.append(str(kinds["jsonl"]))
    before = digest(kinds[kind])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and kinds[kind].name in err, err
    assert digest(kinds[kind]) == before


def test_records_and_preferences_count_once_whatever_the_route(kinds, tmp_path):
    """Class 3: a leaderboard record or a preference is its content; a second route adds nothing and says so."""
    from benchmarks.leaderboard_records import load_records, merge_records
    from textgym.rlhf.store import PreferenceStore

    a, b = tmp_path / "a" / "quick", tmp_path / "b" / "other"
    for folder in (a, b):
        folder.mkdir(parents=True)
        shutil.copy(kinds["record"], folder / f"copy-{folder.name}.json")
    records = tmp_path / "records"
    assert merge_records([a.parent, b.parent], records) == (1, 1)
    assert merge_records([kinds["record"]], records) == (0, 1)
    shutil.copy(kinds["record"], records / "stray.json")  # a copy under another name is still one record
    assert len(load_records(records)) == 1
    store = PreferenceStore(tmp_path / "p.sqlite")
    other = tmp_path / "renamed.jsonl"
    shutil.copy(kinds["jsonl"], other)
    assert store.import_jsonl(kinds["jsonl"]) == (1, 1)
    assert store.import_jsonl(other) == (1, 0)  # the same content from another file: skipped
    assert len(store.preferences()) == 1
