"""The command line against a real cluster, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import rayfn
from rayfn import _connection
from tests.apps import cli_app
from tests.conftest import ROOT, Cluster

pytestmark = pytest.mark.timeout(300)

EXAMPLE = str(ROOT / "examples" / "my_job_queue.py")


def test_modal_job_queue_example_deploys_and_runs(cluster: Cluster) -> None:
    deployed = cluster.cli("deploy", EXAMPLE)
    assert deployed.returncode == 0, deployed.stderr
    assert "Deployed app my-job-queue version" in deployed.stdout

    ran = cluster.cli("run", EXAMPLE)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "{'result': 'my-data'}"


def test_app_list_and_stop(cluster: Cluster) -> None:
    assert cluster.cli("deploy", EXAMPLE).returncode == 0
    listed = cluster.cli("app", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    apps = {a["name"]: a for a in json.loads(listed.stdout)}
    assert apps["my-job-queue"]["functions"] == ["process_job"]
    assert apps["my-job-queue"]["source"] == EXAMPLE

    stopped = cluster.cli("app", "stop", "my-job-queue")
    assert stopped.returncode == 0, stopped.stderr
    missing = cluster.cli("app", "stop", "my-job-queue")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "Error: No deployed app named 'my-job-queue' (see `rayfn app list`)."
    )
    ran = cluster.cli("run", EXAMPLE)  # its entrypoint looks up the stopped app
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    assert "App 'my-job-queue' is not deployed" in ran.stderr


def test_run_passes_entrypoint_options_and_runs_single_functions(cluster: Cluster) -> None:
    ran = cluster.cli("run", "tests/apps/cli_app.py::main", "--n", "4", "--word", "hi")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "hi hi hi hi"

    one = cluster.cli("run", "tests/apps/cli_app.py::double", "--x", "21")
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == "42"

    bad = cluster.cli("run", "tests/apps/cli_app.py::main", "--n", "many")
    assert bad.returncode == 1
    assert "'many' is not a valid integer" in bad.stderr


def test_run_and_deploy_draw_progress_bars(cluster: Cluster) -> None:
    ran = cluster.cli("run", "tests/apps/cli_app.py::doubles", "--n", "30")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == str([2 * i for i in range(30)])
    assert re.search(r"test-cli\.double\.map.*30/30", ran.stderr), ran.stderr

    deployed = cluster.cli("deploy", "tests/apps/cli_app.py")
    assert deployed.returncode == 0, deployed.stderr
    assert re.search(r"pickle 2 functions.*2/2", deployed.stderr), deployed.stderr
    assert re.search(r"register test-cli.*1/1", deployed.stderr), deployed.stderr


def test_call_get_prints_the_result_or_says_pending(cluster: Cluster) -> None:
    cli_app.app.deploy()  # spawned here, fetched by another process: `rayfn call get`
    done_id = rayfn.Function.from_name("test-cli", "double").spawn(5).object_id
    pending_id = rayfn.Function.from_name("test-cli", "nap").spawn(60).object_id
    got = cluster.cli("call", "get", done_id, "--timeout", "60")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "10"
    pending = cluster.cli("call", "get", pending_id)
    assert pending.returncode == 1
    assert re.search(r"Pending: Call fc-[\w-]+ has not finished yet", pending.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy", "no/such/file.py"], "Error: No such file: no/such/file.py"),
        (["deploy", "README.md"], "Error: README.md is not a Python file (.py)."),
        (["deploy", "tests/apps/no_app.py"], "Error: No rayfn.App in"),
        (["call", "get", "not-an-id"], "Error: 'not-an-id' is not a call id"),
    ],
)
def test_user_mistakes_print_one_line_without_traceback(
    cluster: Cluster, args: list[str], message: str
) -> None:
    result = cluster.cli(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cluster_status_reports_the_running_cluster(cluster: Cluster) -> None:
    status = cluster.cli("cluster", "status")
    assert status.returncode == 0, status.stderr
    assert cluster.record.address in status.stdout


def test_deploying_a_file_with_a_syntax_error_names_the_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import rayfn\napp = rayfn.App('broken')\ndef f(:\n    pass\n")
    result = cluster.cli("deploy", str(broken))
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {broken}:3: syntax error: invalid syntax"


def test_deploying_a_same_name_app_from_another_file_replaces_it_with_a_warning(
    cluster: Cluster, tmp_path: Path
) -> None:
    source = (
        "import rayfn\napp = rayfn.App('test-dup')\n@app.function()\ndef f():\n    return {n}\n"
    )
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text(source.format(n=1))
    second.write_text(source.format(n=2))
    assert cluster.cli("deploy", str(first)).returncode == 0
    replaced = cluster.cli("deploy", str(second))
    assert replaced.returncode == 0, replaced.stderr
    assert (
        f"App 'test-dup' from {second} replaces the one deployed from {first}." in replaced.stderr
    )
    again = cluster.cli("deploy", str(second))  # same file: no warning
    assert "replaces" not in again.stderr
    assert rayfn.Function.lookup("test-dup", "f").remote() == 2


def test_a_file_that_fails_to_import_prints_only_its_traceback_and_one_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    bad = tmp_path / "cli_bad_import.py"
    bad.write_text("import rayfn\nimport no_such_package_here\napp = rayfn.App('x')\n")
    result = cluster.cli("deploy", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert f'File "{bad}", line 2, in <module>' in result.stderr
    assert lines[-2] == "ModuleNotFoundError: No module named 'no_such_package_here'"
    assert lines[-1].startswith(f"Error: {bad} failed to import: ModuleNotFoundError")
    assert "typer" not in result.stderr and "click" not in result.stderr
    assert len(lines) == 5


def test_call_list_prints_whole_ids_into_a_pipe(cluster: Cluster) -> None:
    cli_app.app.deploy()
    ids = [rayfn.Function.from_name("test-cli", "double").spawn(i).object_id for i in range(3)]
    listed = cluster.cli("call", "list", "--app", "test-cli", "--function", "double")
    assert listed.returncode == 0, listed.stderr
    for call_id in ids:
        assert call_id in listed.stdout  # not cut to fc-0-1-… as a narrow table would


def test_an_async_entrypoint_is_awaited(cluster: Cluster, tmp_path: Path) -> None:
    file = tmp_path / "cli_async_entry.py"
    file.write_text(
        "import asyncio\n"
        "import rayfn\n"
        "app = rayfn.App('test-cli-async')\n"
        "@app.function()\n"
        "def double(x: int) -> int:\n"
        "    return 2 * x\n"
        "@app.local_entrypoint()\n"
        "async def main(n: int = 4):\n"
        "    await asyncio.sleep(0)\n"
        "    print('doubled', await double.remote.aio(n))\n"
    )
    result = cluster.cli("run", str(file), "--n", "21")
    assert result.returncode == 0, result.stderr
    assert "doubled 42" in result.stdout
    assert "never awaited" not in result.stderr


# -- what calls print, and what becomes of them when the run ends -------------------------

OUTPUT_APP = "tests/apps/output_app.py"
_PREFIX = r"\[(\w+) (fc-\d+-\d+-[a-z2-7]{26})\] "
_RAYFN = str(Path(sys.executable).parent / "rayfn")


def test_run_shows_what_calls_print_once_with_function_and_call(cluster: Cluster) -> None:
    ran = cluster.cli("run", f"{OUTPUT_APP}::main", "--n", "2")
    assert ran.returncode == 0, ran.stderr
    out, err = ran.stdout, ran.stderr
    for i in range(2):
        (said,) = re.findall(_PREFIX + f"hello from call {i}$", out, re.M)
        assert said[0] == "chatty"
        assert re.findall(_PREFIX + f"warning {i} on stderr$", err, re.M) == [said]
        assert re.findall(_PREFIX + f"INFO:user:logged {i}$", err, re.M) == [said]
    # The progress bar drawn with carriage returns ends at its last state, on one line.
    assert re.search(_PREFIX + "working 5/5$", err, re.M), err
    assert not re.search(_PREFIX + "$", err, re.M), err
    assert "done" in out.splitlines()


def test_run_streams_output_while_the_call_runs(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "seen"
    with _running(cluster, f"{OUTPUT_APP}::live", "--marker", str(marker)) as run:
        assert run.stdout is not None
        for line in run.stdout:  # the call waits for the marker, made once we read this
            if re.match(_PREFIX + "waiting for the marker$", line):
                marker.touch()
                break
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert re.search(_PREFIX + r"printed at [\d.]+$", out, re.M), out
    assert "seen" in out.splitlines()  # the result; the call's last print may come after


def _running(cluster: Cluster, *args: str, grace: str = "30") -> subprocess.Popen[str]:
    """``rayfn run ARGS`` in the background, its output in pipes."""
    return subprocess.Popen(
        [_RAYFN, "run", *args],
        env={**cluster.env(), "RAYFN_CLIENT_GRACE": grace},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# What became of a run's calls and app is read in this process, not with `rayfn call list`
# or `rayfn app list` (the same registry and control actor answer): a `rayfn` process
# takes seconds to start, and the checks below poll.


def _statuses(ids: list[str]) -> list[str]:
    found = {c.call_id: c.status.value for c in rayfn.list_calls(app="test-output", limit=1000)}
    return [found.get(i, "missing") for i in ids]


def _ephemeral_apps() -> list[str]:
    apps = _connection.control().list_apps().result()
    return [a.name for a in apps if a.name.startswith("test-output@")]


def _eventually(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_run_cancels_calls_left_running_and_detach_keeps_them(cluster: Cluster) -> None:
    ran = cluster.cli("run", f"{OUTPUT_APP}::leave", "--n", "3", "--seconds", "60")
    assert ran.returncode == 0, ran.stderr
    ids = ran.stdout.split()
    assert len(ids) == 3
    assert "Cancelled 3 calls of test-output@ep-" in ran.stderr
    assert _statuses(ids) == ["CANCELLED"] * 3
    assert _ephemeral_apps() == []

    detached = cluster.cli("run", "--detach", f"{OUTPUT_APP}::leave", "--n", "2", "--seconds", "3")
    assert detached.returncode == 0, detached.stderr
    ids = detached.stdout.split()[:2]
    assert "Detached:" in detached.stdout
    assert _eventually(lambda: _statuses(ids) == ["SUCCEEDED"] * 2)
    # Once its calls ended, the detached app stops by itself.
    assert _eventually(lambda: _ephemeral_apps() == [], timeout=15)


def test_a_killed_run_leaves_no_app_and_no_calls_behind(cluster: Cluster) -> None:
    with _running(cluster, f"{OUTPUT_APP}::hang", grace="3") as run:
        try:
            assert run.stdout is not None
            ids = run.stdout.readline().split()
            assert len(ids) == 2
            assert len(_ephemeral_apps()) == 1
        finally:
            run.send_signal(signal.SIGKILL)
    assert _eventually(lambda: _ephemeral_apps() == [], timeout=30)
    assert _statuses(ids) == ["CANCELLED"] * 2


def test_an_entrypoint_that_raises_exits_1_with_the_users_traceback(cluster: Cluster) -> None:
    ran = cluster.cli("run", f"{OUTPUT_APP}::fails")
    assert ran.returncode == 1
    err = ran.stderr
    assert 'raise ValueError(f"bad input {x}")' in err, err
    assert err.strip().splitlines()[-1] == (
        "Error: tests/apps/output_app.py::fails raised ValueError: bad input 7"
    )
    for internal in ("typer", "click", "site-packages/rayfn", "rayfn/sdk", "/ray/"):
        assert internal not in err, err


def test_sigterm_stops_a_run_at_once_without_a_stack_dump(cluster: Cluster) -> None:
    # The default grace (30 s): the run itself cancels its calls.
    with _running(cluster, f"{OUTPUT_APP}::hang") as run:
        assert run.stdout is not None
        ids = run.stdout.readline().split()
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "Interrupted" in err and "Cancelled 2 calls" in err, err
    assert "SIGTERM" not in err and "***" not in err and "Traceback" not in err, err
    assert _statuses(ids) == ["CANCELLED"] * 2
    assert _ephemeral_apps() == []


def test_http_start_reaches_a_token_protected_cluster(cluster: Cluster) -> None:
    started = cluster.cli("http", "start")
    assert started.returncode == 0, started.stderr
    url = started.stdout.split("job API => ", 1)[1].split("/v1", 1)[0]
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


def test_enable_output_shows_what_deployed_functions_print(cluster: Cluster) -> None:
    script = (
        "import rayfn\n"
        "from tests.apps import output_app\n"
        "output_app.app.deploy()\n"
        "with rayfn.enable_output():\n"
        "    print(rayfn.Function.from_name('test-output', 'chatty').remote(8))\n"
    )
    ran = cluster.python(script)
    assert ran.returncode == 0, ran.stderr
    assert re.search(_PREFIX + "hello from call 8$", ran.stdout, re.M), ran.stdout
    assert cluster.cli("app", "stop", "test-output").returncode == 0
