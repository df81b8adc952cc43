"""Issue 11, command line and services: one `error:` line per bad input, config ranges, the labelling
server's Host/Origin/Content-Type checks, the preference store, checkpoint pruning, clear load errors."""

from __future__ import annotations

import http.client
import json
import threading
import zipfile

import pytest

from agents.checkpoints import check_agent_zip, next_checkpoint_step, prune_checkpoints
from agents.config import ConfigError, load_config, parse_set
from textgym.cli import main
from textgym.rlhf.collect import make_server
from textgym.rlhf.store import PreferenceStore

# Every one must exit 2 with one short `error:` line and no traceback.
BAD_ARGV = [
    ["eval", "--n", "0"], ["eval", "--n", "-3"], ["eval", "--max-new-tokens", "0"], ["eval", "--batch-size", "0"],
    ["eval", "--threads", "0"], ["eval", "--seed", "-1"], ["eval", "--show", "-1"], ["eval", "--env", "textgym/Nope-v0"],
    ["eval", "--env", "CartPole-v1"], ["eval", "--checkpoint", "/nonexistent/ckpt"],
    ["rlhf", "serve", "--port", "70000"], ["rlhf", "serve", "--port", "-1"], ["rlhf", "collect", "--port", "x"],
    ["rlhf", "collect", "--n", "-1"], ["rlhf", "collect", "--temperature", "0"], ["rlhf", "collect", "--temperature", "nan"],
    ["rlhf", "collect", "--max-new-tokens", "0"], ["rlhf", "collect", "--env", "textgym/Nope-v0", "--no-serve"],
    ["rlhf", "train-rm", "--out", "x", "--learning-rate", "nan"], ["rlhf", "train-rm", "--out", "x", "--learning-rate", "inf"],
    ["rlhf", "train-rm", "--out", "x", "--learning-rate", "-1"], ["rlhf", "train-rm", "--out", "x", "--n-epochs", "0"],
    ["rlhf", "train-rm", "--out", "x", "--heldout", "1.5"], ["rlhf", "train-rm", "--out", "x", "--batch-size", "0"],
    ["rlhf", "train-rm", "--out", "x", "--max-length", "0"], ["rlhf", "train-sentiment", "--limit", "0"],
    ["train", "--out", "/etc/passwd/run"], ["train", "--device", "tpu"], ["train", "--set", "ppo.n_steps=-1"],
    ["train", "--set", "checkpoint.every=-5"], ["train", "--set", "checkpoint.keep=-1"], ["train", "--set", "checkpoint.keep=0"],
    ["train", "--env", "CartPole-v1"], ["train", "--set", "ppo.learning_rate=.nan"], ["train", "--set", "ppo.gamma=1.5"],
    ["train", "--set", "a2c.n_steps=0"], ["train", "--set", "sft.epochs=0"], ["train", "--set", "policy.top_p=0"],
    ["train", "--set", "policy.temperature=-1"], ["train", "--set", "eval.n=0"], ["train", "--set", "eval.split=dev"],
    ["train", "--set", "env.max_new_tokens=0"], ["train", "--set", "env.reward_mode=sparse"], ["train", "--total-timesteps", "0"],
    ["train", "--num-envs", "0"], ["train", "--threads", "0"], ["train", "--seed", "-1"], ["train", "--set", "nokey"],
    ["train", "--config", "/nonexistent.yaml"],
]


@pytest.mark.parametrize("argv", BAD_ARGV, ids=[" ".join(a) for a in BAD_ARGV])
def test_every_bad_cli_value_is_one_error_line_and_exit_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:  # argparse's checks exit; the rest return 2
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and "Traceback" not in err, err
    assert len(err) < 600, err


def test_cuda_asked_for_without_cuda_is_an_error_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["train", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ValueError, match="not a textgym text environment"):
        main(["--debug", "train", "--env", "CartPole-v1"])


def test_eval_checks_its_output_path_before_evaluating(tmp_path, capsys, monkeypatch):
    import textgym.evaluation

    monkeypatch.setattr(textgym.evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated before the path check"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["eval", "--out", str(blocker / "out.json"), "--no-perplexity"]) == 2
    assert "--out" in capsys.readouterr().err


# --- config values ---------------------------------------------------------------------------------
def test_yaml_and_set_floats_without_a_dot_are_floats(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ppo:\n  learning_rate: 1e-5\nsft:\n  learning_rate: 5E-4\n")
    config = load_config(cfg, parse_set(["a2c.learning_rate=3e-6"]))
    assert (config.ppo.learning_rate, config.sft.learning_rate, config.a2c.learning_rate) == (1e-5, 5e-4, 3e-6)
    with pytest.raises(ConfigError, match="ppo.learning_rate"):
        load_config(overrides={"ppo.learning_rate": "fast"})


def test_config_file_with_bad_utf8_is_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"algo: ppo\nmodel: \xff\xfe\n")
    with pytest.raises(ValueError, match="c.yaml is not valid UTF-8"):
        load_config(cfg)


# --- 1, 2: checkpoints ----------------------------------------------------------------------------
def test_next_checkpoint_never_loops_and_pruning_goes_by_step(tmp_path):
    assert next_checkpoint_step(1165, 500) == 1500 and next_checkpoint_step(0, 1) == 1
    with pytest.raises(ValueError, match="every"):
        next_checkpoint_step(10, -5)
    with pytest.raises(ValueError, match="keep"):
        prune_checkpoints(tmp_path, -1, 10)
    for step in (960, 80, 160, 1200):  # 960 and 1200 are stale, from an older, longer run
        (tmp_path / f"step_{step:08d}").mkdir()
    (tmp_path / "step_2").mkdir()  # names need not be zero-padded
    prune_checkpoints(tmp_path, 2, current_step=160)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000080", "step_00000160"]


# --- 7, 8: reward-model training and the preference store -------------------------------------------
def test_fit_config_refuses_nonfinite_learning_rates():
    from textgym.rlhf.train import FitConfig

    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(ValueError, match="learning_rate"):
            FitConfig(learning_rate=bad)


def test_import_refuses_identical_candidates_and_imported_pairs_are_not_pending(tmp_path):
    store = PreferenceStore(tmp_path / "p.sqlite")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "chosen": "same", "rejected": "same"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1: chosen and rejected are the same"):
        store.import_jsonl(bad)
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"prompt": f"p{i}", "chosen": "a", "rejected": "b"}) + "\n" for i in range(3)))
    store.import_jsonl(good)
    store.add_pair("q", "x", "y")
    progress = store.progress()
    assert progress["total"] == 1 and progress["pending"] == 1 and progress["imported"] == 3
    assert [p.prompt for p in store.pending()] == ["q"]
    utf = tmp_path / "utf.jsonl"
    utf.write_bytes(b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n\xff\n')
    with pytest.raises(ValueError, match="utf.jsonl:2: not valid UTF-8"):
        store.import_jsonl(utf)


def test_store_errors_name_the_path(tmp_path):
    notdb = tmp_path / "notsqlite.db"
    notdb.write_text("hello, this is not SQLite" * 100)
    with pytest.raises(ValueError, match="notsqlite.db is not a textgym preference database"):
        PreferenceStore(notdb)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        PreferenceStore(tmp_path)
    import sqlite3

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE pairs (id INTEGER, text TEXT)")
    with pytest.raises(ValueError, match="foreign.db has a table 'pairs' that is not textgym's"):
        PreferenceStore(foreign)


# --- 10, 11, 12: the labelling server --------------------------------------------------------------
@pytest.fixture()
def server(tmp_path):
    store = PreferenceStore(tmp_path / "p.sqlite")
    pid = store.add_pair("p", "a", "b")
    srv = make_server(store)
    srv.RequestHandlerClass.timeout = 1
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, store, pid
    srv.shutdown()
    srv.server_close()


def _call(srv, method, path, body=b"", headers=None):
    port = srv.server_address[1]
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    base = {"Host": f"127.0.0.1:{port}"}
    con.request(method, path, body=body, headers={**base, **(headers or {})})
    resp = con.getresponse()
    return resp.status, resp.read()


def test_server_refuses_cross_site_posts_and_foreign_hosts(server):
    srv, store, pid = server
    port = srv.server_address[1]
    answer = json.dumps({"pair_id": pid, "choice": "A"}).encode()
    json_ct = {"Content-Type": "application/json"}
    assert _call(srv, "POST", "/api/answer", answer, {"Content-Type": "text/plain"})[0] == 403
    assert _call(srv, "POST", "/api/answer", answer, {**json_ct, "Origin": "http://evil.example"})[0] == 403
    assert _call(srv, "POST", "/api/answer", answer, {**json_ct, "Sec-Fetch-Site": "cross-site"})[0] == 403
    for method, body, extra in (("GET", b"", {}), ("POST", answer, json_ct)):
        path = "/api/next" if method == "GET" else "/api/answer"
        assert _call(srv, method, path, body, {**extra, "Host": f"evil.example:{port}"})[0] == 403
    assert _call(srv, "GET", "/", b"", {"Host": f"evil.example:{port}"})[0] == 403
    assert store.answers() == []
    status, _ = _call(srv, "POST", "/api/answer", answer, {**json_ct, "Origin": f"http://127.0.0.1:{port}"})
    assert status == 200 and len(store.answers()) == 1
    assert _call(srv, "GET", "/api/next", b"", {"Host": f"localhost:{port}"})[0] == 200


def test_server_survives_deep_json_and_short_bodies(server):
    srv, store, _ = server
    deep = b"[" * 60000 + b"]" * 60000
    status, body = _call(srv, "POST", "/api/answer", deep[:65000], {"Content-Type": "application/json"})
    assert status == 400
    port = srv.server_address[1]
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    con.putrequest("POST", "/api/answer", skip_host=True)
    con.putheader("Host", f"127.0.0.1:{port}")
    con.putheader("Content-Type", "application/json")
    con.putheader("Content-Length", "100")
    con.endheaders()
    con.send(b'{"pair_id":')  # then stalls: the handler must give up after its timeout
    assert con.getresponse().status == 408
    assert _call(srv, "GET", "/api/next")[0] == 200  # and the server still serves


# --- unclear errors: loads ------------------------------------------------------------------------
def test_agent_zip_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.zip does not exist$"):
        check_agent_zip(tmp_path / "nope.zip")
    with pytest.raises(FileNotFoundError, match="nope does not exist"):
        check_agent_zip(tmp_path / "nope")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="bad.zip is not a readable zip"):
        check_agent_zip(bad)
    gone = tmp_path / "gone.zip"
    with zipfile.ZipFile(gone, "w") as archive:
        archive.writestr("data", json.dumps({"policy_kwargs": {"model_name": str(tmp_path / "deleted-model")}}))
    with pytest.raises(FileNotFoundError, match="deleted-model, which no longer exists"):
        check_agent_zip(gone)
    assert check_agent_zip(gone, {"policy_kwargs": {"model_name": None}}) == gone


def test_ppo_load_of_a_missing_file_says_so(tmp_path):
    from agents import PPO

    with pytest.raises(FileNotFoundError, match=r"nope.zip does not exist$"):
        PPO.load(str(tmp_path / "nope.zip"))


def test_a2c_refuses_zero_steps():
    from tiny import tiny_env, tiny_llama_config, tiny_tokenizer

    from agents import A2C

    tok = tiny_tokenizer()
    kwargs = dict(model_name=None, model_config=tiny_llama_config(len(tok)))
    with pytest.raises(ValueError, match="n_steps must be >= 1, got 0"):
        A2C("TransformerPolicy", tiny_env(tok), n_steps=0, policy_kwargs=kwargs)


def test_model_and_tokenizer_errors_name_the_name(tmp_path, monkeypatch):
    from textgym.models import load_causal_lm, load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="'no-such-org/no-such-model' is not a local folder"):
        load_tokenizer("no-such-org/no-such-model")
    with pytest.raises(FileNotFoundError, match="holds no tokenizer files"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_causal_lm(tmp_path)


def test_corrupt_reward_model_files_are_named(tmp_path):
    from textgym.rewards.reward_model import RewardModel

    folder = tmp_path / "rm"
    folder.mkdir()
    (folder / "reward_model.json").write_text('{"head_hidden": ')
    with pytest.raises(ValueError, match="reward_model.json is not valid JSON"):
        RewardModel.load(folder)
    (folder / "reward_model.json").write_bytes(b'{"x": "\xff"}')
    with pytest.raises(ValueError, match="not valid UTF-8"):
        RewardModel.load(folder)


def test_corrupt_data_files_are_named(tmp_path):
    from textgym.data.loaders import DataError, _parse_imdb, _parse_summary_json

    imdb = tmp_path / "train.csv"
    imdb.write_bytes(b"id,sentiment,review\n1,1,good \xff\xfe film\n")
    with pytest.raises(DataError, match="train.csv is not valid UTF-8"):
        _parse_imdb(imdb, "train")
    summ = tmp_path / "samsum" / "train.json"
    summ.parent.mkdir()
    summ.write_text('[{"dialogue": "a", "summary": ')
    with pytest.raises(DataError, match="train.json"):
        _parse_summary_json(summ, "train")
