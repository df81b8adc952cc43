"""benchmarks/gpu_check.py runs end to end on the CPU (GPU tests skipped, with the reason) and writes its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--out",
                           str(out), "--envs", "8", "16", "--new-tokens", "8", "--prompt-length", "16",
                           "--repeats", "1", "--learn-steps", "2000"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    checks = report["checks"]
    assert set(checks) == {"tests", "syncs", "ratio", "throughput", "learning"}
    assert report["environment"]["device"] == "cpu" and report["summary"]["failed"] == []
    if checks["tests"]["status"] == "skipped":  # no CUDA here: the reason is in the report
        assert "CUDA" in checks["tests"]["reason"]
    else:
        assert checks["tests"]["status"] == "pass"
    syncs = checks["syncs"]["syncs_per_rollout"]
    assert syncs["8 tokens"] == syncs["32 tokens"]
    assert checks["ratio"]["max_abs_ratio_minus_1"]["recomputed"] < 1e-3
    assert set(checks["throughput"]["rows"]) == {"8 envs", "16 envs"}
    assert checks["learning"]["last_mean_reward"] > checks["learning"]["first_mean_reward"] + 0.3
