"""The preference store, the HTTP API of the labelling server, train-rm and the rlhf CLI."""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
import urllib.error
import urllib.request

import pytest

from textgym.cli import main
from textgym.rlhf.collect import make_server
from textgym.rlhf.store import PreferenceStore, pair_id


@pytest.fixture()
def store(tmp_path):
    return PreferenceStore(tmp_path / "prefs.sqlite")


def test_wal_schema_and_idempotent_pairs(store):
    con = sqlite3.connect(store.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ids = store.add_pairs([("p", "a1", "b1"), ("p", "a2", "b2"), ("p", "a1", "b1")], source="t",
                          metas=[{"k": 1}, {}, {}])
    assert ids[0] == ids[2] == pair_id("p", "a1", "b1") and len(store.pairs()) == 2
    assert store.pairs()[0].meta == {"k": 1} and store.pairs()[0].source == "t"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM pairs")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE pairs SET a = 'x'")
    with pytest.raises(TypeError, match="pair 0: a must be a str"):
        store.add_pair("p", None, "b")


def test_answers_are_committed_once_per_pair_and_annotator(store):
    first, second = store.add_pairs([("p1", "a", "b"), ("p2", "c", "d")])
    assert [p.pair_id for p in store.pending()] == [first, second]
    assert store.answer(first, "B") is True
    assert store.answer(first, "B") is False and store.answer(first, "A") is False  # no double count
    assert store.answer(first, "A", annotator="bob") is True  # another person may answer too
    # A second connection (another process) sees the answers at once.
    rows = sqlite3.connect(store.path).execute("SELECT pair_id, annotator, choice FROM answers").fetchall()
    assert sorted(rows) == sorted([(first, "default", "B"), (first, "bob", "A")])
    assert [p.pair_id for p in store.pending()] == [second]
    assert store.progress() == {"total": 2, "answered": 1, "pending": 1, "A": 0, "B": 1, "tie": 0, "skip": 0, "imported": 0}
    store.answer(second, "tie")
    prefs = store.preferences()
    assert [(p.chosen, p.rejected, p.tie) for p in prefs] == [("b", "a", False), ("a", "b", False), ("c", "d", True)]
    assert len(store.preferences(include_ties=False)) == 2
    with pytest.raises(ValueError, match="choice must be one of"):
        store.answer(first, "C")
    with pytest.raises(ValueError, match="no pair with id"):
        store.answer("nope", "A")


def test_skip_is_stored_but_not_trained_on(store):
    pid = store.add_pair("p", "a", "b")
    store.answer(pid, "skip")
    assert store.pending() == [] and store.preferences() == [] and store.progress()["skip"] == 1


def test_import_jsonl_is_idempotent_and_checks_lines(store, tmp_path):
    path = tmp_path / "prefs.jsonl"
    rows = [{"prompt": "p", "chosen": "good", "rejected": "bad"}, {"prompt": "q", "chosen": "x", "rejected": "y"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert store.import_jsonl(path) == (2, 2)
    assert store.import_jsonl(path) == (2, 0)
    assert [(p.chosen, p.rejected) for p in store.preferences()] == [("good", "bad"), ("x", "y")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "c"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: .*\['rejected'\]"):
        store.import_jsonl(bad)
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:1: not JSON"):
        store.import_jsonl(bad)


def _request(base, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers), json.loads(resp.read()) if resp.headers.get_content_type() == \
            "application/json" else resp.read().decode()


def test_http_api_serves_pages_and_records_answers(store):
    first, second = store.add_pairs([("p1", "<b>a</b>", "b"), ("p2", "c", "d")], metas=[{"display": "P1"}, {}])
    server = make_server(store)
    assert server.server_address[0] == "127.0.0.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        status, headers, page = _request(base, "/")
        assert status == 200 and "Which answer is better?" in page and "script-src 'self'" in headers[
            "Content-Security-Policy"]
        for name in ("page.js", "page.css"):
            assert _request(base, f"/static/{name}")[0] == 200
        state = _request(base, "/api/next")[2]
        assert state["pair"]["pair_id"] == first and state["pair"]["a"] == "<b>a</b>"
        assert state["pair"]["display"] == "P1" and state["progress"]["pending"] == 2
        out = _request(base, "/api/answer", {"pair_id": first, "choice": "A"})[2]
        assert out["stored"] is True and out["pair"]["pair_id"] == second
        assert _request(base, "/api/answer", {"pair_id": first, "choice": "B"})[2]["stored"] is False
        with pytest.raises(urllib.error.HTTPError) as err:
            _request(base, "/api/answer", {"pair_id": second, "choice": "maybe"})
        assert err.value.code == 400
        with pytest.raises(urllib.error.HTTPError):
            _request(base, "/api/../../etc/passwd")
    finally:
        server.shutdown()
        server.server_close()
    assert store.answers() == [(first, "default", "A")]
    with pytest.raises(ValueError, match="127.0.0.1 only"):
        make_server(store, host="0.0.0.0")


def test_cli_import_and_train_rm_end_to_end(tmp_path, capsys, monkeypatch):
    """`textgym rlhf import` then `train-rm` with a tiny encoder folder; the result is a reward."""
    transformers = pytest.importorskip("transformers")
    from textgym.rewards import make_reward
    from textgym.rewards.learned import resolve_encoder_path

    tok = transformers.AutoTokenizer.from_pretrained(resolve_encoder_path("minilm"))
    config = transformers.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(tmp_path / "enc")
    tok.save_pretrained(tmp_path / "enc")
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"say {i}", "chosen": f"great {i}", "rejected": f"awful {i}"}) + "\n"
                            for i in range(20)))
    db = str(tmp_path / "prefs.sqlite")
    assert main(["rlhf", "import", str(path), "--db", db]) == 0
    assert "20 new answers" in capsys.readouterr().out
    out = str(tmp_path / "rm")
    assert main(["rlhf", "train-rm", "--db", db, "--out", out, "--encoder", str(tmp_path / "enc"),
                 "--max-length", "16", "--n-epochs", "30", "--heldout", "0.25", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "heldout_pairwise_accuracy" in text and "n_heldout                                5" in text
    meta = json.loads((tmp_path / "rm" / "reward_model.json").read_text())
    assert meta["output"] == "score" and meta["metrics"]["n_train"] == 15
    reward = make_reward(f"rm:{out}")
    assert len(reward(["say 1"] * 2, ["great 1", "awful 1"], [["r"]] * 2)) == 2
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path / "empty-cache"))
    assert main(["rlhf", "train-rm", "--db", str(tmp_path / "new.sqlite"), "--out", out]) == 2
    assert "no preferences to train on" in capsys.readouterr().err


def test_sample_pairs_from_an_env_with_a_tiny_policy(tmp_path, smollm_tokenizer):
    """Two sampled generations per prompt go into the store, with what the page shows."""
    transformers = pytest.importorskip("transformers")
    from tiny import tiny_llama_config

    from textgym.rlhf.collect import sample_pairs

    config = transformers.LlamaConfig(**tiny_llama_config(len(smollm_tokenizer), max_position_embeddings=128))
    lm = transformers.LlamaForCausalLM(config)
    store = PreferenceStore(tmp_path / "p.sqlite")
    ids = sample_pairs("textgym/Generation-v0", lm, store, n=3, tokenizer=smollm_tokenizer, device="cpu",
                       batch_size=2, max_new_tokens=5, seed=0)
    pairs = store.pairs()
    assert len(ids) == len(pairs) == 3 and [p.pair_id for p in pairs] == ids
    for p in pairs:
        assert p.a != p.b and p.source.startswith("textgym/Generation-v0:")
        assert p.meta["display"].startswith("Write one short") and p.meta["references"]
        assert "<|im_start|>" in p.prompt  # what the env passes to rewards
    again = sample_pairs("textgym/Generation-v0", lm, store, n=3, tokenizer=smollm_tokenizer, device="cpu",
                         batch_size=2, max_new_tokens=5, seed=0)
    assert set(again) == set(ids) and len(store.pairs()) == 3  # same seed, same pairs: not added twice


# --- reward-model training settings and store errors ------------------------------------------------
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


# --- the labelling server's Host/Origin/Content-Type checks and timeouts --------------------------------
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


IMPORT_ROUTES = {"default annotator": {}, "named annotator": {"annotator": "alice"},
                 "another named annotator": {"annotator": "bob"}}


@pytest.mark.parametrize("first", sorted(IMPORT_ROUTES))
@pytest.mark.parametrize("second", sorted(IMPORT_ROUTES))
def test_the_same_preferences_imported_by_any_two_routes_count_once(tmp_path, first, second):
    """A preference is its content: a second import, from another file under any annotator, adds nothing, and an
    imported pair is never pending for a person (whatever annotator name the import used)."""
    from textgym.rlhf.store import PreferenceStore

    line = json.dumps({"prompt": "p", "chosen": "good", "rejected": "bad"}) + "\n"
    (tmp_path / "one.jsonl").write_text(line)
    (tmp_path / "two.jsonl").write_text(line)
    store = PreferenceStore(tmp_path / "s.sqlite")
    assert store.import_jsonl(tmp_path / "one.jsonl", **IMPORT_ROUTES[first]) == (1, 1)
    assert store.import_jsonl(tmp_path / "two.jsonl", **IMPORT_ROUTES[second]) == (1, 0)
    assert len(store.answers()) == 1 and store.pending("carol") == []
