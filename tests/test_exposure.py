"""What the background cluster exposes, against README.md's "Exposure" section.

One cluster for the module, started as a user starts it (``rayfn cluster start``, in a
private ``RAYFN_HOME``), with rayfn's actors, a worker and the job API on Serve running;
then every TCP socket its processes listen on, read with psutil from the process tree
of the recorded pid. It is stopped by that pid.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import psutil
import pytest

from rayfn import _local_cluster
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.timeout(180)

README = ROOT / "README.md"

# Starts rayfn's actors and a worker (a call), and Serve with the job API.
WORKLOAD = """
import rayfn
from rayfn.serve.deploy import deploy_api
from tests.apps import cli_app

cli_app.app.deploy()
print(rayfn.Function.from_name("test-cli", "double").spawn(21).get(timeout=60))
print(deploy_api())
"""


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket of the cluster."""

    process: str  # gcs_server, raylet, ray::ProxyActor..., or a Python process's script
    pid: int
    host: str
    port: int

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        address = ipaddress.ip_address(self.host)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            return address.ipv4_mapped  # a v6 socket bound to ::ffff:127.0.0.1
        return address

    @property
    def on_loopback(self) -> bool:
        return self.address.is_loopback

    def __str__(self) -> str:
        return f"{self.process} (pid {self.pid}) on {self.host}:{self.port}"


@dataclass(frozen=True)
class Exposed:
    listeners: list[Listener]
    http_port: int  # Serve's, RAYFN_HTTP_PORT
    dashboard_url: str
    token: str


def beyond_loopback_in_readme() -> set[str]:
    """The processes README.md says listen beyond loopback: its "Beyond loopback:" line
    names them in backticks (``ray::*`` for every worker and actor)."""
    found = re.search(r"^\*\*Beyond loopback:\*\* (.+?)\.$", README.read_text(), re.MULTILINE)
    assert found, "README.md's Exposure section lost its **Beyond loopback:** line"
    return set(re.findall(r"`([^`]+)`", found.group(1)))


def listeners_of(pid: int) -> list[Listener]:
    root = psutil.Process(pid)
    found = []
    for process in [root, *root.children(recursive=True)]:
        try:
            name = process_label(process)
            sockets = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue  # a worker that exited meanwhile listens on nothing
        found += [
            Listener(name, process.pid, s.laddr.ip, s.laddr.port)
            for s in sockets
            if s.status == psutil.CONN_LISTEN
        ]
    return found


def process_label(process: psutil.Process) -> str:
    """psutil's name, or for Ray's Python processes the script or module they run
    (dashboard.py, monitor.py, ray.util.client.server)."""
    name = process.name()
    if not name.startswith("python"):
        return name
    args = process.cmdline()[1:]
    if "-m" in args:
        return args[args.index("-m") + 1]
    return next((Path(arg).name for arg in args if arg.endswith(".py")), name)


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exposed]:
    home = tmp_path_factory.mktemp("rayfn-exposure")
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {"RAYFN_HOME": str(home), "RAYFN_HTTP_PORT": str(http_port), "PYTHONPATH": str(ROOT)}
    rayfn = Path(sys.executable).parent / "rayfn"
    started = subprocess.run(
        [str(rayfn), "cluster", "start", "--num-cpus", "1", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    record = _local_cluster.read_record(home)
    try:
        assert started.returncode == 0, started.stderr
        assert record is not None
        assert record.dashboard_url is not None
        ran = subprocess.run(
            [sys.executable, "-c", WORKLOAD],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.split() == ["42", f"http://127.0.0.1:{http_port}"]
        token = Path(record.token_file).read_text()
        yield Exposed(listeners_of(record.pid), http_port, record.dashboard_url, token)
    finally:
        # Nothing to drain gracefully for; by its pid, as `rayfn cluster stop` does.
        _local_cluster.stop(home, grace=3)


def test_what_listens_beyond_loopback_is_exactly_what_the_readme_names(exposed: Exposed) -> None:
    processes = {listener.process for listener in exposed.listeners}
    # The listing saw the whole cluster: its core, rayfn's actors and Serve's proxy.
    assert {"gcs_server", "raylet", "ray::CallRegistry", "ray::ProxyActor"} <= processes
    beyond = [listener for listener in exposed.listeners if not listener.on_loopback]
    named = beyond_loopback_in_readme()
    unnamed = [str(b) for b in beyond if not any(fnmatch(b.process, n) for n in named)]
    assert unnamed == [], "listening beyond loopback, not in README.md"
    stale = [n for n in named if not any(fnmatch(b.process, n) for b in beyond)]
    assert stale == [], "README.md says these listen beyond loopback; they do not"
    # The front doors of the HTTP side are on loopback (the dashboard, Serve's port).
    dashboard_port = int(exposed.dashboard_url.rpartition(":")[2])
    front_doors = [b for b in beyond if b.port in (dashboard_port, exposed.http_port)]
    assert front_doors == []


def test_without_rays_token_only_metrics_and_the_job_api_answer_over_http(
    exposed: Exposed,
) -> None:
    answers = {listener: answer_without_token(listener) for listener in exposed.listeners}
    dashboard_port = int(exposed.dashboard_url.rpartition(":")[2])
    open_ports = {
        listener: answer
        for listener, answer in answers.items()
        if answer not in ("401", "not HTTP/1.1 (gRPC)")
    }
    job_api = {listener for listener in open_ports if listener.port == exposed.http_port}
    assert {listener.process for listener in job_api} == {"ray::ProxyActor"}
    assert {open_ports[listener] for listener in open_ports.keys() - job_api} == {"metrics"}
    # The dashboard refuses its API without the token, and answers with it.
    dashboard = [listener for listener in exposed.listeners if listener.port == dashboard_port]
    assert [answers[listener] for listener in dashboard] == ["401"]
    with_token = http.client.HTTPConnection("127.0.0.1", dashboard_port, timeout=5)
    with_token.request("GET", "/api/jobs/", headers={"Authorization": f"Bearer {exposed.token}"})
    assert with_token.getresponse().status == 200


def answer_without_token(listener: Listener) -> str:
    """What a GET of the dashboard's job list gets there with no token: "401",
    "metrics" (a Prometheus page), "not HTTP/1.1 (gRPC)", or another status."""
    host = "127.0.0.1" if listener.address.is_unspecified else str(listener.address)
    connection = http.client.HTTPConnection(host, listener.port, timeout=5)
    try:
        connection.request("GET", "/api/jobs/")
        response = connection.getresponse()
        body = response.read(64)
    except (http.client.HTTPException, OSError):
        return "not HTTP/1.1 (gRPC)"
    finally:
        connection.close()
    if response.status == 200 and body.startswith(b"# HELP"):
        return "metrics"
    return str(response.status)
