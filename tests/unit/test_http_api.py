"""The job API's routes and status codes, without Ray: the backend dependency is
overridden with an in-memory one."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rayfn.exception import (
    CallLostError,
    CancelledError,
    InvalidError,
    NotFoundError,
    OutputExpiredError,
    RemoteError,
    SerializationError,
)
from rayfn.records import CallInfo, CallStatus
from rayfn.runtime.ids import is_call_id, new_call_id
from rayfn.serve._backend import get_backend
from rayfn.serve._guard import MAX_JSON_DEPTH, RequestGuard, token_digest
from rayfn.serve.api import build_api
from rayfn.serve.deploy import API_MAX_REPLICAS, api_replicas


class Boom(Exception):
    pass


class MemoryBackend:
    """Calls that finish as soon as they are spawned, with scripted outcomes."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Any] = {}
        self.spawned: list[tuple[str, str, list[Any], dict[str, Any]]] = []

    async def spawn(
        self,
        app: str,
        function: str,
        args: list[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any] | None = None,
    ) -> str:
        if app != "jobs":
            raise NotFoundError(f"App {app!r} is not deployed (deployed apps: jobs).")
        self.spawned.append((app, function, args, kwargs))
        call_id = new_call_id()
        self.outcomes[call_id] = {"echo": args, "kw": kwargs}
        return call_id

    async def result(self, call_id: str) -> Any:
        self._check(call_id)
        outcome = self.outcomes[call_id]
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "pending":
            raise TimeoutError(call_id)
        return outcome

    async def describe(self, call_id: str) -> CallInfo:
        self._check(call_id)
        status = CallStatus.RUNNING if self.outcomes[call_id] == "pending" else CallStatus.SUCCEEDED
        return CallInfo(call_id, "jobs", "echo", status, created_at=1.0)

    async def cancel(self, call_id: str) -> CallInfo:
        self._check(call_id)
        if self.outcomes[call_id] == "pending":
            self.outcomes[call_id] = CancelledError("The call was cancelled.")
        return CallInfo(call_id, "jobs", "echo", CallStatus.CANCELLED, created_at=1.0)

    async def requeue(self, call_id: str) -> CallInfo:
        self._check(call_id)
        raise InvalidError(f"Call {call_id} cannot be requeued: it is SUCCEEDED.")

    async def deliveries(self, call_id: str, again: bool) -> list[Any]:
        self._check(call_id)
        raise InvalidError(f"Call {call_id} cannot be delivered again: it has no webhook.")

    async def logs(self, call_id: str) -> list[dict[str, Any]]:
        self._check(call_id)
        return [{"attempt": 1, "node": "n1", "lines": ["hello"], "note": None}]

    async def graph(self, call_id: str) -> Any:
        from rayfn.records import CallGraphNode

        self._check(call_id)
        return CallGraphNode(call_id, "jobs", "f", CallStatus.SUCCEEDED)

    async def apps(self) -> list[dict[str, Any]]:
        return [{"name": "jobs", "version": 1, "functions": []}]

    async def figures(self, window: float) -> dict[str, Any]:
        return {"tracked": len(self.outcomes), "window": window, "functions": []}

    async def list_calls(self, query: Any) -> list[CallInfo]:
        return [await self.describe(call_id) for call_id in self.outcomes][: query.limit]

    def _check(self, call_id: str) -> None:
        if not is_call_id(call_id):
            raise InvalidError(f"{call_id!r} is not a call id")
        if call_id not in self.outcomes:
            raise NotFoundError(f"No call with id {call_id}.")
        if self.outcomes[call_id] == "expired":
            raise OutputExpiredError(call_id)
        if self.outcomes[call_id] == "lost":
            raise CallLostError(call_id)


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def client(backend: MemoryBackend) -> TestClient:
    api = build_api(max_body=1024)
    api.dependency_overrides[get_backend] = lambda: backend
    return TestClient(api)


def test_spawn_then_result(client: TestClient, backend: MemoryBackend) -> None:
    created = client.post(
        "/v1/apps/jobs/functions/echo/calls", json={"args": [1], "kwargs": {"a": 2}}
    )
    assert created.status_code == 201
    call_id = created.json()["call_id"]
    assert backend.spawned == [("jobs", "echo", [1], {"a": 2})]
    result = client.get(f"/v1/calls/{call_id}/result")
    assert result.status_code == 200
    assert result.json() == {
        "call_id": call_id,
        "status": "SUCCEEDED",
        "result": {"echo": [1], "kw": {"a": 2}},
    }
    record = client.get(f"/v1/calls/{call_id}")
    assert record.status_code == 200
    assert record.json()["status"] == "SUCCEEDED" and record.json()["function"] == "echo"


def test_spawn_without_a_body_passes_no_arguments(
    client: TestClient, backend: MemoryBackend
) -> None:
    assert client.post("/v1/apps/jobs/functions/echo/calls").status_code == 201
    assert backend.spawned == [("jobs", "echo", [], {})]


def test_result_status_codes(client: TestClient, backend: MemoryBackend) -> None:
    pending, expired, lost, failed, remote = (new_call_id() for _ in range(5))
    backend.outcomes.update(
        {
            pending: "pending",
            expired: "expired",
            lost: "lost",
            failed: _with_traceback(Boom("it broke"), "Traceback...\nBoom: it broke"),
            remote: RemoteError("mod.Gone", "gone away", "tb text"),
        }
    )
    answer = client.get(f"/v1/calls/{pending}/result")
    assert (answer.status_code, answer.json()) == (202, {"call_id": pending, "status": "RUNNING"})
    answer = client.get(f"/v1/calls/{expired}/result")
    assert answer.status_code == 410 and answer.json()["error"] == "expired"
    answer = client.get(f"/v1/calls/{lost}/result")
    assert answer.status_code == 410 and answer.json()["error"] == "lost"
    assert "registry that accepted it has restarted" in answer.json()["message"]
    answer = client.get(f"/v1/calls/{new_call_id()}/result")
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"
    answer = client.get("/v1/calls/not-an-id/result")
    assert answer.status_code == 422 and answer.json()["error"] == "invalid"
    answer = client.get(f"/v1/calls/{failed}/result")
    assert answer.status_code == 424
    assert answer.json() == {
        "call_id": failed,
        "status": "FAILED",
        "error": {
            "type": "tests.unit.test_http_api.Boom",
            "message": "it broke",
            "traceback": "Traceback...\nBoom: it broke",
        },
    }
    answer = client.get(f"/v1/calls/{remote}/result")
    assert answer.status_code == 424
    assert answer.json()["error"] == {
        "type": "mod.Gone",
        "message": "gone away",
        "traceback": "tb text",
    }


def test_unknown_app_is_404_with_json(client: TestClient) -> None:
    answer = client.post("/v1/apps/nope/functions/echo/calls", json={})
    assert answer.status_code == 404
    assert answer.json() == {
        "error": "not_found",
        "message": "App 'nope' is not deployed (deployed apps: jobs).",
    }


def test_result_without_a_json_form_is_406(client: TestClient, backend: MemoryBackend) -> None:
    call_id = new_call_id()
    backend.outcomes[call_id] = object()
    answer = client.get(f"/v1/calls/{call_id}/result")
    assert answer.status_code == 406 and answer.json()["error"] == "not_json"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"\xff\xfe not utf-8", {"content-type": "application/json"}, 422, "invalid_json"),
        (b"{not json", {"content-type": "application/json"}, 422, "invalid_json"),
        (b"x" * 2048, {"content-type": "application/json"}, 413, "too_large"),
        (
            b"a=1",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (b'{"args": 5}', {"content-type": "application/json"}, 422, "invalid_request"),
        (b'{"unknown": 1}', {"content-type": "application/json"}, 422, "invalid_request"),
    ],
)
def test_bad_bodies_get_json_errors(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    answer = client.post("/v1/apps/jobs/functions/echo/calls", content=body, headers=headers)
    assert answer.status_code == status
    assert answer.json()["error"] == code


def test_token_is_required_everywhere_but_healthz(backend: MemoryBackend) -> None:
    api = build_api(token_sha256=token_digest("s3cret"))
    api.dependency_overrides[get_backend] = lambda: backend
    client = TestClient(api)
    assert client.get("/healthz").status_code == 200
    for path in ["/docs", "/openapi.json", f"/v1/calls/{new_call_id()}"]:
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["www-authenticate"] == "Bearer"
    wrong = client.get("/openapi.json", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = client.get("/openapi.json", headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200
    assert "/v1/apps/{app}/functions/{function}/calls" in right.json()["paths"]


def test_cancel_answers_the_status_record(client: TestClient, backend: MemoryBackend) -> None:
    call_id = new_call_id()
    backend.outcomes[call_id] = "pending"
    answer = client.delete(f"/v1/calls/{call_id}")
    assert answer.status_code == 200
    assert answer.json()["status"] == "CANCELLED"
    assert client.get(f"/v1/calls/{call_id}/result").status_code == 409
    assert client.delete(f"/v1/calls/{new_call_id()}").status_code == 404


def _with_traceback(exc: BaseException, text: str) -> BaseException:
    exc.remote_traceback = text  # type: ignore[attr-defined]
    return exc


# -- results as JSON, errors in one shape, bodies that stall or nest (issue 13) ---------------


def _result(client: TestClient, backend: MemoryBackend, value: Any) -> Any:
    call_id = new_call_id()
    backend.outcomes[call_id] = value
    return client.get(f"/v1/calls/{call_id}/result")


def test_bytes_results_are_base64_and_capped(backend: MemoryBackend) -> None:
    api = build_api(max_result=1000)
    api.dependency_overrides[get_backend] = lambda: backend
    client = TestClient(api)
    answer = _result(client, backend, b"\x00\xffdata")
    assert answer.status_code == 200
    assert answer.json()["result"] == base64.b64encode(b"\x00\xffdata").decode()
    assert answer.json()["encoding"] == "base64"
    nested = _result(client, backend, {"blob": b"ab", "n": 1})
    assert nested.json()["result"] == {"blob": "YWI=", "n": 1}
    assert "encoding" not in nested.json()
    for too_big in (b"x" * 2000, "y" * 2000, ["z" * 100] * 20):
        answer = _result(client, backend, too_big)
        assert answer.status_code == 413, too_big
        assert answer.json()["error"] == "result_too_large"


def test_result_json_rules(client: TestClient, backend: MemoryBackend) -> None:
    answer = _result(client, backend, [math.nan, math.inf, -math.inf, 1.5])
    assert answer.status_code == 200
    assert answer.json()["result"] == ["NaN", "Infinity", "-Infinity", 1.5]
    assert _result(client, backend, (1, 2)).json()["result"] == [1, 2]
    assert _result(client, backend, {1: "a", None: "b"}).json()["result"] == {
        "1": "a",
        "null": "b",
    }
    for no_json in ("lone \ud800 surrogate", {(1, 2): "tuple key"}, object()):
        answer = _result(client, backend, no_json)
        assert answer.status_code == 406, no_json
        assert answer.json()["error"] == "not_json"
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    answer = _result(client, backend, deep)
    assert (answer.status_code, answer.json()["error"]) == (406, "not_json")


def test_a_result_too_large_to_keep_is_a_failed_call(
    client: TestClient, backend: MemoryBackend
) -> None:
    answer = _result(client, backend, SerializationError("The result of f is 2 GiB: too large"))
    assert answer.status_code == 424
    assert answer.json()["error"]["type"] == "rayfn.exception.SerializationError"


def test_starlette_errors_have_the_documented_shape(client: TestClient) -> None:
    missing = client.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found" and "/no/such/route" in missing.json()["message"]
    wrong = client.put(f"/v1/calls/{new_call_id()}")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"
    assert "allow" in wrong.headers


@pytest.mark.parametrize(
    "headers", [{"content-type": "application/JSON"}, {"content-type": "Application/Json; x=1"}, {}]
)
def test_json_bodies_with_any_spelling_or_no_content_type_are_read(
    client: TestClient, backend: MemoryBackend, headers: dict[str, str]
) -> None:
    answer = client.post(
        "/v1/apps/jobs/functions/echo/calls", content=b'{"args": [7]}', headers=headers
    )
    assert answer.status_code == 201, answer.text
    assert backend.spawned == [("jobs", "echo", [7], {})]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 10_000])
def test_deeply_nested_bodies_get_422(client: TestClient, depth: int) -> None:
    body = b'{"args": ' + b"[" * depth + b"]" * depth + b"}"
    api = build_api(max_body=len(body) + 1)
    answer = TestClient(api).post(
        "/v1/apps/jobs/functions/echo/calls",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert (answer.status_code, answer.json()["error"]) == (422, "invalid_json")


def test_a_stalled_body_gets_408_instead_of_holding_the_api() -> None:
    """The client sends part of a body and then nothing: the guard answers 408 once
    the piece it waits for is late, without the route ever running."""
    reached: list[str] = []

    async def route(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    guard = RequestGuard(route, token_sha256=None, max_body=1024, body_timeout_s=0.05)
    pieces = [{"type": "http.request", "body": b'{"args": [', "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pieces:
            return pieces.pop()
        await asyncio.sleep(3600)  # the client stalls
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/healthz", "headers": []}
    asyncio.run(asyncio.wait_for(guard(scope, receive, send), 5))
    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"])["error"] == "body_timeout"
    assert reached == []


def test_a_crowd_beyond_capacity_gets_503_while_healthz_answers() -> None:
    """With every slot busy, a request waits its turn for a bounded time, then gets 503
    with Retry-After; /healthz skips the line."""
    release = asyncio.Event()

    async def route(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] != "/healthz":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = RequestGuard(
        route,
        token_sha256=None,
        max_body=1024,
        body_timeout_s=1,
        max_active=1,
        admission_wait_s=0.05,
    )

    async def request(path: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "method": "GET", "path": path, "headers": []}
        await guard(scope, receive, send)
        return sent

    async def crowd() -> tuple[list[dict[str, Any]], ...]:
        busy = asyncio.create_task(request("/v1/calls/x"))
        await asyncio.sleep(0.01)
        turned_away = await request("/v1/calls/y")
        health = await request("/healthz")
        release.set()
        return await busy, turned_away, health

    busy, turned_away, health = asyncio.run(asyncio.wait_for(crowd(), 5))
    assert busy[0]["status"] == 200 and health[0]["status"] == 200
    timing = dict(busy[0]["headers"])[b"server-timing"]  # the time it spent in the API
    assert timing.startswith(b"api;dur=") and float(timing[8:]) >= 10
    assert turned_away[0]["status"] == 503
    assert (b"retry-after", b"1") in turned_away[0]["headers"]
    assert json.loads(turned_away[1]["body"])["error"] == "busy"


@pytest.mark.parametrize(
    ("cores", "most"), [(1, 1), (2, 1), (15, 1), (16, 2), (64, 8), (1000, API_MAX_REPLICAS)]
)
def test_the_api_scales_to_a_replica_per_eight_cores(cores: int, most: int) -> None:
    options = api_replicas(cores)
    if most == 1:
        assert options == {"num_replicas": 1}
    else:
        assert options["autoscaling_config"]["min_replicas"] == 1
        assert options["autoscaling_config"]["max_replicas"] == most


def test_listing_filters_and_requeue_of_a_call_that_is_no_dead_letter(
    client: TestClient,
) -> None:
    ids = [client.post("/v1/apps/jobs/functions/echo/calls", json={}).json()["call_id"]]
    listed = client.get("/v1/calls", params={"dead": "true", "limit": 5})
    assert listed.status_code == 200 and [c["call_id"] for c in listed.json()] == ids
    assert client.get("/v1/calls", params={"limit": 0}).status_code == 422
    assert client.get("/v1/calls", params={"status": "NOPE"}).status_code == 422
    refused = client.post(f"/v1/calls/{ids[0]}/requeue")
    assert (refused.status_code, refused.json()["error"]) == (422, "invalid")
    assert "cannot be requeued" in refused.json()["message"]


def test_the_console_is_static_and_open_its_data_behind_the_token(
    backend: MemoryBackend,
) -> None:
    api = build_api(token_sha256=token_digest("s3cret"))
    api.dependency_overrides[get_backend] = lambda: backend
    client = TestClient(api)
    page = client.get("/ui/")  # no token: the page, with its sign-in field, and no data
    assert page.status_code == 200 and 'id="sign-in"' in page.text
    assert client.get("/ui/console.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/"
    token = {"Authorization": "Bearer s3cret"}
    for path in ("/v1/apps", "/v1/stats"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=token).status_code == 200, path
    assert client.get("/v1/stats?window=0", headers=token).status_code == 422
    call_id = client.post("/v1/apps/jobs/functions/f/calls", json={}, headers=token).json()
    logs = client.get(f"/v1/calls/{call_id['call_id']}/logs", headers=token).json()
    assert logs[0]["lines"] == ["hello"]
    graph = client.get(f"/v1/calls/{call_id['call_id']}/graph", headers=token).json()
    assert graph["call_id"] == call_id["call_id"] and graph["children"] == []
    assert client.get("/v1/calls/not-an-id/logs", headers=token).status_code == 422


def test_the_consoles_app_records_name_secrets_and_never_hold_their_values() -> None:
    from rayfn.console import app_record
    from rayfn.runtime.records import AppInfo, FunctionInfo, FunctionOptions
    from rayfn.runtime.webhooks import WebhookTarget

    options = FunctionOptions(
        secrets=("openai",), webhook=WebhookTarget("https://x.io/h", "hooks"), max_containers=2
    )
    info = AppInfo("jobs", 3, ("f", "f[ab12]"), 1.0, "jobs.py", False)
    functions = [FunctionInfo("jobs", name, 3, "(x)", options) for name in ("f", "f[ab12]")]
    record = app_record(info, functions)
    assert [f["name"] for f in record["functions"]] == ["f"]  # a with_options variant: not shown
    shown = record["functions"][0]["options"]
    assert (shown["secrets"], shown["webhook"], shown["max_containers"]) == (
        ["openai"],
        "https://x.io/h",
        2,
    )
    assert "hooks" not in str(record)  # the webhook's secret: not even its name
