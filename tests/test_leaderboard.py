"""benchmarks/leaderboard.py: suites, records, merging, rendering, local and Ray executors (tiny models)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conftest import needs

from benchmarks import leaderboard
from benchmarks.leaderboard_records import check_record, load_records, merge_records, relevant_config, write_record
from benchmarks.leaderboard_render import mean_std, render, update_readme
from benchmarks.leaderboard_suite import load_suite, plan, run_config

TINY_SUITE = """
name: tiny
model: {model}
seeds: [0]
methods: {methods}
test: {{split: test, n: 3, batch_size: 3}}
train:
  num_envs: 2
  total_timesteps: 12
  threads: 1
  tensorboard: false
  ppo: {{n_steps: 3, batch_size: 6, n_epochs: 1}}
  sft: {{epochs: 0.05, batch_size: 4}}
tasks:
  - env: textgym/Generation-v0
    env_kwargs: {{max_new_tokens: 4}}
"""


def suite_file(tmp_path, model, methods="[zero-shot, sft, ppo, sft+ppo]", extra=""):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SUITE.format(model=model, methods=methods) + extra)
    return path


def fake_record(method="ppo", seed=0, bleu=0.1, signature="sig-a", config_hash="cfg1", run_id=None):
    return {"record_version": 1, "run_id": run_id or f"{method}-{seed}-{signature}-{config_hash}", "suite": "s",
            "task": "textgym/Generation-v0", "method": method, "seed": seed, "config": {}, "config_hash": config_hash,
            "metric_signature": signature, "test_metrics": {"bleu": bleu, "rougeL": 2 * bleu},
            "wall_seconds": 10.0, "train_seconds": 8.0, "rollout_tokens_per_s": 50.0,
            "curve": [{"timesteps": 10, "ep_rew_mean": bleu / 2}, {"timesteps": 20, "ep_rew_mean": bleu}],
            "git": {"commit": "abc", "dirty": False}, "device": "cpu: test", "packages": {"torch": "2"}}


def test_render_means_stds_and_keeps_other_signatures_apart(tmp_path):
    records = tmp_path / "records"
    for r in (fake_record(seed=0, bleu=0.1), fake_record(seed=1, bleu=0.3), fake_record("zero-shot", bleu=0.05),
              fake_record(seed=0, bleu=0.9, signature="sig-b"), fake_record(seed=0, bleu=0.7, config_hash="cfg2")):
        write_record(r, records)
    out = render(records, tmp_path / "LEADERBOARD.md", tmp_path / "plots")
    text = out.read_text()
    main, _, other = text.partition("different metric signature")
    assert "| ppo [cfg cfg1] | 2 | 0.200 ± 0.141 | 0.400 ± 0.283 |" in main
    assert "| ppo [cfg cfg2] | 1 | 0.700 |" in main and "| zero-shot | 1 | 0.050 |" in main
    assert main.index("zero-shot") < main.index("ppo [cfg")  # canonical method order
    assert "0.900" not in main and "| ppo | 1 | 0.900 |" in other and "`sig-b`" in other
    assert (tmp_path / "plots" / "s__Generation-v0.png").stat().st_size > 1000
    assert "![learning curves](plots/s__Generation-v0.png)" in text


def test_runs_on_different_thread_counts_are_listed_apart(tmp_path):
    from benchmarks.leaderboard_records import record_threads

    records = tmp_path / "records"
    write_record({**fake_record(seed=0, bleu=0.1), "threads": 1}, records)
    write_record({**fake_record(seed=1, bleu=0.3), "threads": 2, "wall_seconds": 5.0}, records)
    write_record({**fake_record("zero-shot"), "threads": None, "device": "cpu: X (1 threads of 2 cores)"}, records)
    text = render(records, tmp_path / "L.md", tmp_path / "plots").read_text()
    assert "| ppo [1 thread] | 1 | 0.100 |" in text and "| ppo [2 threads] | 1 | 0.300 |" in text
    assert "| zero-shot [1 thread] | 1 |" in text and "0.200 ± " not in text  # never averaged together
    assert record_threads({"device": "cuda: H100"}) is None
    same = tmp_path / "same"
    write_record({**fake_record(seed=0), "threads": 1}, same)
    write_record({**fake_record(seed=1, bleu=0.3), "threads": 1}, same)
    assert "| ppo | 2 | 0.200 ± 0.141 |" in render(same, tmp_path / "S.md", tmp_path / "plots").read_text()


def test_readme_blocks_are_replaced_between_each_suites_markers_only(tmp_path):
    records = tmp_path / "records"
    write_record({**fake_record(), "suite": "quick"}, records)
    write_record({**fake_record(), "suite": "cpu", "run_id": "cpu-run", "task": "textgym/IMDB-v0"}, records)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- leaderboard:quick -->\nold table\n<!-- /leaderboard:quick -->\nmiddle\n"
                      "<!-- leaderboard:cpu -->\nold cpu\n<!-- /leaderboard:cpu -->\nend\n")
    assert update_readme(records, readme) == ["cpu", "quick"]
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("<!-- /leaderboard:cpu -->\nend\n")
    assert "old table" not in text and "old cpu" not in text and "\nmiddle\n" in text
    quick, cpu = text.split("middle")
    assert "| ppo | 1 | 0.100 |" in quick and "plots/quick__Generation-v0.png" in quick and "IMDB" not in quick
    assert "**textgym/IMDB-v0**" in cpu and "plots/cpu__IMDB-v0.png" in cpu and "Generation" not in cpu
    (tmp_path / "plain.md").write_text("no markers")
    assert update_readme(records, tmp_path / "plain.md") == []
    assert (tmp_path / "plain.md").read_text() == "no markers"


def test_record_config_ignores_paths_and_sections_the_method_does_not_read():
    from agents.config import config_hash, load_config, to_dict

    a = to_dict(load_config(overrides={"init": "/w/seed0/sft/final", "out": "/w/a", "ppo.vf_coef": 0.2}))
    b = to_dict(load_config(overrides={"init": "/w/seed1/sft/final", "out": "/w/b", "a2c.vf_coef": 0.3}))
    assert config_hash(relevant_config("sft+ppo", a)) != config_hash(relevant_config("sft+ppo", b))  # ppo differs
    b["ppo"]["vf_coef"] = 0.2
    assert config_hash(relevant_config("sft+ppo", a)) == config_hash(relevant_config("sft+ppo", b))
    assert config_hash(relevant_config("zero-shot", a)) == config_hash(relevant_config("zero-shot", to_dict(load_config())))
    assert "ppo" not in relevant_config("sft", a) and "init" not in relevant_config("ppo", a)


def test_a_field_added_later_keeps_the_hash_of_records_made_before_it():
    from agents.config import config_hash, load_config, to_dict

    new = to_dict(load_config(overrides={"algo": "rloo", "rloo.kl_coef": 0.02}))
    old = {**new, "rloo": {k: v for k, v in new["rloo"].items() if k != "kl_penalty"}}  # a record from before kl_penalty
    assert config_hash(relevant_config("rloo", new)) == config_hash(relevant_config("rloo", old))
    loss = to_dict(load_config(overrides={"algo": "rloo", "rloo.kl_coef": 0.02, "rloo.kl_penalty": "loss"}))
    assert config_hash(relevant_config("rloo", loss)) != config_hash(relevant_config("rloo", new))  # set: it counts


def test_mean_std():
    assert mean_std([0.2, 0.3]) == "0.250 ± 0.071"
    assert mean_std([None, float("nan")]) == "–"


def test_merge_adds_new_records_and_skips_known_ones(tmp_path):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    write_record(fake_record(seed=0), mine)
    write_record(fake_record(seed=0), theirs)  # the same run, already merged once
    write_record(fake_record(seed=1, signature="sig-b"), theirs)
    assert merge_records([theirs], mine) == (1, 1)
    assert sorted(r["seed"] for r in load_records(mine)) == [0, 1]
    assert merge_records([theirs], mine) == (0, 2)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"seed": 1}))
    with pytest.raises(ValueError, match="not a leaderboard record"):
        merge_records([bad], mine)
    broken = copy.deepcopy(fake_record())
    broken["record_version"] = 99
    with pytest.raises(ValueError, match="record_version 99"):
        check_record(broken)


def test_merge_command_renders(tmp_path, capsys):
    theirs = tmp_path / "theirs"
    write_record(fake_record(), theirs)
    args = ["merge", str(theirs), "--records", str(tmp_path / "r"), "--out", str(tmp_path / "L.md"),
            "--plots", str(tmp_path / "p")]
    assert leaderboard.main(args) == 0
    assert "merged 1 new record(s)" in capsys.readouterr().out and (tmp_path / "L.md").is_file()


def test_a_task_budget_applies_to_its_method_only(tmp_path):
    """A task's method_overrides (indented under the task) come after the suite's, for that method only."""
    suite = load_suite(suite_file(tmp_path, "m", methods="[ppo, grpo]",
                                  extra="    method_overrides: {grpo: {total_timesteps: 48}}\n"))
    task = suite.tasks[0]
    assert run_config(suite, task, "grpo", 0)["total_timesteps"] == 48
    assert run_config(suite, task, "ppo", 0)["total_timesteps"] == 12


@pytest.mark.parametrize("extra, message", [
    ("colour: red\n", r"unknown key\(s\) \['colour'\]"),
    ("method_overrides: {dqn: {}}\n", r"unknown method\(s\) \['dqn'\]"),
    ("method_overrides: {ppo: {ppo: {n_step: 3}}}\n", r"unknown config key\(s\) \['ppo.n_step'\]"),
    ("method_seeds: {ppo: 0}\n", r"method_seeds.ppo must be a list of integer seeds"),
    ("method_seeds: {dqn: [0]}\n", r"unknown method\(s\) \['dqn'\]"),
    ("method_overrides: [ppo]\n", r"method_overrides must map methods to mappings"),
    ("    method_overrides: {dqn: {}}\n", r"unknown method\(s\) \['dqn'\]"),
    ("    method_overrides: {ppo: 3}\n", r"tasks\[0\].method_overrides must map methods to mappings"),
    ("    method_overrides: {ppo: {ppo: {n_step: 3}}}\n", r"unknown config key\(s\) \['ppo.n_step'\]"),
])
def test_suite_errors_are_caught_before_running(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        load_suite(suite_file(tmp_path, "m", extra=extra))
    with pytest.raises(FileNotFoundError, match="suites: .*quick"):
        load_suite("no-such-suite")


def test_existing_quick_records_count_as_done():
    """Older records (made before EnvConfig.train_split existed) keep their identity: no rerun."""
    jobs = plan(load_suite("quick"))
    todo, skipped = leaderboard.pending_jobs(jobs, Path(leaderboard.HERE) / "records")
    assert not todo and len(skipped) == len(jobs)


def test_shipped_suites_load_and_plan():
    quick, full = load_suite("quick"), load_suite("full")
    runs = [r for job in plan(quick) for r in job.runs]
    assert {r.method for r in runs} == {"zero-shot", "sft", "ppo", "a2c", "sft+ppo"} and len(runs) == 10
    assert all(r.config["eval"]["split"] == "test" for r in runs)
    assert len(plan(full)) > len(plan(quick))


def test_sft_plus_ppo_alone_brings_its_unrecorded_sft_run(tmp_path):
    jobs = plan(load_suite(suite_file(tmp_path, "m")), methods=["sft+ppo"])
    assert [(r.method, r.record) for r in jobs[0].runs] == [("sft", False), ("sft+ppo", True)]
    assert jobs[0].runs[0].config["eval"]["after"] is False  # an unrecorded sft start is not evaluated
    recorded = plan(load_suite(suite_file(tmp_path, "m")), methods=["sft", "sft+ppo"])[-1].runs[0]
    assert recorded.method == "sft" and recorded.config["eval"]["after"] is True


def _check_records(records_dir, methods):
    records = load_records(records_dir)
    assert sorted(r["method"] for r in records) == sorted(methods)
    for r in records:
        assert r["git"]["commit"] and r["packages"]["torch"] and r["device"].startswith(("cpu", "cuda"))
        assert r["threads"] == r["config"]["threads"] == 1  # the suite's pinned count, stored
        assert {"bleu", "rouge1", "rouge2", "rougeL", "perplexity", "distinct_2"} <= set(r["test_metrics"]) and len(r["config_hash"]) == 12
        assert "nrefs:var" in r["metric_signature"] and "eval=test:3|max_new_tokens:4" in r["metric_signature"]
        if r["method"] in ("ppo", "sft+ppo"):
            assert r["rollout_tokens_per_s"] > 0 and r["curve"]
    by_method = {r["method"]: r for r in records}
    if "sft+ppo" in by_method:
        assert by_method["sft+ppo"]["stats"]["timesteps"] >= 12
    return records


def test_local_run_writes_records_and_renders(tiny_model, tmp_path, capsys):
    args = ["run", "--suite", str(suite_file(tmp_path, tiny_model)), "--records", str(tmp_path / "records"),
            "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "L.md"), "--plots", str(tmp_path / "plots")]
    assert leaderboard.main(args) == 0
    records = _check_records(tmp_path / "records", ["zero-shot", "sft", "ppo", "sft+ppo"])
    assert all({"repetition", "mean_tokens", "distinct_1"} <= set(r["test_metrics"]) for r in records)
    text = (tmp_path / "L.md").read_text()
    assert "## Suite `tiny`" in text and "| sft+ppo | 1 |" in text and "repetition" in text
    assert not list((tmp_path / "work").glob("*"))  # run folders cleaned up
    capsys.readouterr()
    assert leaderboard.main(args) == 0  # a second part: every record exists, nothing runs again
    out = capsys.readouterr().out
    assert out.count("skip (records exist") == 3 and "0 jobs, 0 runs" in out
    assert len(load_records(tmp_path / "records")) == 4


def test_cpu_suite_trains_and_evaluates_on_disjoint_slices(data_dir):
    from textgym.data import load_samples

    jobs = plan(load_suite("cpu"))
    runs = [r for job in jobs for r in job.runs if r.record]
    assert {r.task for r in runs} == {"textgym/IMDB-v0", "textgym/CommonGen-v0", "textgym/SAMSum-v0",
                                      "textgym/DailyDialog-v0"}
    assert sorted(r.seed for r in runs if r.method == "ppo" and r.task == "textgym/SAMSum-v0") == [0, 1, 2]
    assert all(len([r for r in runs if r.method == m and r.task == "textgym/IMDB-v0"]) == 1
               for m in ("zero-shot", "sft", "a2c", "sft+ppo"))
    dataset = {"textgym/IMDB-v0": "imdb", "textgym/CommonGen-v0": "commongen", "textgym/SAMSum-v0": "samsum",
               "textgym/DailyDialog-v0": "dailydialog"}
    for task in dataset:
        config = next(r.config for r in runs if r.task == task and r.method == "ppo")
        train = load_samples(dataset[task], config["env"]["train_split"], data_dir)
        test = load_samples(dataset[task], config["eval"]["split"], data_dir)
        assert not {s.id for s in train} & {s.id for s in test}, task
        assert len(test) >= 200 and config["eval"]["n"] >= 200 and not config["policy"].get("do_sample", False)
        assert "repetition" in config["env"]["reward"]


def test_cpu_suite_smoke_with_a_tiny_model(tiny_model, tmp_path, data_dir, monkeypatch):
    """The cpu suite's tasks, slices and rewards end to end, with a tiny model and budget."""
    import yaml

    monkeypatch.setenv("TEXTGYM_DATA_DIR", str(data_dir))
    suite = yaml.safe_load((Path(leaderboard.HERE) / "configs" / "cpu.yaml").read_text())
    suite.update(name="cpu-smoke", model=tiny_model, seeds=[0], methods=["ppo"], method_seeds={},
                 test={"n": 2, "batch_size": 2})
    suite["train"].update(num_envs=2, threads=1, ppo={"n_steps": 2, "batch_size": 4, "n_epochs": 1})
    for task in suite["tasks"]:
        task["env_kwargs"]["max_new_tokens"] = 3
        task["train"] = {"total_timesteps": 4}
    path = tmp_path / "cpu-smoke.yaml"
    path.write_text(yaml.safe_dump(suite))
    args = ["run", "--suite", str(path), "--records", str(tmp_path / "records"), "--work-dir", str(tmp_path / "work"),
            "--no-render"]
    assert leaderboard.main(args) == 0
    records = load_records(tmp_path / "records")
    assert len(records) == 4
    dialogue = next(r for r in records if r["task"] == "textgym/DailyDialog-v0")
    assert {"dialogue_act", "dialogue_act_acc", "rougeL", "repetition"} <= set(dialogue["test_metrics"])
    imdb = [r for r in records if r["task"] == "textgym/IMDB-v0"]
    assert all({"sentiment", "repetition", "perplexity"} <= set(r["test_metrics"]) for r in imdb)
    assert all("eval=train[90%:]:2" in r["metric_signature"] for r in imdb)


def test_ray_executor_on_a_local_instance(tiny_model, tmp_path):
    try:
        import ray
    except ImportError:
        needs(False, "ray", 'pip install "textgym[ray]"')
    suite = load_suite(suite_file(tmp_path, tiny_model, methods="[sft+ppo]"))  # one job: sft, then ppo from it
    written = []
    try:
        leaderboard.run_ray(plan(suite), tmp_path / "work", lambda rs: written.extend(write_record(r, tmp_path / "r")
                                                                                     for r in rs),
                            init_kwargs=dict(num_cpus=2, object_store_memory=80 * 1024**2))
    finally:
        ray.shutdown()
    assert len(written) == 1  # the helper sft run is not recorded
    _check_records(tmp_path / "r", ["sft+ppo"])


def test_a_job_passes_on_each_record_when_its_run_ends(tmp_path, monkeypatch):
    """sft then sft+ppo: the sft record is saved before sft+ppo starts, so an interrupted job keeps it."""
    from benchmarks.leaderboard_suite import Job, RunSpec

    job = Job([RunSpec("s", "textgym/Generation-v0", "sft", 0, {}), RunSpec("s", "textgym/Generation-v0", "sft+ppo", 0, {})])
    saved, inits = [], []

    def fake_run(spec, root, init=None):
        inits.append(init)
        if spec.method == "sft+ppo":
            assert [r["method"] for r in saved] == ["sft"]  # already passed on
            raise KeyboardInterrupt
        return {"method": spec.method}, str(root / "sft-final")

    monkeypatch.setattr(leaderboard, "execute_run", fake_run)
    with pytest.raises(KeyboardInterrupt):
        leaderboard.run_local([job], tmp_path, saved.extend)
    assert saved == [{"method": "sft"}] and inits == [None, str(tmp_path / "sft-final")]


def test_every_rl_algorithm_is_a_method_and_sft_plus_any_shares_one_sft_run(tmp_path):
    extra = "method_overrides: {rloo: {num_envs: 4}, grpo: {num_envs: 4}, sft+grpo: {num_envs: 4}}\n"
    suite = load_suite(suite_file(tmp_path, "m", methods="[rloo, grpo, nlpo, sft+ppo, sft+grpo]", extra=extra))
    jobs = plan(suite)
    assert [[(r.method, r.record) for r in job.runs] for job in jobs] == [
        [("rloo", True)], [("grpo", True)], [("nlpo", True)], [("sft", False), ("sft+ppo", True), ("sft+grpo", True)]]
    assert {r.method: r.config["algo"] for job in jobs for r in job.runs} == {
        "rloo": "rloo", "grpo": "grpo", "nlpo": "nlpo", "sft": "sft", "sft+ppo": "ppo", "sft+grpo": "grpo"}


def test_a_critic_free_method_runs_from_sft_and_is_recorded(tiny_model, tmp_path):
    extra = "method_overrides: {sft+grpo: {num_envs: 4}}\n"
    suite = load_suite(suite_file(tmp_path, tiny_model, methods="[sft+grpo]", extra=extra))
    records = leaderboard.execute_job(plan(suite)[0], str(tmp_path / "work"))
    assert [r["method"] for r in records] == ["sft+grpo"] and records[0]["config"]["algo"] == "grpo"
    assert records[0]["curve"] and records[0]["stats"]["timesteps"] >= 12
