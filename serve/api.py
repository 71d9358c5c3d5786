"""The built-in HTTP job API: any HTTP client can call every deployed function with
JSON, no user code. Hosted on Ray Serve by ``rayfn deploy`` or ``rayfn http start``.

Routes (all JSON; every route but ``/healthz`` needs ``Authorization: Bearer <token>``
when ``RAYFN_API_TOKEN`` is set):

    POST   /v1/apps/{app}/functions/{function}/calls   201 {"call_id"}
    GET    /v1/calls/{call_id}                         200 status record
    GET    /v1/calls/{call_id}/result                  200 result | 202 pending |
                                                       404 unknown | 410 expired or
                                                       lost (registry restarted) |
                                                       422 malformed id | 424 failed |
                                                       409 cancelled | 406 no JSON
                                                       form | 413 result too large
    DELETE /v1/calls/{call_id}                         200 status record (cancelled, or
                                                       as it was if it had finished)
    GET    /v1/calls/{call_id}/events                  200 Server-Sent Events: status,
                                                       progress, end (then it closes)
    GET    /v1/calls?app=&function=&status=&dead=      200 status records, newest first
    POST   /v1/calls/{call_id}/requeue                 200 status record (QUEUED again);
                                                       422 not FAILED or TIMED_OUT
    GET    /v1/calls/{call_id}/deliveries              200 tries at its webhook
    POST   /v1/calls/{call_id}/deliveries              200 the same, delivering again;
                                                       422 no webhook, or not ended
    GET    /v1/calls/{call_id}/logs                    200 what each attempt printed
    GET    /v1/calls/{call_id}/graph                   200 the call and those it spawned
    GET    /v1/apps                                    200 deployed apps, their functions
    GET    /v1/stats?window=3600                       200 the registry's figures
    GET    /ui/                                        the console (static; its data
                                                       comes from the routes above)
    GET    /healthz                                    200 {"status": "ok"}

A failed call answers 424 (Failed Dependency: the request was fine, the function it
depends on failed) with the function's error type, message and traceback. How results
become JSON (bytes, NaN...) is in ``rayfn.serve._results``. Every error, Starlette's
own 404 and 405 included, is ``{"error": code, "message": ...}``; a body that stalls
answers 408, and a full API 503 with ``Retry-After`` (from the guard's admission line,
or from Serve's proxy when its queue is full: see ``deploy``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import rayfn
from rayfn.exception import (
    RemoteError,
)
from rayfn.records import (
    ERROR_HTTP,
    FAILURES,
    CallInfo,
    call_event,
    failure_kind,
)
from rayfn.runtime.constants import (
    DEFAULT_HTTP_BODY_TIMEOUT_S,
    DEFAULT_HTTP_MAX_BODY,
    DEFAULT_HTTP_MAX_RESULT,
    WATCH_EVERY_S,
)
from rayfn.serve._backend import Backend, BackendDep, ClusterBackend
from rayfn.serve._bodies import (
    CallRecord,
    DeliveryRecord,
    ErrorResponse,
    FailedResponse,
    ListQuery,
    PendingResponse,
    RemoteErrorBody,
    ResultResponse,
    SpawnRequest,
    SpawnResponse,
    call_record,
)
from rayfn.serve._guard import RequestGuard
from rayfn.serve._results import NoJsonForm, TooLarge, result_body

# The console: static files, served at /ui/ (their data comes from the routes).
CONSOLE = Path(__file__).parent / "console"

# What Starlette's own errors (no such route, wrong method...) are called in our bodies.
_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}


# -- the app --------------------------------------------------------------------------------


def build_api(
    backend: Backend | None = None,
    *,
    token_sha256: str | None = None,
    max_body: int = DEFAULT_HTTP_MAX_BODY,
    max_result: int = DEFAULT_HTTP_MAX_RESULT,
    body_timeout_s: float = DEFAULT_HTTP_BODY_TIMEOUT_S,
) -> FastAPI:
    """The job API as a FastAPI app.

    Args:
        backend: where calls go (default: the connected Ray cluster).
        token_sha256: hex SHA-256 of the bearer token every route but ``/healthz``
            needs; None: no token (only for loopback).
        max_body: request bodies over this many bytes get 413.
        max_result: results whose JSON answer is over this many bytes get 413.
        body_timeout_s: a request body that stalls this long between pieces gets 408.
    """
    api = FastAPI(
        title="rayfn job API",
        version=rayfn.__version__,
        description="Submit calls to deployed rayfn functions and fetch their results.",
        responses=_errors(401, 408, 413, 422, 503),
    )
    api.state.backend = backend or ClusterBackend()
    api.add_middleware(
        RequestGuard, token_sha256=token_sha256, max_body=max_body, body_timeout_s=body_timeout_s
    )
    _add_error_handlers(api)

    @api.get("/ui", include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    api.mount("/ui", StaticFiles(directory=CONSOLE, html=True), name="console")

    @api.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.post(
        "/v1/apps/{app}/functions/{function}/calls",
        status_code=201,
        response_model=SpawnResponse,
        responses=_errors(404),
        tags=["calls"],
    )
    async def spawn_call(
        app: str,
        function: str,
        backend: BackendDep,
        body: SpawnRequest | None = None,
        idempotency_key: Annotated[
            str | None, Header(min_length=1, max_length=256, alias="Idempotency-Key")
        ] = None,
    ) -> SpawnResponse:
        """Start a call of a deployed function; returns its id at once. With an
        idempotency key (the ``Idempotency-Key`` header, or ``idempotency_key`` in the
        body), the same key and arguments give the call made before; other arguments
        are a 409. ``priority``, ``delay``/``at`` and ``expires_in`` are the call's own
        options, as ``Function.with_options`` takes them."""
        body = body or SpawnRequest()
        options = body.call_options(idempotency_key)
        call_id = await backend.spawn(app, function, body.args, body.kwargs, options)
        return SpawnResponse(call_id=call_id)

    # What the routes that answer with a call's status record declare.
    record_route: dict[str, Any] = {
        "response_model": CallRecord,
        "responses": _errors(404),
        "tags": ["calls"],
    }

    @api.get("/v1/calls/{call_id}", **record_route)
    async def get_call(call_id: str, backend: BackendDep) -> CallRecord:
        """A call's status record."""
        return call_record(await backend.describe(call_id))

    @api.get(
        "/v1/calls/{call_id}/result",
        response_model=ResultResponse,
        responses={
            202: {"model": PendingResponse},
            424: {"model": FailedResponse},
            **_errors(404, 406, 409, 410, 413),
        },
        tags=["calls"],
    )
    async def get_result(call_id: str, backend: BackendDep) -> Any:
        """A call's result: 200 when done, 202 while it runs, 424 when it failed."""
        try:
            value = await backend.result(call_id)
        except TimeoutError:
            info = await backend.describe(call_id)
            return JSONResponse(
                PendingResponse(call_id=call_id, status=info.status).model_dump(mode="json"),
                status_code=202,
            )
        except Exception as exc:
            kind = failure_kind(exc)
            if kind is None:
                raise  # rayfn's other errors (expired, lost, not found...): the handlers below
            failing = FAILURES[kind]
            if failing.http_code != "failed":
                message = f"Call {call_id} was {failing.status.value.lower()}: {exc}"
                return _error(failing.http_status, failing.http_code, message)
            return _failed(call_id, exc, failing.http_status)
        try:
            body = result_body(call_id, value, max_result)
        except NoJsonForm as exc:
            return _error(
                406,
                "not_json",
                f"The result of {call_id} has no JSON form ({exc}); fetch it with the Python SDK.",
            )
        except TooLarge as exc:
            return _error(
                413,
                "result_too_large",
                f"The result of {call_id} is {exc} for HTTP (RAYFN_HTTP_MAX_RESULT); "
                "fetch it with the Python SDK.",
            )
        return Response(body, media_type="application/json")

    @api.delete("/v1/calls/{call_id}", **record_route)
    async def cancel_call(call_id: str, backend: BackendDep) -> CallRecord:
        """Cancel a call; a finished call is left as it is."""
        return call_record(await backend.cancel(call_id))

    @api.get("/v1/calls", response_model=list[CallRecord], responses=_errors(422), tags=["calls"])
    async def list_calls(query: Annotated[ListQuery, Query()], backend: BackendDep) -> Any:
        """Calls newest first, filtered (``dead=true``: the dead letters); pass the last
        id as ``before`` for the next page."""
        return [call_record(info) for info in await backend.list_calls(query)]

    @api.post("/v1/calls/{call_id}/requeue", **record_route)
    async def requeue_call(call_id: str, backend: BackendDep) -> CallRecord:
        """Run a FAILED or TIMED_OUT call again under its id (422 for any other)."""
        return call_record(await backend.requeue(call_id))

    @api.get("/v1/calls/{call_id}/logs", responses=_errors(404), tags=["calls"])
    async def call_logs(call_id: str, backend: BackendDep) -> list[dict[str, Any]]:
        """What each attempt of the call printed (stdout, then stderr), read through
        Ray's log API and cut to the call's own lines."""
        return await backend.logs(call_id)

    @api.get("/v1/calls/{call_id}/graph", responses=_errors(404), tags=["calls"])
    async def call_graph(call_id: str, backend: BackendDep) -> dict[str, Any]:
        """The call and the calls spawned from inside it, recursively."""
        return dataclasses.asdict(await backend.graph(call_id))

    @api.get("/v1/apps", tags=["apps"])
    async def list_apps(backend: BackendDep) -> list[dict[str, Any]]:
        """Deployed apps with their functions and options (secret names, never values)."""
        return await backend.apps()

    @api.get("/v1/stats", tags=["apps"])
    async def stats(
        backend: BackendDep, window: Annotated[float, Query(gt=0, le=7 * 24 * 3600)] = 3600.0
    ) -> dict[str, Any]:
        """Per function, calls by status, queue depth, running now, p50/p95 of run
        time and queue wait over ``window`` seconds; calls ended per minute; run-time
        histograms. The registry's own figures, no Prometheus needed."""
        return await backend.figures(window)

    delivery_route: dict[str, Any] = {
        "response_model": list[DeliveryRecord],
        "responses": _errors(404),
        "tags": ["calls"],
    }

    @api.get("/v1/calls/{call_id}/deliveries", **delivery_route)
    async def call_deliveries(call_id: str, backend: BackendDep) -> Any:
        """Each try at posting the call's end to its webhook, oldest first."""
        return [dataclasses.asdict(t) for t in await backend.deliveries(call_id, False)]

    @api.post("/v1/calls/{call_id}/deliveries", **delivery_route)
    async def redeliver_call(call_id: str, backend: BackendDep) -> Any:
        """Post the finished call's end to its webhook again, now (the same delivery
        id); 422 if it has no webhook or has not ended."""
        return [dataclasses.asdict(t) for t in await backend.deliveries(call_id, True)]

    @api.get(
        "/v1/calls/{call_id}/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}, **_errors(404)},
        tags=["calls"],
    )
    async def call_events(call_id: str, backend: BackendDep) -> StreamingResponse:
        """The call's events as Server-Sent Events: ``status`` (a new status),
        ``progress`` (new progress), and ``end`` (the terminal record), each with the
        status record as ``data``; the stream closes after ``end``."""
        first = await backend.describe(call_id)  # an unknown id is a 404, not a stream
        return StreamingResponse(_events(backend, call_id, first), media_type="text/event-stream")

    return api


async def _events(backend: Backend, call_id: str, info: CallInfo) -> AsyncIterator[str]:
    before: CallInfo | None = None
    while True:
        kind = call_event(before, info)
        if kind is not None:
            data = call_record(info).model_dump_json()
            yield f"event: {kind.value}\ndata: {data}\n\n"
        if info.status.is_terminal:
            return
        before = info
        await asyncio.sleep(WATCH_EVERY_S)
        info = await backend.describe(call_id)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: these statuses answer with an ``ErrorResponse`` body."""
    return {status: {"model": ErrorResponse} for status in statuses}


def _qualname(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def _failed(call_id: str, exc: BaseException, status: int) -> JSONResponse:
    """A failed call's answer: what it raised (the function's exception, or rayfn's)."""
    if isinstance(exc, RemoteError):
        type_name, message = exc.type_name, exc.message
    else:
        type_name, message = _qualname(exc), str(exc)
    traceback = getattr(exc, "remote_traceback", None)
    body = FailedResponse(
        call_id=call_id,
        error=RemoteErrorBody(type=type_name, message=message, traceback=traceback),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=code, message=message).model_dump(), status_code=status)


def _add_error_handlers(api: FastAPI) -> None:
    for kind, status, code in ERROR_HTTP:

        async def handler(
            request: Request, exc: Exception, status: int = status, code: str = code
        ) -> JSONResponse:
            return _error(status, code, str(exc))

        api.add_exception_handler(kind, handler)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return _error(422, "invalid_request", problems or "invalid request")

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        # Never a traceback of rayfn's internals in a response; it goes to the log.
        return _error(500, "internal", "Internal error; see the Serve replica's log.")

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        answer = _error(exc.status_code, code, f"{exc.detail}: {request.method} {request.url.path}")
        answer.headers.update(exc.headers or {})
        return answer

    api.add_exception_handler(StarletteHTTPException, http_error)
    api.add_exception_handler(RequestValidationError, invalid_request)
    api.add_exception_handler(Exception, internal)
