"""The job API's front gate, as plain ASGI middleware: admission in arrival order
with a bounded wait (503 beyond), bearer token, body size cap, a deadline on every piece
of the body, and JSON-only bodies, answered before any route runs (FastAPI itself
answers 500 to a body that is not UTF-8, or nested past Python's recursion limit, and
would wait for ever on a body that stalls)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})
# The console's static files: no data in them (their data comes from the token's routes).
OPEN_PREFIX = "/ui"
# Event streams (/v1/calls/{id}/events) last as long as their call: they take no place
# in the admission line, which is for requests that end soon, but a bound of their own.
MAX_STREAMS = 256
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Requests of one replica that do their work at once; the others wait their turn, in
# arrival order, for up to ADMISSION_WAIT_S seconds, then get 503 + Retry-After.
MAX_ACTIVE = 48
ADMISSION_WAIT_S = 4.0
# Bodies nested deeper than this are refused: arguments are data, not recursion tests.
MAX_JSON_DEPTH = 128


def token_digest(token: str) -> str:
    """What the API keeps of its token: the hex SHA-256, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        token_sha256: str | None,
        max_body: int,
        body_timeout_s: float,
        max_active: int = MAX_ACTIVE,
        admission_wait_s: float = ADMISSION_WAIT_S,
    ) -> None:
        self.app = app
        self.token_sha256 = token_sha256
        self.max_body = max_body
        self.body_timeout_s = body_timeout_s
        self.admission_wait_s = admission_wait_s
        self._active = asyncio.Semaphore(max_active)
        self._streams = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _timed(send)
        path = scope["path"]
        if path in OPEN_PATHS:  # /healthz answers however busy the API is
            await self._guarded(scope, receive, send)
            return
        if path == OPEN_PREFIX or path.startswith(OPEN_PREFIX + "/"):
            await self.app(scope, receive, send)  # static files: no token, no body
            return
        if scope["path"].endswith("/events"):
            await self._stream(scope, receive, send)
            return
        try:
            # In arrival order; a request that cannot start soon is told to come back,
            # so no request waits without bound behind a crowd.
            await asyncio.wait_for(self._active.acquire(), self.admission_wait_s)
        except TimeoutError:
            await _answer(
                send,
                503,
                "busy",
                "The job API is at capacity; try again shortly.",
                extra=[(b"retry-after", b"1")],
            )
            return
        try:
            await self._guarded(scope, receive, send)
        finally:
            self._active.release()

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._streams >= MAX_STREAMS:
            await _answer(
                send,
                503,
                "busy",
                "Too many event streams are open; try again shortly.",
                extra=[(b"retry-after", b"1")],
            )
            return
        self._streams += 1
        try:
            await self._guarded(scope, receive, send)
        finally:
            self._streams -= 1

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if (
            self.token_sha256 is not None
            and scope["path"] not in OPEN_PATHS
            and not self._authorized(headers.get("authorization", b""))
        ):
            await _answer(
                send,
                401,
                "unauthorized",
                "Send Authorization: Bearer <token>.",
                extra=[(b"www-authenticate", b"Bearer")],
            )
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _too_large(send, self.max_body)
            return
        body = bytearray()
        while True:
            try:
                # A client that stalls mid-body must not hold a slot of the API for ever.
                message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except TimeoutError:
                await _answer(
                    send,
                    408,
                    "body_timeout",
                    f"No part of the body came for {self.body_timeout_s:g} s.",
                    extra=[(b"connection", b"close")],
                )
                return
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _too_large(send, self.max_body)
                return
            if not message.get("more_body", False):
                break
        if body:
            content_type = headers.get("content-type", b"").split(b";")[0].strip().lower()
            if content_type not in (b"application/json", b""):
                await _answer(send, 415, "unsupported_media_type", "Send application/json.")
                return
            problem = _json_problem(bytes(body))
            if problem is not None:
                await _answer(send, 422, "invalid_json", problem)
                return
            if not content_type:  # JSON sent without saying so: let FastAPI read it as such
                scope = {**scope, "headers": [*scope["headers"], _JSON_CONTENT_TYPE]}
        await self.app(scope, _replay(bytes(body), receive), send)

    def _authorized(self, header: bytes) -> bool:
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        assert self.token_sha256 is not None
        return hmac.compare_digest(token_digest(token.strip()), self.token_sha256)


_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


def _timed(send: Send) -> Send:
    """``send`` that adds ``Server-Timing: api;dur=<ms>`` to the answer: how long the
    request spent in the API, waiting for admission included (the rest of what a
    client waits is Serve's proxy and the network)."""
    started = time.perf_counter()

    async def timed(message: Message) -> None:
        if message["type"] == "http.response.start":
            spent = f"api;dur={(time.perf_counter() - started) * 1000:.1f}".encode()
            message = {
                **message,
                "headers": [*message.get("headers", []), (b"server-timing", spent)],
            }
        await send(message)

    return timed


def _json_problem(body: bytes) -> str | None:
    """Why ``body`` is not acceptable JSON, or None."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return f"The body is not UTF-8 JSON: {exc}."
    except RecursionError:
        return f"The body is nested deeper than {MAX_JSON_DEPTH} levels."
    if json_depth(parsed) > MAX_JSON_DEPTH:
        return f"The body is nested deeper than {MAX_JSON_DEPTH} levels."
    return None


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in parsed JSON (a scalar is 0), without
    recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, depth) for child in item)
    return deepest


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_large(send: Send, limit: int) -> None:
    await _answer(send, 413, "too_large", f"The body is over the limit of {limit} bytes.")


async def _answer(
    send: Send,
    status: int,
    code: str,
    message: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"error": code, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})
