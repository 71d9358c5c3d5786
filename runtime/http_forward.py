"""Handing an HTTP request on to another server and streaming its answer back (a leaf:
no Ray, nothing of rayfn). ``@web_server(port)`` functions are served so (the user's
server listens on the replica's node; Serve routes to the replica, the replica to the
server), and the job API so hands a request for a web function's own host to it."""

from __future__ import annotations

import socket
import time

import httpx
from starlette.types import Receive, Scope, Send

# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, not to the message.
_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"host",
}


class Forward:
    """Forward requests under this app's root path to ``http://127.0.0.1:<port>/``."""

    def __init__(self, port: int) -> None:
        self._client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        root = scope.get("root_path", "")
        path = scope["path"][len(root) :] if scope["path"].startswith(root) else scope["path"]
        await forward(self._client, scope, receive, send, path or "/")


async def forward(
    client: httpx.AsyncClient,
    scope: Scope,
    receive: Receive,
    send: Send,
    path: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Send the request of ``scope`` to ``client``'s server at ``path`` (its query
    string kept, ``headers`` added) and stream the answer back; 502 if it does not
    answer. Websockets are refused."""
    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1003})
        return
    body = bytearray()
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    query = scope.get("query_string", b"").decode("latin-1")
    request = client.build_request(
        scope["method"],
        path + (f"?{query}" if query else ""),
        headers=[(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        + list(headers),
        content=bytes(body),
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        await _answer(send, 502, f"The server behind this did not answer: {exc}".encode())
        return
    try:
        answer_headers = [(k.lower(), v) for k, v in response.headers.raw]
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(k, v) for k, v in answer_headers if k not in _HOP_BY_HOP],
            }
        )
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await response.aclose()


def wait_listening(port: int, within: float) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port`` within ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        if is_listening(port):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _answer(send: Send, status: int, text: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})
