"""Calls survive a restart of the whole head node when Ray's GCS keeps its tables in an
external Redis (Ray's GCS fault tolerance): the registry journals every call into the
GCS key-value store (runtime/journal.py), which then lives in Redis, and the registry
Ray restarts on the new head replays it.

A real ``redis-server`` on a free port, a real head started the way rayfn starts its
background cluster, then gone while calls wait in the queue, in two ways: stopped as
``rayfn cluster stop`` stops it (SIGTERM to its pid; Ray drains the node first), or
crashed (SIGKILL to its process group, as a lost machine would leave it); then started
again on the same Redis, storage namespace, ``RAYFN_HOME`` and GCS port. Every driver
is a subprocess: a driver dies with its head. Everything started here is stopped by
its pid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayfn import _local_cluster
from tests.conftest import Cluster, free_port, pid_gone

pytestmark = pytest.mark.timeout(600)

DOUBLES = 20
SLOWS = 12  # 0.2 s each, one at a time: about 2.4 s of queue
# `ray start --block` drains its node for up to 30 s on SIGTERM, then stops the rest.
STOP_GRACE_S = 60.0


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server (no persistence: it stays up while the head restarts)."""
    # Not a skip: `make test` installs it (`make setup`), so its absence is a fault.
    assert shutil.which("redis-server"), "redis-server is missing: `make setup` installs it"
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    options = {
        "bind": "127.0.0.1",
        "port": str(port),
        "save": "",
        "appendonly": "no",
        "dir": str(folder),
    }
    with open(folder / "redis.log", "wb") as log:
        server = subprocess.Popen(
            ["redis-server", *(word for k, v in options.items() for word in (f"--{k}", v))],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not _redis_ping(port):
            assert server.poll() is None, (folder / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not answer within 30 s"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        assert pid_gone(server.pid)


class Head:
    """One head node's home, GCS port and GCS storage: started, stopped by its pid and
    started again on the same ones."""

    def __init__(self, home: Path, redis_address: str) -> None:
        self.home = home
        self.port = free_port()
        self.env = {
            "RAY_REDIS_ADDRESS": redis_address,
            # Its own keys in a Redis others might share (no ':' allowed).
            "RAY_external_storage_namespace": f"rayfn-test-{os.getpid()}-{os.urandom(4).hex()}",
            # SIGTERM drains the node first, 30 s by default; rayfn's actors never let
            # the head go idle, so it would always wait them out.
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "1",
        }
        self.starts = 0

    def start(self) -> Cluster:
        self.starts += 1
        record = _local_cluster.start(
            self.home,
            port=self.port,
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=300 * 1024 * 1024,
            extra_env=self.env,
        )
        return Cluster(self.home, record)

    def stop(self, grace: float) -> float:
        """SIGTERM to `ray start --block`, wait for it (and then whatever is left of
        its session); how long that took."""
        began = time.monotonic()
        record = _local_cluster.stop(self.home, grace=grace)
        assert record is not None, "no head was running"
        assert pid_gone(record.pid)
        self._keep_log()
        return time.monotonic() - began

    def crash(self) -> float:
        """SIGKILL to every process of the head's session at once, as a lost machine
        would leave it: nothing drains, nothing tells the GCS."""
        began = time.monotonic()
        record = _local_cluster.read_record(self.home)
        assert record is not None, "no head was running"
        os.killpg(record.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _local_cluster.read_record(self.home) is not None:  # reaps it
            assert time.monotonic() < deadline, "the head outlived SIGKILL"
            time.sleep(0.05)
        assert pid_gone(record.pid)
        self._keep_log()
        return time.monotonic() - began

    def leftovers(self) -> list[str]:
        """Command lines of processes still pointed at this head's GCS port (Ray's
        own name every process of a node with it)."""
        mark = f"127.0.0.1:{self.port}".encode()
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes()
            except OSError:
                continue  # gone meanwhile
            if mark in text:
                found.append(text.replace(b"\0", b" ").decode(errors="replace")[:200])
        return found

    def _keep_log(self) -> None:
        # Keep each start's log: the next start truncates it.
        log = self.home / "cluster.log"
        if log.exists():
            shutil.copy(log, self.home / f"cluster-{self.starts}.log")

    def session_dir(self) -> Path | None:
        """The session folder, from the head's log (other clusters run here too, so
        /tmp/ray/session_latest may be theirs)."""
        log = (self.home / "cluster.log").read_text(errors="replace")
        found = re.search(r"(/\S*?/session_[^/\s]+)/logs/ray_process_exit\.log", log)
        return Path(found[1]) if found else None


@pytest.fixture()
def head(tmp_path: Path, redis_address: str) -> Iterator[Head]:
    head = Head(tmp_path / "rayfn-home", redis_address)
    try:
        yield head
    finally:
        _local_cluster.stop(head.home, grace=3)


def _ran(head: Head, cluster: Cluster, code: str, timeout: float) -> dict[str, object]:
    """Run ``code`` in a driver subprocess; the JSON it printed last."""
    done = cluster.python(code, timeout=timeout)
    assert done.returncode == 0, f"{done.stderr[-4000:]}\n(Ray's logs: {head.session_dir()})"
    answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _notes(folder: Path) -> dict[int, int]:
    """How often each slow call ran, by its argument."""
    return {int(p.name.split("-")[1]): p.stat().st_size for p in folder.glob("slow-*")}


# "sigterm" (`_local_cluster.stop`, Ray drains the node first) passes as well; the crash,
# every process of the head killed at once as a lost machine leaves it, is the harder
# case and the one kept, for the suite's time.
@pytest.mark.parametrize("how", ["crash"])
def test_calls_survive_a_restart_of_the_whole_head_node(
    head: Head, tmp_path: Path, how: str
) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    cluster = head.start()
    ids = _ran(
        head,
        cluster,
        "import json, rayfn\n"
        "from tests.apps import head_restart as h\n"
        "h.app.deploy()\n"
        f"doubles = [h.double.spawn(i) for i in range({DOUBLES})]\n"
        f"assert rayfn.FunctionCall.gather(*doubles) == [2 * i for i in range({DOUBLES})]\n"
        f"slows = [h.slow.spawn(i, {str(folder)!r}) for i in range({SLOWS})]\n"
        "print(json.dumps({'double': [c.object_id for c in doubles],\n"
        "                  'slow': [c.object_id for c in slows]}))\n",
        timeout=180,
    )
    deadline = time.monotonic() + 60
    while not _notes(folder):  # one runs, the others wait their turn
        assert time.monotonic() < deadline, "no slow call ever started"
        time.sleep(0.02)

    stop_took = head.stop(grace=STOP_GRACE_S) if how == "sigterm" else head.crash()
    assert head.leftovers() == []
    before = _notes(folder)
    assert len(before) < SLOWS, "every slow call ran before the head stopped: nothing was queued"

    began = time.monotonic()
    cluster = head.start()
    start_took = time.monotonic() - began
    assert cluster.record.address == f"127.0.0.1:{head.port}"
    answers = _ran(
        head,
        cluster,
        "import json, sys, time, rayfn\n"
        f"ids = json.loads({json.dumps(ids)!r})\n"
        "began = time.monotonic()\n"
        "rayfn.FunctionCall.from_id(ids['double'][0]).get(timeout=240)\n"
        "first_after = time.monotonic() - began\n"
        "doubles = [rayfn.FunctionCall.from_id(i).get(timeout=60) for i in ids['double']]\n"
        "slows = [rayfn.FunctionCall.from_id(i).get(timeout=120) for i in ids['slow']]\n"
        "attempts = [[a.outcome for a in rayfn.FunctionCall.from_id(i).status().attempts]\n"
        "            for i in ids['slow']]\n"
        "fresh = rayfn.Function.from_name('test-head-restart', 'double').remote(50)\n"
        "print(json.dumps({'first_after': first_after, 'doubles': doubles,\n"
        "                  'slows': slows, 'attempts': attempts, 'fresh': fresh}))\n",
        timeout=420,
    )
    after = _notes(folder)
    print(
        f"stop took {stop_took:.1f} s; restart {start_took:.1f} s; first answer "
        f"{answers['first_after']:.1f} s after it; {len(before)} slow calls had "
        f"started before the stop; runs {after}; attempts {answers['attempts']}; "
        f"session {head.session_dir()}"
    )
    assert answers["doubles"] == [2 * i for i in range(DOUBLES)]
    assert answers["slows"] == [3 * i for i in range(SLOWS)]
    assert answers["fresh"] == 100  # the app is still deployed: new calls run too
    assert sorted(after) == list(range(SLOWS)), after  # every slow call ran
    # Ran twice at most: the call the stop cut short, and one whose end was not
    # journaled yet (a write in flight).
    assert sum(after.values()) - SLOWS <= 2, after
