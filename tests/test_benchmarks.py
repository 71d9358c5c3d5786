"""The benchmark suite's --quick mode, so benchmarks/ never rots. It checks that every
benchmark runs and reports numbers; speed targets live in `make bench`, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(400)


def test_quick_benchmarks_run_and_report_every_benchmark(tmp_path: Path) -> None:
    env = {
        k: v for k, v in __import__("os").environ.items() if not k.startswith(("RAY_", "RAYFN_"))
    }
    out = tmp_path / "report.json"  # not stdout: Ray prints worker logs (a killed registry) there
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=380,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["results"]]
    assert names == [
        "spawn_get_throughput",
        "spawn_map_throughput",
        "spawn_get_latency",
        "http_submit_result",
        "http_load",
        "registry_scale",
        "journal_cost",
        "schedule_tick",
        "console_pages",
    ]
    for result in report["results"]:
        assert result["rayfn"] > 0 and result["raw"] > 0, result
    assert "cores" in report["machine"]
