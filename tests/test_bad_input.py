"""Every bad input gets its documented exception at once: nothing hangs."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rayfn
from rayfn.exception import InvalidError, NotFoundError, SerializationError
from tests.apps import jobs
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
def deployed(cluster: Cluster) -> None:
    jobs.app.deploy()


@pytest.mark.parametrize(
    "bad", ["", "fc-", "fc-short", "FC-0-1-" + "a" * 26, "fc-0-1-" + "1" * 26, "fc-" + "a" * 26, 42]
)
def test_malformed_id_is_rejected_without_a_round_trip(bad: object) -> None:
    with pytest.raises(InvalidError, match="is not a call id"):
        rayfn.FunctionCall.from_id(bad)  # type: ignore[arg-type]


def test_unknown_id_raises_not_found(cluster: Cluster) -> None:
    started = time.monotonic()
    with pytest.raises(NotFoundError, match="No call with id fc-0-1-a"):
        rayfn.FunctionCall.from_id("fc-0-1-" + "a" * 26).get(timeout=30)
    assert time.monotonic() - started < 5  # answered, not waited out


def test_unknown_app_raises_not_found_listing_deployed_apps(cluster: Cluster) -> None:
    with pytest.raises(NotFoundError, match=r"App 'no-such-app' is not deployed.*test-jobs"):
        rayfn.Function.lookup("no-such-app", "echo")
    lazy = rayfn.Function.from_name("no-such-app", "echo")
    with pytest.raises(NotFoundError, match="no-such-app"):
        lazy.spawn(1)


def test_unknown_function_raises_not_found_listing_its_functions(cluster: Cluster) -> None:
    with pytest.raises(NotFoundError, match=r"Function 'nope' is not in app 'test-jobs'.*echo"):
        rayfn.Function.lookup("test-jobs", "nope")
    with pytest.raises(NotFoundError, match="nope"):
        rayfn.Function.from_name("test-jobs", "nope").remote()


def test_unpicklable_argument_raises_serialization_error(cluster: Cluster) -> None:
    with pytest.raises(SerializationError, match=r"test-jobs\.echo.*_thread\.lock"):
        jobs.echo.spawn(threading.Lock())


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5", True])
def test_bad_get_timeout_is_rejected(cluster: Cluster, timeout: object) -> None:
    call = jobs.echo.spawn(1)
    with pytest.raises(InvalidError, match="timeout must be"):
        call.get(timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "x" * 200, "-leading-dash", None])
def test_bad_names_are_rejected(name: object) -> None:
    with pytest.raises(InvalidError, match="name"):
        rayfn.Function.from_name("test-jobs", name)  # type: ignore[arg-type]


def test_wrong_argument_count_is_refused_with_the_signature_without_running(
    cluster: Cluster,
) -> None:
    # echo takes (*args, **kwargs); slow takes (seconds: float, value=None).
    with pytest.raises(InvalidError, match=r"test-jobs\.slow\(seconds: float, value=None\)"):
        jobs.slow.spawn()
    looked_up = rayfn.Function.from_name("test-jobs", "slow")
    with pytest.raises(InvalidError, match=r"cannot take these arguments: too many positional"):
        looked_up.spawn(1, 2, 3)
    with pytest.raises(InvalidError, match=r"unexpected keyword argument 'nope'"):
        looked_up.remote(1, nope=True)
    with pytest.raises(InvalidError, match="missing a required argument: 'seconds'"):
        list(looked_up.starmap([(0.1,), ()]))  # checked before any call is sent
    no_args = rayfn.Function.lookup("test-jobs", "whoami")
    with pytest.raises(InvalidError, match="too many positional arguments"):
        no_args.spawn(1)
    assert not [
        c
        for c in rayfn.list_calls(app="test-jobs", function="slow", limit=100)
        if c.status is rayfn.CallStatus.FAILED
    ]  # nothing was submitted


def test_a_client_without_the_token_gets_a_one_line_hint_at_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = {**cluster.env(), "RAY_ADDRESS": cluster.record.address, "RAYFN_HOME": str(tmp_path)}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on
    started = time.monotonic()
    denied = subprocess.run(
        [str(Path(sys.executable).parent / "rayfn"), "app", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 10  # not Ray's ~20 s of retries
    assert denied.returncode == 1
    assert len(denied.stderr.strip().splitlines()) == 1
    assert "needs its auth token, and this client has none" in denied.stderr
    assert "RAY_AUTH_TOKEN_PATH" in denied.stderr

    nobody = subprocess.run(
        [str(Path(sys.executable).parent / "rayfn"), "app", "list"],
        env={**env, "RAY_ADDRESS": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert nobody.returncode == 1
    assert "No Ray cluster answers at 127.0.0.1:1" in nobody.stderr
