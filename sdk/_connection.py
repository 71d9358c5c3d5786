"""Connecting to Ray on first use, never at import.

Order: inside a Ray worker or Serve replica, the existing connection; else
``RAY_ADDRESS``; else the local cluster rayfn started (its address and token are in
``$RAYFN_HOME``); else start one in the background and say so on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import ray

from rayfn import _local_cluster
from rayfn.config import settings
from rayfn.exception import ClusterError
from rayfn.runtime import _ray_compat as ray_compat
from rayfn.runtime import clients

# How long the reachability probe waits for the cluster's answer.
_PROBE_TIMEOUT_S = 5.0

_lock = threading.Lock()


def connect() -> None:
    """Make sure this process is connected to a Ray cluster."""
    if ray.is_initialized():
        return
    with _lock:
        if ray.is_initialized():
            return
        address = os.environ.get("RAY_ADDRESS")
        home = settings().home
        record = _local_cluster.read_record(home)
        if address is None:
            if record is None:
                print(
                    "rayfn: no Ray cluster is running; starting a local one in the "
                    "background (stop it with `rayfn cluster stop`).",
                    file=sys.stderr,
                )
                record = _local_cluster.start(home)
            address = record.address
        if record is not None and record.address == address:
            _use_token(record.token_file)
            if record.loopback:
                _single_machine_mode()
        _check_reachable(address)
        try:
            # Calls run as tasks of the registry's job, so their output would not reach
            # this process anyway; Serve's and Ray's own chatter should not either.
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as exc:
            raise ClusterError(
                f"Cannot connect to the Ray cluster at {address}: {exc}. If it uses token "
                "authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH."
            ) from exc


def _single_machine_mode() -> None:
    """Join rayfn's local cluster, which keeps every port on 127.0.0.1 (see
    ``_local_cluster``), as Ray lets only a client in the same mode do: otherwise
    ``ray.init`` swaps 127.0.0.1 for the machine's outward address, where nothing
    answers. Ray reads the switch at import, so it is set on the module as well as in
    the environment (for processes this one starts)."""
    os.environ.update(_local_cluster.SINGLE_MACHINE_ENV)
    ray_compat.use_single_machine_mode()


def _check_reachable(address: str) -> None:
    """Ask the cluster's GCS one cheap question first (about 10 ms), so a cluster that
    wants a token we lack, or no cluster at all, is one clear line now instead of
    Ray's bare ConnectionError after about 20 s.

    Raises:
        ClusterError: the cluster refused our token, or nothing answers there.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", ray:// client addresses...: leave those to Ray
    import grpc

    token = ray_compat.auth_token()
    try:
        ray_compat.ask_cluster_id(address, token=token, timeout_s=_PROBE_TIMEOUT_S)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise ClusterError(
                f"The Ray cluster at {address} needs its auth token, and this client "
                f"{'sent a wrong one' if token is not None else 'has none'}: copy the "
                "cluster's token file (~/.rayfn/auth_token on its head node) here and set "
                "RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=/path/to/auth_token."
            ) from None
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            raise ClusterError(
                f"No Ray cluster answers at {address} (RAY_ADDRESS); start one, or unset "
                "RAY_ADDRESS to use rayfn's local cluster."
            ) from None
        # Anything else: let ray.init say what it makes of it.


def _use_token(path: str) -> None:
    """Authenticate to the local cluster with its token, even if Ray is imported."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = path
    # Ray reads its config and token once; refresh both.
    ray_compat.reload_auth_config()


def registry() -> clients.RegistryClient:
    """The call registry of the connected cluster (connecting first)."""
    connect()
    return clients.registry()


def control() -> clients.ControlClient:
    """The control actor of the connected cluster (connecting first)."""
    connect()
    return clients.control()
