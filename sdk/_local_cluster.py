"""The local Ray cluster rayfn starts in the background, and how to find it again.

``ray start --head --block`` runs in a session of its own, so it outlives the CLI that
started it; its pid, address and auth token live in ``$RAYFN_HOME``. Stopping sends
SIGTERM to that pid (Ray then stops every process of that cluster, and only those):
nothing is ever killed by name.

It runs in Ray's single-machine mode (``SINGLE_MACHINE_ENV``): Ray moves a node given
``--node-ip-address=127.0.0.1`` to the machine's outward address, where the GCS, raylet,
workers, agents and metrics endpoints listen on every interface, unless it believes a
cluster cannot span machines. In that mode every process of the node binds 127.0.0.1;
a client reaches it only in the same mode, which ``rayfn._connection`` enters for this
cluster. What listens where is in README.md ("Exposure"), held to the truth by
tests/test_exposure.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rayfn.exception import ClusterError

_RECORD_FILE = "cluster.json"
_TOKEN_FILE = "auth_token"
_LOG_FILE = "cluster.log"
# Printed by `ray start --block` once every process of the head node is up.
_READY_MARKER = "block forever"
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 45.0
# Ray's switch for "clusters on this platform span one machine" (meant for macOS and
# Windows): "0" keeps the node, and so every port, on 127.0.0.1.
SINGLE_MACHINE_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# A call (or actor) that asks for no GPU sees none (CUDA_VISIBLE_DEVICES=""), as a Modal
# function without gpu= has none: Ray 2.60 leaves the variable alone by default, and
# such a call would see, and could fill, the node's GPUs that others reserved.
NO_GPU_UNASKED_ENV = {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1"}


@dataclass(frozen=True)
class ClusterRecord:
    """What rayfn remembers of the cluster it started."""

    address: str  # GCS address, host:port
    pid: int  # of `ray start --block`; SIGTERM stops the whole cluster
    dashboard_url: str | None
    token_file: str
    log_file: str
    started_at: float
    loopback: bool = False  # in Ray's single-machine mode: clients must be too


def token_file(home: Path) -> Path:
    return home / _TOKEN_FILE


def ensure_token(home: Path) -> Path:
    """The cluster's auth token file, created with mode 0600 on first use."""
    path = token_file(home)
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path


def read_record(home: Path) -> ClusterRecord | None:
    """The running cluster rayfn started, or None if there is none (any more)."""
    path = home / _RECORD_FILE
    try:
        record = ClusterRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not _alive(record.pid):
        path.unlink(missing_ok=True)
        return None
    return record


def start(
    home: Path,
    *,
    port: int | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    include_dashboard: bool = True,
    dashboard_port: int | None = None,
    object_store_memory: int | None = None,
    resources: dict[str, float] | None = None,
    autoscaling_config: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> ClusterRecord:
    """Start a head node in the background and wait until it is up. With
    ``autoscaling_config``, the head runs Ray's autoscaler on that config (tests use
    Ray's ``fake_multinode`` provider, with ``RAY_FAKE_CLUSTER=1`` in ``extra_env``).

    Raises:
        ClusterError: Ray did not come up; the message has the end of its log.
    """
    home.mkdir(parents=True, exist_ok=True)
    token = ensure_token(home)
    gcs_port = port or _free_port(prefer=6379)
    dash_port = dashboard_port or _free_port(prefer=8265)
    args = [
        *_ray_command(),
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",  # kept there by SINGLE_MACHINE_ENV
        f"--port={gcs_port}",
        f"--ray-client-server-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--include-dashboard={'true' if include_dashboard else 'false'}",
        f"--dashboard-port={dash_port}",
        "--dashboard-host=127.0.0.1",
    ]
    if num_cpus is not None:
        args.append(f"--num-cpus={num_cpus}")
    if num_gpus is not None:
        args.append(f"--num-gpus={num_gpus}")
    if object_store_memory is not None:
        args.append(f"--object-store-memory={object_store_memory}")
    if resources:
        args.append(f"--resources={json.dumps(resources)}")
    if autoscaling_config is not None:
        args.append(f"--autoscaling-config={autoscaling_config}")
    env = {
        **os.environ,
        **(extra_env or {}),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        **SINGLE_MACHINE_ENV,
        **NO_GPU_UNASKED_ENV,
    }
    env.pop("RAY_ADDRESS", None)
    env.setdefault("RAYFN_VOLUMES_ROOT", str(home / "volumes"))  # this cluster's volumes
    log_file = home / _LOG_FILE
    # A detached process of its own session: it outlives the CLI and its terminal, and
    # no Popen object pretends to still own it.
    pid = os.posix_spawn(
        args[0],
        args,
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    _wait_until_ready(pid, log_file)
    record = ClusterRecord(
        address=f"127.0.0.1:{gcs_port}",
        pid=pid,
        dashboard_url=f"http://127.0.0.1:{dash_port}" if include_dashboard else None,
        token_file=str(token),
        log_file=str(log_file),
        started_at=time.time(),
        loopback=True,
    )
    (home / _RECORD_FILE).write_text(json.dumps(asdict(record), indent=2))
    return record


def stop(home: Path, grace: float = _STOP_TIMEOUT_S) -> ClusterRecord | None:
    """Stop the cluster rayfn started (by its pid), killing it after ``grace``
    seconds (Ray drains a node for up to 30 s). Returns it, or None if none ran."""
    record = read_record(home)
    if record is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(record.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    # The session we started it in holds exactly that cluster's processes: whatever
    # of it outlived the head (nodes an autoscaler started, say) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGKILL)
    (home / _RECORD_FILE).unlink(missing_ok=True)
    return record


def _wait_until_ready(pid: int, log_file: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise ClusterError(f"Ray failed to start:\n{_tail(log_file)}")
        if _READY_MARKER in log_file.read_text(errors="replace"):
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
    raise ClusterError(f"Ray did not start within {_START_TIMEOUT_S:.0f} s:\n{_tail(log_file)}")


def _ray_command() -> list[str]:
    beside = Path(sys.executable).parent / "ray"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ray")
    if found is None:
        raise ClusterError("The `ray` command is not installed; pip install 'ray[serve]'.")
    return [found]


def _free_port(prefer: int | None = None) -> int:
    candidates = [prefer, 0] if prefer else [0]
    for candidate in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = s.getsockname()[1]
            return port
    raise ClusterError("No free TCP port on 127.0.0.1.")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process counts as gone.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
