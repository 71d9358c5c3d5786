"""rayfn's HTTP side on a real Ray Serve, on loopback, driven with httpx."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from ray import serve

import rayfn
from rayfn import _connection
from rayfn._loader import find_app, import_file
from rayfn._web_hosting import delete_web_functions
from rayfn.exception import ConflictError, ExpiredUnstartedError, InvalidError, NotFoundError
from rayfn.runtime.launcher import pending_demand
from rayfn.serve.deploy import deploy_api, stop_api
from tests.apps import api_jobs, http_worker, web_resources
from tests.conftest import ROOT, Cluster, free_port

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def base(cluster: Cluster) -> Iterator[str]:
    """Serve on a free loopback port, with the job API and the test apps deployed."""
    port = free_port()
    os.environ["RAYFN_HTTP_PORT"] = str(port)
    os.environ["RAYFN_HTTP_MAX_RESULT"] = str(64 * 1024)
    os.environ["RAYFN_HTTP_BODY_TIMEOUT"] = "3"
    try:
        http_worker.app.deploy()
        api_jobs.app.deploy()
        url = deploy_api()
        assert url == f"http://127.0.0.1:{port}"
        yield url
    finally:
        for name in ("RAYFN_HTTP_PORT", "RAYFN_HTTP_MAX_RESULT", "RAYFN_HTTP_BODY_TIMEOUT"):
            os.environ.pop(name, None)


def poll(url: str, until: int, *, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        answer = httpx.get(url, timeout=10)
        if answer.status_code == until or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_modal_endpoint_program_submit_poll_result_expiry(base: str) -> None:
    endpoint = find_app(import_file(ROOT / "examples" / "my_job_queue_endpoint.py"))
    endpoint.deploy()
    url = endpoint.registered_functions["fastapi_app"].get_web_url()
    assert url == f"{base}/fastapi-modal/fastapi_app"

    submitted = httpx.post(f"{url}/submit", params={"data": "data"}, timeout=30)
    assert submitted.status_code == 200, submitted.text
    call_id = submitted.json()["call_id"]
    assert call_id.startswith("fc-")

    pending = httpx.get(f"{url}/result/{call_id}", timeout=10)
    assert pending.status_code == 202  # the job sleeps 2 s
    done = poll(f"{url}/result/{call_id}", 200)
    assert done.status_code == 200
    assert done.json() == {"result": "data"}
    expired = poll(f"{url}/result/{call_id}", 404)  # result_ttl=4
    assert expired.status_code == 404


def test_job_api_spawn_status_result(base: str) -> None:
    created = httpx.post(
        f"{base}/v1/apps/api-jobs/functions/add/calls",
        json={"args": [2], "kwargs": {"b": 40}},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    call_id = created.json()["call_id"]
    done = poll(f"{base}/v1/calls/{call_id}/result", 200)
    assert done.json() == {"call_id": call_id, "status": "SUCCEEDED", "result": 42}
    record = httpx.get(f"{base}/v1/calls/{call_id}", timeout=10).json()
    assert record["app"] == "api-jobs" and record["function"] == "add"
    assert record["status"] == "SUCCEEDED"
    assert record["created_at"] <= record["started_at"] <= record["finished_at"]


def test_job_api_pending_expired_unknown_malformed(base: str) -> None:
    napping = httpx.post(
        f"{base}/v1/apps/api-jobs/functions/nap/calls", json={"args": [30]}, timeout=30
    ).json()["call_id"]
    deadline = time.monotonic() + 30
    while True:  # PENDING until the nap has run for a moment, then RUNNING
        pending = httpx.get(f"{base}/v1/calls/{napping}/result", timeout=10)
        assert pending.status_code == 202 and pending.json()["status"] in ("PENDING", "RUNNING")
        if pending.json()["status"] == "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert pending.json()["status"] == "RUNNING"

    fleeting = httpx.post(
        f"{base}/v1/apps/api-jobs/functions/fleeting/calls", json={"args": ["x"]}, timeout=30
    ).json()["call_id"]
    assert poll(f"{base}/v1/calls/{fleeting}/result", 410).json()["error"] == "expired"

    unknown = httpx.get(f"{base}/v1/calls/fc-0-1-{'a' * 26}/result", timeout=10)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    malformed = httpx.get(f"{base}/v1/calls/fc-nope/result", timeout=10)
    assert (malformed.status_code, malformed.json()["error"]) == (422, "invalid")
    no_app = httpx.post(f"{base}/v1/apps/no-app/functions/f/calls", json={}, timeout=10)
    assert (no_app.status_code, no_app.json()["error"]) == (404, "not_found")
    no_fn = httpx.post(f"{base}/v1/apps/api-jobs/functions/nope/calls", json={}, timeout=10)
    assert no_fn.status_code == 404 and "its functions: add" in no_fn.json()["message"]


def test_job_api_failed_call_and_non_json_result(base: str) -> None:
    failed = httpx.post(
        f"{base}/v1/apps/api-jobs/functions/explode/calls", json={"args": ["kaboom"]}, timeout=30
    ).json()["call_id"]
    answer = poll(f"{base}/v1/calls/{failed}/result", 424)
    assert answer.status_code == 424
    error = answer.json()["error"]
    assert error["type"] == "builtins.ValueError"
    assert error["message"] == "kaboom"
    assert "raise ValueError(message)" in error["traceback"]
    assert "rayfn/runtime" not in error["traceback"] and "executor.py" not in error["traceback"]

    odd = httpx.post(f"{base}/v1/apps/api-jobs/functions/not_json/calls", timeout=30)
    answer = poll(f"{base}/v1/calls/{odd.json()['call_id']}/result", 406)
    assert (answer.status_code, answer.json()["error"]) == (406, "not_json")


def test_job_api_bytes_results_are_base64_up_to_the_cap(base: str) -> None:
    """RAYFN_HTTP_MAX_RESULT is 64 KiB for this module's API."""
    url = f"{base}/v1/apps/api-jobs/functions/binary/calls"
    small = httpx.post(url, json={"args": [1000]}, timeout=30).json()["call_id"]
    answer = poll(f"{base}/v1/calls/{small}/result", 200)
    assert answer.json()["encoding"] == "base64"
    assert base64.b64decode(answer.json()["result"]) == b"\xff\xfe" * 500
    big = httpx.post(url, json={"args": [1_000_000]}, timeout=30).json()["call_id"]
    answer = poll(f"{base}/v1/calls/{big}/result", 413)
    assert (answer.status_code, answer.json()["error"]) == (413, "result_too_large")


def test_job_api_code_that_cannot_load_fails_without_rayfn_frames(
    base: str, tmp_path: Path
) -> None:
    """The function's code refers to a module only this process has: loading it on the
    worker fails, and the 424 shows the error, not rayfn's frames or install paths."""
    (tmp_path / "only_on_the_client.py").write_text("class Thing:\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import only_on_the_client  # type: ignore[import-not-found]

        thing = only_on_the_client.Thing()
        app = rayfn.App("http-cannot-load")

        @app.function(name="job")
        def job() -> str:
            return type(thing).__name__

        app.deploy()
    finally:
        sys.path.remove(str(tmp_path))
    call_id = httpx.post(f"{base}/v1/apps/http-cannot-load/functions/job/calls", timeout=30).json()[
        "call_id"
    ]
    answer = poll(f"{base}/v1/calls/{call_id}/result", 424)
    assert answer.status_code == 424, answer.text
    error = answer.json()["error"]
    assert error["type"] == "builtins.ModuleNotFoundError"
    assert "only_on_the_client" in error["message"]
    for internal in ("site-packages", "executor.py", "rayfn/runtime", str(ROOT)):
        assert internal not in answer.text, internal


def test_web_apps_cannot_take_the_job_api_paths(base: str) -> None:
    app = rayfn.App("v1")

    @app.function(name="calls")
    @rayfn.asgi_app()
    def calls() -> Any:
        return fastapi.FastAPI()

    with pytest.raises(InvalidError, match=r"/v1/calls.*reserves"):
        app.deploy()
    with pytest.raises(NotFoundError):  # refused before anything was deployed
        rayfn.Function.from_name("v1", "calls").hydrate()
    with pytest.raises(InvalidError, match="reserves"):
        rayfn.asgi_app(route_prefix="/docs")
    assert httpx.get(f"{base}/openapi.json", timeout=10).status_code == 200


def test_clients_that_give_up_mid_submit_leave_the_api_working(base: str) -> None:
    """Submits whose clients give up after a few ms cancel their handlers while the
    spawn is on its way; later submits and every route still answer."""
    url = f"{base}/v1/apps/api-jobs/functions/add/calls"
    given_up = 0
    for i in range(50):
        try:
            httpx.post(url, json={"args": [i]}, timeout=0.002 + 0.001 * (i % 10))
        except httpx.TimeoutException:
            given_up += 1
    assert given_up > 0
    with httpx.Client(timeout=10) as client:
        ids = []
        for i in range(100):
            answer = client.post(url, json={"args": [i, 1]})
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["call_id"])
        for i, call_id in enumerate(ids):
            assert poll(f"{base}/v1/calls/{call_id}/result", 200).json()["result"] == i + 1
        assert client.get(f"{base}/healthz").status_code == 200


def test_stalled_bodies_do_not_hold_up_other_requests(base: str) -> None:
    """Five clients send headers and half a body, then stall; 100 other requests are
    each answered within 2 s meanwhile, and the stalled ones get 408 once their body
    is late (RAYFN_HTTP_BODY_TIMEOUT is 3 s here)."""
    host, port = base.removeprefix("http://").split(":")
    stalled = []
    for path in ["/healthz", "/v1/apps/api-jobs/functions/add/calls"] * 2 + ["/healthz"]:
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"args": ['.encode()
        )
        stalled.append(sock)
    try:
        with httpx.Client(timeout=2) as client:
            for i in range(100):
                if i % 3 == 0:
                    answer = client.get(f"{base}/healthz")
                    assert answer.status_code == 200
                elif i % 3 == 1:
                    answer = client.post(
                        f"{base}/v1/apps/api-jobs/functions/add/calls", json={"args": [i]}
                    )
                    assert answer.status_code == 201
                else:
                    answer = client.get(f"{base}/v1/calls/fc-0-1-{'a' * 26}")
                    assert answer.status_code == 404
        for sock in stalled:
            answer = b""
            while chunk := sock.recv(4096):  # the API closes the connection after it
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b'"body_timeout"' in answer
    finally:
        for sock in stalled:
            sock.close()


def test_job_api_bodies_are_json_only_and_capped(base: str) -> None:
    url = f"{base}/v1/apps/api-jobs/functions/add/calls"
    headers = {"content-type": "application/json"}
    bad_utf8 = httpx.post(url, content=b"\xff\xfe{}", headers=headers, timeout=10)
    assert (bad_utf8.status_code, bad_utf8.json()["error"]) == (422, "invalid_json")
    not_json = httpx.post(url, content=b"{args", headers=headers, timeout=10)
    assert (not_json.status_code, not_json.json()["error"]) == (422, "invalid_json")
    huge = httpx.post(
        url, content=b"[" + b"1," * (9 * 1024 * 1024) + b"1]", headers=headers, timeout=60
    )
    assert (huge.status_code, huge.json()["error"]) == (413, "too_large")
    wrong_shape = httpx.post(url, json={"args": "not a list"}, timeout=10)
    assert (wrong_shape.status_code, wrong_shape.json()["error"]) == (422, "invalid_request")
    deep = httpx.post(url, content=b'{"args": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", timeout=10)
    assert (deep.status_code, deep.json()["error"]) == (422, "invalid_json")  # was a 500
    unlabelled = httpx.post(url, content=b'{"args": [20, 22]}', timeout=30)  # no Content-Type
    assert unlabelled.status_code == 201, unlabelled.text
    shouting = httpx.post(
        url, json={"args": [1]}, headers={"content-type": "Application/JSON"}, timeout=30
    )
    assert shouting.status_code == 201, shouting.text
    missing = httpx.get(f"{base}/v1/no-such-route", timeout=10)
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")


def test_openapi_docs_health_and_cancel(base: str) -> None:
    schema = httpx.get(f"{base}/openapi.json", timeout=10)
    assert schema.status_code == 200
    assert set(schema.json()["paths"]) >= {
        "/v1/apps/{app}/functions/{function}/calls",
        "/v1/calls/{call_id}",
        "/v1/calls/{call_id}/result",
        "/healthz",
    }
    assert httpx.get(f"{base}/docs", timeout=10).status_code == 200
    assert httpx.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    cancel = httpx.delete(f"{base}/v1/calls/fc-0-1-{'a' * 26}", timeout=10)
    assert (cancel.status_code, cancel.json()["error"]) == (404, "not_found")


def test_fastapi_endpoint_serves_one_function(base: str) -> None:
    url = api_jobs.square.get_web_url()
    assert url == f"{base}/api-jobs/square"
    answer = httpx.get(url, params={"x": 7}, timeout=30)
    assert (answer.status_code, answer.json()) == (200, {"square": 49})


def test_every_kind_of_web_function_modal_style(cluster: Cluster, base: str) -> None:
    done = cluster.cli(
        "deploy",
        "tests/apps/modal_style/web.py",
        env={"RAYFN_HTTP_PORT": os.environ["RAYFN_HTTP_PORT"]},
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        at = f"{base}/modal-style-web"
        documented, plain = f"{at}/documented", f"{at}/plain"
        assert httpx.get(documented, params={"x": 2}, timeout=30).json() == {"double": 4}
        assert httpx.get(plain, params={"x": 2}, timeout=30).json() == {"triple": 6}
        assert httpx.get(f"{documented}/docs", timeout=30).status_code == 200
        assert httpx.get(f"{plain}/docs", timeout=30).status_code == 404
        assert httpx.get(f"{plain}/openapi.json", timeout=30).status_code == 404
        hello = httpx.get(f"{at}/flask_app/hello", params={"name": "wsgi"}, timeout=30)
        assert hello.json() == {"hello": "wsgi"}
        served = httpx.get(f"{at}/files/hello.txt", timeout=30)
        assert (served.status_code, served.text) == (200, "served by http.server")
        assert httpx.get(f"{at}/files/missing.txt", timeout=30).status_code == 404
        greeted = httpx.get(f"{at}/Greeter.greet", params={"name": "you"}, timeout=30)
        assert greeted.json() == {"greeting": "hello you"}
        with httpx.stream("GET", f"{at}/spell", params={"word": "ray"}, timeout=60) as spelled:
            assert list(spelled.iter_lines()) == ["r", "a", "y"]
        # The site at the root of its own host: its absolute paths are its own.
        port = base.rsplit(":", 1)[1]
        own = f"http://modal-style-web-site.localhost:{port}"
        assert f"site => {at}/site\n  at its own root: {own}" in done.stdout, done.stdout
        host = {"host": f"modal-style-web-site.localhost:{port}"}
        assert httpx.get(f"{base}/", headers=host, timeout=30).text.startswith('<a href="/about"')
        assert httpx.get(f"{base}/about", headers=host, timeout=30).json() == {"page": "about"}
        moved = httpx.get(f"{base}/go", headers=host, timeout=30)
        assert (moved.status_code, moved.headers["location"]) == (307, "/about")
        assert httpx.get(f"{at}/site/about", timeout=30).json() == {"page": "about"}
        # Other hosts are the job API's as before.
        assert httpx.get(f"{base}/healthz", timeout=30).json() == {"status": "ok"}
        unknown = {"host": f"nothing-here.localhost:{port}"}
        assert httpx.get(f"{base}/healthz", headers=unknown, timeout=30).status_code == 200
    finally:
        stopped = cluster.cli("app", "stop", "modal-style-web")
        assert stopped.returncode == 0, stopped.stderr


def test_rayfn_run_serves_the_apps_endpoints_while_it_runs(cluster: Cluster, base: str) -> None:
    # No RAYFN_HTTP_PORT here: where Serve answers is the cluster's to say.
    done = cluster.cli("run", "tests/apps/modal_style/web_run.py", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    url = f"{base}/modal-style-web-run-dev/hello"
    for line in [f"url: {url}", "same inside a call: True", "answer: {'hello': 'run'}"]:
        assert line in done.stdout, f"{line!r} missing from:\n{done.stdout}"
    assert httpx.get(url, timeout=30).status_code == 404  # gone with the run


def test_web_replicas_hold_the_resources_their_function_asks_for(base: str) -> None:
    web_resources.app.deploy()
    try:
        answer = poll(web_resources.sized.get_web_url(), 200, seconds=60)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"CPU": 0.5, "memory": 256 * 1024 * 1024}
        # No GPU here: deploy did not wait for it; the replica waits for one, asked of
        # Ray, instead of running on CPU.
        deadline = time.monotonic() + 30
        while ({"GPU": 1.0}, 1) not in pending_demand()[0]:
            assert time.monotonic() < deadline, pending_demand()
            time.sleep(0.2)
        status = serve.status().applications["rayfn:web-resources:needs_gpu"]
        assert status.deployments["web-resources.needs_gpu"].replica_states == {"STARTING": 1}
    finally:
        delete_web_functions("web-resources")


def test_async_twins_in_the_sdk(base: str) -> None:
    import asyncio

    async def main() -> tuple[int, int]:
        call = await api_jobs.add.spawn.aio(1, b=2)
        first = await call.get.aio(timeout=60)
        second = await api_jobs.add.remote.aio(3, 4)
        return first, second

    assert asyncio.run(main()) == (3, 7)


def test_rayfn_serve_reloads_and_stops_cleanly_on_sigterm(
    cluster: Cluster, base: str, tmp_path: Path
) -> None:
    source = tmp_path / "served.py"
    source.write_text(_served_app("first"))
    rayfn = Path(sys.executable).parent / "rayfn"
    with subprocess.Popen(
        [str(rayfn), "serve", str(source)],
        env={**cluster.env(), "RAYFN_HTTP_PORT": os.environ["RAYFN_HTTP_PORT"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            url = _wait_for_line(proc, " => ").split(" => ")[1].strip()
            assert url == f"{base}/served-dev/hello"
            assert httpx.get(url, timeout=10).json() == {"version": "first"}
            # The app's image applies, and what handlers print or raise shows here.
            assert httpx.get(f"{url}/flavour", timeout=10).json() == "from-the-image"
            _wait_for_line(proc, "[hello web] asked for the flavour")
            assert httpx.get(f"{url}/boom", timeout=10).status_code == 500
            _wait_for_line(proc, "RuntimeError: boom in the handler")

            source.write_text(_served_app("second"))
            _wait_for_line(proc, "reloading")
            _wait_for_line(proc, " => ")
            assert poll_json(url, {"version": "second"})

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert not any(name.startswith("rayfn-dev:served:") for name in serve.status().applications)
    assert httpx.get(url, timeout=10).status_code == 404


def test_rayfn_deploy_stays_up_until_app_stop(cluster: Cluster, base: str, tmp_path: Path) -> None:
    source = tmp_path / "deployed_web.py"
    source.write_text(_served_app("deployed").replace('"served"', '"deployed-web"'))
    deployed = cluster.cli("deploy", str(source))
    assert deployed.returncode == 0, deployed.stderr
    assert f"hello => {base}/deployed-web/hello" in deployed.stdout
    assert httpx.get(f"{base}/deployed-web/hello", timeout=10).json() == {"version": "deployed"}
    stopped = cluster.cli("app", "stop", "deployed-web")
    assert stopped.returncode == 0, stopped.stderr
    assert httpx.get(f"{base}/deployed-web/hello", timeout=10).status_code == 404


def test_a_failed_deploy_leaves_the_previous_version_serving_or_nothing(
    cluster: Cluster, base: str, tmp_path: Path
) -> None:
    source = tmp_path / "flaky_web.py"
    url = f"{base}/flaky-web/site"

    def deploy(broken: bool) -> subprocess.CompletedProcess[str]:
        source.write_text(_flaky_app(broken))
        return cluster.cli("deploy", str(source))

    def listed() -> dict[str, int]:
        """What `rayfn app list` would list, asked in this process (no seconds-long start)."""
        return {a.name: a.version for a in _connection.control().list_apps().result()}

    first = deploy(broken=True)  # nothing before it: nothing after it
    assert first.returncode == 1
    err = first.stderr
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("ModuleNotFoundError: No module named 'not_a_module_here'")
    ), err
    assert "import not_a_module_here" in err and str(source) in err, err  # the user's frame
    assert "site-packages" not in err and "Failed to update the deployments" not in err, err
    assert "flaky-web" not in listed()
    assert not any(n.startswith("rayfn:flaky-web:") for n in serve.status().applications)

    assert deploy(broken=False).returncode == 0
    assert httpx.get(url, timeout=10).json() == {"v": "good"}
    assert deploy(broken=True).returncode == 1  # the good version comes back
    assert poll_json(url, {"v": "good"})
    assert listed()["flaky-web"] == 4  # versions only grow: the good one, deployed again
    assert cluster.cli("app", "stop", "flaky-web").returncode == 0


def _flaky_app(broken: bool) -> str:
    return (
        "import fastapi\nimport rayfn\n"
        'app = rayfn.App("flaky-web")\n'
        "@app.function()\n@rayfn.asgi_app()\n"
        "def site():\n"
        + ("    import not_a_module_here  # noqa\n" if broken else "")
        + "    web = fastapi.FastAPI()\n"
        '    web.get("/")(lambda: {"v": "good"})\n'
        "    return web\n"
    )


def test_token_protects_every_route_but_healthz(cluster: Cluster, base: str) -> None:
    """A token set while the API already runs is applied to it; a later deploy
    without the variable keeps it (removing a token takes `rayfn http stop`)."""
    assert httpx.post(
        f"{base}/v1/apps/api-jobs/functions/add/calls", json={"args": [1]}, timeout=30
    ).is_success
    os.environ["RAYFN_API_TOKEN"] = "t0ken"
    try:
        deploy_api()
    finally:
        os.environ.pop("RAYFN_API_TOKEN")
    deploy_api()
    try:
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        denied = httpx.post(
            f"{base}/v1/apps/api-jobs/functions/add/calls", json={"args": [1]}, timeout=10
        )
        assert (denied.status_code, denied.json()["error"]) == (401, "unauthorized")
        assert httpx.get(f"{base}/openapi.json", timeout=10).status_code == 401
        allowed = httpx.post(
            f"{base}/v1/apps/api-jobs/functions/add/calls",
            json={"args": [1]},
            headers={"Authorization": "Bearer t0ken"},
            timeout=30,
        )
        assert allowed.status_code == 201
    finally:
        stop_api()
        deploy_api()


def test_requires_proxy_auth_wants_the_job_apis_token(base: str) -> None:
    app = rayfn.App("guarded-web")

    @app.function()
    @rayfn.fastapi_endpoint(requires_proxy_auth=True)
    def guarded() -> dict[str, bool]:
        return {"in": True}

    with pytest.raises(InvalidError, match="requires_proxy_auth=True: set RAYFN_API_TOKEN"):
        app.deploy()
    os.environ["RAYFN_API_TOKEN"] = "pr0xy"
    try:
        app.deploy()
    finally:
        os.environ.pop("RAYFN_API_TOKEN")
    try:
        url = f"{base}/guarded-web/guarded"
        denied = httpx.get(url, timeout=30)
        assert (denied.status_code, denied.json()["error"]) == (401, "unauthorized")
        assert (
            httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 401
        )
        bearer = httpx.get(url, headers={"Authorization": "Bearer pr0xy"}, timeout=30)
        assert (bearer.status_code, bearer.json()) == (200, {"in": True})
        modal_style = {"Modal-Key": "any", "Modal-Secret": "pr0xy"}
        assert httpx.get(url, headers=modal_style, timeout=30).status_code == 200
    finally:
        from rayfn._web_hosting import delete_web_functions

        _connection.control().stop("guarded-web").result()
        delete_web_functions("guarded-web")


def test_a_calls_progress_shows_in_python_the_cli_and_http(cluster: Cluster, base: str) -> None:
    app = rayfn.App("progress-steps")
    gate = rayfn.Dict.from_name("progress-gate", create_if_missing=True)

    @app.function()
    def steps(n: int) -> str:
        for i in range(n):  # a tight loop: the worker sends the latest, twice a second
            rayfn.set_progress((i + 1) / n, f"step {i + 1}")
        rayfn.set_progress({"stage": "waiting"}, "for the gate")
        while not gate.get("open", False):
            time.sleep(0.05)
        rayfn.set_progress({"stage": "finishing"})
        time.sleep(1.5)
        return "ok"

    app.deploy()
    try:
        call = steps.spawn(10_000)
        deadline = time.monotonic() + 60
        while (progress := call.status().progress) is None or progress.value != {
            "stage": "waiting"
        }:
            assert time.monotonic() < deadline, progress
            time.sleep(0.1)
        assert progress.message == "for the gate"
        record = httpx.get(f"{base}/v1/calls/{call.object_id}", timeout=30).json()
        assert (record["status"], record["progress"]["value"]) == ("RUNNING", {"stage": "waiting"})
        listed = cluster.cli("call", "list", "--app", "progress-steps")
        assert '{"stage": "waiting"} for the gate' in listed.stdout, listed.stdout
        pending = cluster.cli("call", "get", call.object_id)
        assert pending.returncode == 1
        assert 'Progress: {"stage": "waiting"} for the gate' in pending.stderr, pending.stderr
        # Three watchers of its events from here on: Python, HTTP (SSE), the CLI.
        seen: dict[str, list[tuple[str, str]]] = {"python": [], "http": []}

        def python_watch() -> None:
            for event in call.watch():
                seen["python"].append((event.kind.value, event.info.status.value))

        def http_watch() -> None:
            url = f"{base}/v1/calls/{call.object_id}/events"
            with httpx.stream("GET", url, timeout=60) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                kind = ""
                for line in stream.iter_lines():
                    if line.startswith("event: "):
                        kind = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        seen["http"].append((kind, json.loads(line[6:])["status"]))

        rayfn_cli = Path(sys.executable).parent / "rayfn"
        cli_watch = subprocess.Popen(
            [str(rayfn_cli), "call", "watch", call.object_id],
            env=cluster.env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        watchers = [threading.Thread(target=f) for f in (python_watch, http_watch)]
        for watcher in watchers:
            watcher.start()
        assert cli_watch.stdout is not None
        first_printed = cli_watch.stdout.readline()  # each has seen the call running...
        deadline = time.monotonic() + 30
        while not (seen["python"] and seen["http"]):
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        gate.put("open", True)  # ...before it goes on
        assert call.get(timeout=60) == "ok"
        for watcher in watchers:
            watcher.join(timeout=30)
        printed, _ = cli_watch.communicate(timeout=60)
        expected = [("status", "RUNNING"), ("progress", "RUNNING"), ("end", "SUCCEEDED")]
        assert seen == {"python": expected, "http": expected}
        assert [first_printed.strip(), *printed.splitlines()] == [
            "status RUNNING",
            'progress RUNNING {"stage": "finishing"}',
            "end SUCCEEDED",
        ]
        assert cli_watch.returncode == 0
    finally:
        _connection.control().stop("progress-steps").result()
        rayfn.Dict.delete("progress-gate")


def test_dead_letters_are_listed_and_run_again_under_their_id(cluster: Cluster, base: str) -> None:
    app = rayfn.App("dead-letters")
    fixed = rayfn.Dict.from_name("dead-letters-fixed", create_if_missing=True)

    @app.function(retries=rayfn.Retries(max_retries=1, initial_delay=0.1))
    def flaky(x: int) -> int:
        if not fixed.get("yes", False):
            raise ValueError("not fixed yet")
        return 2 * x

    app.deploy()
    try:
        first, second = flaky.spawn(21), flaky.spawn(5)
        for call in (first, second):
            with pytest.raises(ValueError, match="not fixed yet"):
                call.get(timeout=60)
        dead = {first.object_id, second.object_id}
        listed = rayfn.list_calls(app="dead-letters", dead=True)
        assert {c.call_id for c in listed} == dead
        over_http = httpx.get(f"{base}/v1/calls", params={"app": "dead-letters", "dead": "true"})
        assert {c["call_id"] for c in over_http.json()} == dead
        in_cli = cluster.cli("call", "list", "--app", "dead-letters", "--dead")
        assert all(call_id in in_cli.stdout for call_id in dead), in_cli.stdout
        fixed.put("yes", True)
        requeued = cluster.cli("call", "requeue", first.object_id)
        running_again = ("QUEUED", "PENDING", "RUNNING", "SUCCEEDED")  # on its way at once
        assert requeued.stdout.strip().split(": ") == [first.object_id, ANY_OF(running_again)]
        again = httpx.post(f"{base}/v1/calls/{second.object_id}/requeue", timeout=30)
        assert (again.status_code, again.json()["status"] in running_again) == (200, True)
        assert (first.get(timeout=60), second.get(timeout=60)) == (42, 10)
        outcomes = [a.outcome for a in first.status().attempts]
        assert outcomes == ["raised", "raised", "succeeded"]  # its history kept
        assert rayfn.list_calls(app="dead-letters", dead=True) == []
        with pytest.raises(InvalidError, match="it is SUCCEEDED: only FAILED or TIMED_OUT"):
            first.requeue()
        refused = httpx.post(f"{base}/v1/calls/{first.object_id}/requeue", timeout=30)
        assert refused.status_code == 422
    finally:
        _connection.control().stop("dead-letters").result()
        rayfn.Dict.delete("dead-letters-fixed")


def test_an_idempotency_key_makes_one_call_however_often_it_is_sent(
    cluster: Cluster, base: str
) -> None:
    app = rayfn.App("idempotent")
    runs = rayfn.Queue.from_name("idempotent-runs", create_if_missing=True)

    @app.function()
    def charge(order: str) -> str:
        runs.put(order)  # one item per run
        return f"charged {order}"

    app.deploy()
    try:
        calls = [
            charge.with_options(idempotency_key=f"k{i % 10}").spawn(f"order {i % 10}")
            for i in range(1000)
        ]
        assert len({c.object_id for c in calls}) == 10
        assert set(rayfn.FunctionCall.gather(*calls)) == {f"charged order {i}" for i in range(10)}
        assert charge.with_options(idempotency_key="k3").remote("order 3") == "charged order 3"
        with pytest.raises(ConflictError, match="Idempotency key 'k0' names call"):
            _ = charge.with_options(idempotency_key="k0").spawn("another order").object_id
        url = f"{base}/v1/apps/idempotent/functions/charge/calls"
        by_header = httpx.post(
            url, json={"args": ["order 1"]}, headers={"Idempotency-Key": "k1"}, timeout=30
        )
        assert (by_header.status_code, by_header.json()["call_id"]) == (201, calls[1].object_id)
        in_body = httpx.post(
            url, json={"args": ["order 7"], "idempotency_key": "k7"}, timeout=30
        ).json()
        assert in_body["call_id"] == calls[7].object_id
        conflict = httpx.post(url, json={"args": ["x"], "idempotency_key": "k2"}, timeout=30)
        assert (conflict.status_code, conflict.json()["error"]) == (409, "conflict")
        too_long = httpx.post(url, json={"idempotency_key": "k" * 257}, timeout=30)
        assert too_long.status_code == 422
        in_cli = cluster.cli(
            "call", "spawn", "idempotent", "charge", '["order 5"]', "--idempotency-key", "k5"
        )
        assert in_cli.stdout.strip() == calls[5].object_id, in_cli.stderr
        assert runs.len() == 10  # one run per key
    finally:
        _connection.control().stop("idempotent").result()
        rayfn.Queue.delete("idempotent-runs")


def test_priorities_delays_and_expiry_through_python_the_cli_and_http(
    cluster: Cluster, base: str
) -> None:
    app = rayfn.App("queue-controls")
    runs = rayfn.Queue.from_name("queue-controls-runs", create_if_missing=True)
    gate = rayfn.Dict.from_name("queue-controls-gate", create_if_missing=True)

    @app.function(max_containers=1)
    def work(tag: str) -> str:
        while tag == "block" and not gate.get("open", False):
            time.sleep(0.05)
        runs.put(tag)
        return tag

    @app.function()
    def stamp() -> float:
        return time.time()

    app.deploy()
    url = f"{base}/v1/apps/queue-controls/functions/work/calls"
    try:
        blocker = work.spawn("block")
        _wait_for_status(blocker, "RUNNING")
        # A backlog behind it, from all three sides, in this order:
        work.spawn("a")
        work.with_options(priority=5).spawn("b")
        httpx.post(url, json={"args": ["c"], "priority": 9}, timeout=30).raise_for_status()
        by_cli = cluster.cli("call", "spawn", "queue-controls", "work", '["d"]', "--priority", "5")
        assert by_cli.returncode == 0, by_cli.stderr
        work.with_options(priority=-1).spawn("e")
        work.spawn("f")
        never = work.with_options(expires_in=1).spawn("never")
        never_http = httpx.post(url, json={"args": ["never"], "expires_in": 1}, timeout=30)
        never_cli = cluster.cli(
            "call", "spawn", "queue-controls", "work", '["never"]', "--expires-in", "1"
        )
        time.sleep(1.5)
        gate.put("open", True)
        with pytest.raises(ExpiredUnstartedError):
            never.get(timeout=30)
        record = httpx.get(f"{base}/v1/calls/{never_http.json()['call_id']}", timeout=30).json()
        assert record["status"] == "EXPIRED_UNSTARTED" and record["start_by"] is not None
        result = httpx.get(f"{base}/v1/calls/{never_http.json()['call_id']}/result", timeout=30)
        assert (result.status_code, result.json()["error"]) == (409, "expired_unstarted")
        with pytest.raises(ExpiredUnstartedError):
            rayfn.FunctionCall.from_id(never_cli.stdout.strip()).get(timeout=30)
        order = [runs.get(timeout=30) for _ in range(7)]
        # Highest priority first, in order of arrival among equals; expired ones never.
        assert order == ["block", "c", "b", "d", "a", "f", "e"], order
        assert runs.len() == 0

        # delay / at: SCHEDULED until then, not started earlier; cancel works.
        sent_at = time.time()
        delayed = stamp.with_options(delay=2).spawn()
        assert delayed.status().status == "SCHEDULED"
        stamp_url = f"{base}/v1/apps/queue-controls/functions/stamp/calls"
        at = time.time() + 2
        by_http = httpx.post(stamp_url, json={"at": at}, timeout=30).json()["call_id"]
        by_cli = cluster.cli("call", "spawn", "queue-controls", "stamp", "--delay", "2").stdout
        dropped = stamp.with_options(delay=30).spawn()
        assert dropped.cancel().status == "CANCELLED"
        assert delayed.get(timeout=30) >= sent_at + 2
        assert rayfn.FunctionCall.from_id(by_http).get(timeout=30) >= at
        assert rayfn.FunctionCall.from_id(by_cli.strip()).get(timeout=30) >= sent_at + 2
        assert [a.outcome for a in dropped.status().attempts] == []  # never ran

        # Bad input: a clear error on every side.
        for body in ({"delay": -1}, {"priority": "high"}, {"expires_in": 0}, {"at": "soon"}):
            refused = httpx.post(stamp_url, json=body, timeout=30)
            assert refused.status_code == 422, (body, refused.text)
        with pytest.raises(InvalidError, match="0 or more"):
            stamp.with_options(delay=-1)
        bad_cli = cluster.cli("call", "spawn", "queue-controls", "stamp", "--delay", "-5")
        assert bad_cli.returncode != 0 and "0 or more" in bad_cli.stderr, bad_cli.stderr
    finally:
        _connection.control().stop("queue-controls").result()
        rayfn.Queue.delete("queue-controls-runs")
        rayfn.Dict.delete("queue-controls-gate")


class _Receiver:
    """A webhook receiver on 127.0.0.1: checks each delivery's signature, answers 500
    to the first ``fail_first`` tries of each delivery id, and keeps what it took."""

    def __init__(self, key: str, fail_first: int) -> None:
        self.tries: dict[str, int] = {}
        self.events: dict[str, dict[str, Any]] = {}  # delivery id -> event, once each
        self.bad_signatures = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signature = self.headers.get(rayfn.webhooks.SIGNATURE_HEADER, "")
                if not rayfn.webhooks.verify(body, signature, key):
                    receiver.bad_signatures += 1
                    self.send_response(400)
                else:
                    delivery = self.headers[rayfn.webhooks.DELIVERY_ID_HEADER]
                    seen = receiver.tries[delivery] = receiver.tries.get(delivery, 0) + 1
                    if seen <= fail_first:
                        self.send_response(500)
                    else:
                        receiver.events.setdefault(delivery, json.loads(body))  # dedup
                        self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def calls(self) -> list[str]:
        return sorted(e["call"]["call_id"] for e in self.events.values())


def test_signed_webhooks_verify_retry_and_replay(cluster: Cluster, base: str) -> None:
    key = "whsec-" + os.urandom(8).hex()
    made = cluster.cli("secret", "create", "hooks-test", f"WEBHOOK_SECRET={key}", "--force")
    assert made.returncode == 0, made.stderr
    receiver = _Receiver(key, fail_first=2)
    hook = rayfn.Webhook(receiver.url, secret=rayfn.Secret.from_name("hooks-test"))
    app = rayfn.App("hooked")

    @app.function(webhook=hook)
    def job(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * 2

    @app.function()
    def plain(x: int) -> int:
        return x

    app.deploy()
    try:
        ok, failed = job.spawn(1), job.spawn(-1)
        own = plain.with_options(webhook=hook).spawn(3)  # a call's own webhook
        unhooked = plain.spawn(4)
        over_http = httpx.post(
            f"{base}/v1/apps/hooked/functions/plain/calls",
            json={"args": [5], "webhook": {"url": receiver.url, "secret": "hooks-test"}},
            timeout=30,
        ).json()["call_id"]
        calls = [ok, failed, own, rayfn.FunctionCall.from_id(over_http)]
        for call in calls:
            with contextlib.suppress(ValueError):
                call.get(timeout=60)
        unhooked.get(timeout=30)
        deadline = time.monotonic() + 60
        while len(receiver.events) < len(calls):  # the third try of each gets through
            assert time.monotonic() < deadline, (receiver.tries, [c.deliveries() for c in calls])
            time.sleep(0.1)
        assert receiver.calls() == sorted(c.object_id for c in calls)
        assert receiver.bad_signatures == 0
        statuses = {e["call"]["call_id"]: e["call"]["status"] for e in receiver.events.values()}
        assert (statuses[ok.object_id], statuses[failed.object_id]) == ("SUCCEEDED", "FAILED")
        tries = ok.deliveries()
        assert [(t.attempt, t.status_code) for t in tries] == [(1, 500), (2, 500), (3, 204)]
        assert tries[2].at - tries[0].at >= 2.5  # backoff 1 s, then 2 s
        assert unhooked.deliveries() == []
        # Every try is visible from the CLI and over HTTP, and a replay is deduplicated.
        shown = cluster.cli("call", "deliveries", ok.object_id)
        assert shown.stdout.count(f"dl-{ok.object_id}-1") == 3, shown.stdout
        over = httpx.get(f"{base}/v1/calls/{ok.object_id}/deliveries", timeout=30).json()
        assert [d["status_code"] for d in over] == [500, 500, 204]
        replayed = cluster.cli("call", "deliveries", failed.object_id, "--replay")
        assert replayed.returncode == 0, replayed.stderr
        again = httpx.post(f"{base}/v1/calls/{own.object_id}/deliveries", timeout=30)
        assert again.status_code == 200
        deadline = time.monotonic() + 30
        while receiver.tries[f"dl-{own.object_id}-1"] < 4:
            assert time.monotonic() < deadline, receiver.tries
            time.sleep(0.1)
        assert receiver.calls() == sorted(c.object_id for c in calls)  # still once each
        refused = httpx.post(f"{base}/v1/calls/{unhooked.object_id}/deliveries", timeout=30)
        assert (refused.status_code, refused.json()["error"]) == (422, "invalid")
        # Bad webhooks are refused where they are given.
        with pytest.raises(InvalidError, match="http:// or https://"):
            rayfn.Webhook("ftp://127.0.0.1/x", secret=rayfn.Secret.from_name("hooks-test"))
        bad = httpx.post(
            f"{base}/v1/apps/hooked/functions/plain/calls",
            json={"args": [1], "webhook": {"url": "file:///etc/passwd", "secret": "hooks-test"}},
            timeout=30,
        )
        assert bad.status_code == 422
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        _connection.control().stop("hooked").result()
        cluster.cli("secret", "delete", "hooks-test")


def _wait_for_status(call: rayfn.FunctionCall, status: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while call.status().status != status:
        assert time.monotonic() < deadline, f"{call.object_id} never reached {status}"
        time.sleep(0.05)


class ANY_OF:
    """Equal to any of ``choices``."""

    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def __eq__(self, other: object) -> bool:
        return other in self.choices

    def __repr__(self) -> str:
        return f"any of {self.choices}"


def _served_app(version: str) -> str:
    return (
        "import os\nimport fastapi\nimport rayfn\n"
        'image = rayfn.Image.debian_slim().env({"FLAVOUR": "from-the-image"})\n'
        'app = rayfn.App("served", image=image)\n'
        "web = fastapi.FastAPI()\n"
        '@web.get("/")\n'
        f'def root():\n    return {{"version": "{version}"}}\n'
        '@web.get("/flavour")\n'
        'def flavour():\n    print("asked for the flavour")\n    return os.environ["FLAVOUR"]\n'
        '@web.get("/boom")\n'
        'def boom():\n    raise RuntimeError("boom in the handler")\n'
        "@app.function()\n@rayfn.asgi_app()\n"
        "def hello():\n    return web\n"
    )


def _wait_for_line(proc: subprocess.Popen[str], text: str, seconds: float = 120) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r}; output so far:\n{''.join(seen)}")


def poll_json(url: str, expected: object, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=10).json() == expected:
                return True
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.3)
    return False


def test_fuzzed_requests_from_the_openapi_schema_never_get_a_500(base: str) -> None:
    """schemathesis generates requests for every operation of the live schema; none
    may get a 5xx, and every 4xx is JSON."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5

    for operation in operations:

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            response = case.call(timeout=30)
            where = (case.method, case.formatted_path, response.text[:300])
            assert response.status_code < 500, where
            if response.status_code >= 400:
                assert "error" in json.loads(response.text), where  # a JSON error body

        fuzz()
