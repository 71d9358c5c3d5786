"""Signed completion webhooks: when a call with a webhook ends, rayfn POSTs its status
record to the webhook's URL, signed with HMAC-SHA256 over ``timestamp.body`` with a key
from a rayfn ``Secret``, and retries with backoff until a 2xx answer or the retry
window closes. The signing, the schedule and each call's delivery state are here,
pure; the registry sends (``Sender``) and the book keeps the state, journaled.

Headers of a delivery::

    Rayfn-Delivery-Id: dl-fc-...-1     the same for every try of one terminal event
    Rayfn-Delivery-Attempt: 2
    Rayfn-Signature: t=1733300000,v1=<hex HMAC-SHA256(key, "1733300000." + body)>

A receiver checks the signature (``rayfn.webhooks.verify``) and drops a delivery id
it has seen: deliveries are at least once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from rayfn.records import CallInfo, DeliveryInfo

if TYPE_CHECKING:
    import httpx  # imported when a delivery is sent: every worker imports this module

# Retries wait 1, 2, 4... seconds, at most 5 minutes apart, for at most an hour after
# the call ended (or the delivery was replayed), and never past the call's expiry.
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 300.0
RETRY_FOR_S = 3600.0
REQUEST_TIMEOUT_S = 10.0
# A receiver should refuse signatures older than this (replays of captured requests).
TOLERANCE_S = 300.0
MAX_URL = 2048
MAX_ATTEMPTS_KEPT = 50  # of one call's delivery attempts, the latest
SIGNATURE_HEADER = "Rayfn-Signature"
DELIVERY_ID_HEADER = "Rayfn-Delivery-Id"
ATTEMPT_HEADER = "Rayfn-Delivery-Attempt"
SECRET_KEY = "WEBHOOK_SECRET"  # the value of a many-valued Secret that signs


class WebhookTarget(NamedTuple):
    """Where a call's end is posted, and the rayfn Secret whose value signs it."""

    url: str
    secret: str  # the Secret's name


def check_url(url: object) -> str:
    """The URL, if deliveries can go to it.

    Raises:
        ValueError: not an absolute http(s) URL.
    """
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise ValueError(f"A webhook URL is a string of at most {MAX_URL} characters.")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"A webhook URL is an absolute http:// or https:// URL, got {url!r}.")
    return url


def signing_key(values: dict[str, str]) -> str:
    """The key a Secret's values give: its only value, or its ``WEBHOOK_SECRET``.

    Raises:
        ValueError: several values and none is ``WEBHOOK_SECRET``.
    """
    if SECRET_KEY in values:
        return values[SECRET_KEY]
    if len(values) == 1:
        return next(iter(values.values()))
    raise ValueError(f"the secret has several values and no {SECRET_KEY}")


def sign(key: str, timestamp: int, body: bytes) -> str:
    """The ``Rayfn-Signature`` header of ``body`` sent at ``timestamp``."""
    digest = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    body: bytes, header: str, key: str, tolerance: float = TOLERANCE_S, now: float | None = None
) -> bool:
    """Whether ``header`` (``Rayfn-Signature``) signs ``body`` with ``key`` and is no
    older than ``tolerance`` seconds."""
    fields = dict(part.partition("=")[::2] for part in header.split(","))
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(key, timestamp, body).partition(",v1=")[2]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def next_delay(failures: int) -> float:
    """The wait before the next try, after ``failures`` failed ones."""
    return float(min(MAX_RETRY_S, FIRST_RETRY_S * 2.0 ** max(0, failures - 1)))


def body_of(info: CallInfo, delivery_id: str) -> bytes:
    """What a delivery posts: the call's status record (its result is fetched from the
    job API, ``GET /v1/calls/{id}/result``)."""
    record = dataclasses.asdict(info)
    record["status"] = info.status.value
    event = {"type": "call.finished", "delivery_id": delivery_id, "call": record}
    return json.dumps(event, default=str, separators=(",", ":")).encode()


class Deliveries:
    """One call's webhook and how delivering its end went."""

    __slots__ = ("attempts", "delivered", "delivery_id", "events", "since", "target")

    def __init__(self, target: WebhookTarget) -> None:
        self.target = target
        self.events = 0  # terminal events so far (a requeued call ends again)
        self.delivery_id: str | None = None  # of the latest, the one to deliver
        self.since: float | None = None  # when its deliveries began (or were replayed)
        self.delivered = False
        self.attempts: list[DeliveryInfo] = []

    def begin(self, call_id: str, now: float) -> None:
        """The call ended: deliver that."""
        self.events += 1
        self.delivery_id = f"dl-{call_id}-{self.events}"
        self.since, self.delivered = now, False

    def replay(self, now: float) -> None:
        """Deliver the same event again, with a fresh retry window."""
        self.since, self.delivered = now, False

    def next_attempt(self) -> int:
        """The number of the next try of this delivery id (1 for its first)."""
        return 1 + sum(1 for a in self.attempts if a.delivery_id == self.delivery_id)

    @property
    def pending(self) -> bool:
        """An event is to be delivered: not yet, and its retry window is open."""
        return self.since is not None and not self.delivered

    def tried(self, attempt: DeliveryInfo, now: float) -> float | None:
        """Note a try; when to try again (None: delivered, or the window closed)."""
        self.attempts.append(attempt)
        del self.attempts[:-MAX_ATTEMPTS_KEPT]
        if attempt.status_code is not None and 200 <= attempt.status_code < 300:
            self.delivered = True
            return None
        since = self.since
        if since is None:
            return None
        failures = sum(
            1 for a in self.attempts if a.delivery_id == self.delivery_id and a.at >= since
        )
        retry_at = now + next_delay(failures)
        if retry_at > since + RETRY_FOR_S:
            self.since = None  # given up (a replay starts again)
            return None
        return retry_at

    def record(self) -> tuple[Any, ...]:
        attempts = tuple(dataclasses.astuple(a) for a in self.attempts)
        return (*self.target, self.events, self.delivery_id, self.since, self.delivered, attempts)

    @classmethod
    def from_record(cls, record: tuple[Any, ...]) -> Deliveries:
        url, secret, events, delivery_id, since, delivered, attempts = record
        deliveries = cls(WebhookTarget(url, secret))
        deliveries.events, deliveries.delivery_id = events, delivery_id
        deliveries.since, deliveries.delivered = since, delivered
        deliveries.attempts = [DeliveryInfo(*a) for a in attempts]
        return deliveries


# At most this many deliveries on their way at once (a burst of calls ending together).
MAX_IN_FLIGHT = 64


class Sender:
    """Posts deliveries (the registry's side: the network and the secrets).

    Args:
        read_secret: a rayfn Secret's values by its name (None: no such secret).
    """

    def __init__(self, read_secret: Callable[[str], dict[str, str] | None]) -> None:
        self._read_secret = read_secret
        self._client: httpx.AsyncClient | None = None
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def post(
        self, target: WebhookTarget, delivery_id: str, attempt: int, info: CallInfo
    ) -> DeliveryInfo:
        """One try; how it went (never raises)."""
        import httpx

        started = time.time()
        answer: int | None = None
        try:
            values = await asyncio.to_thread(self._read_secret, target.secret)
            if values is None:
                raise ValueError(f"secret {target.secret!r} does not exist")
            body = body_of(info, delivery_id)
            headers = {
                "Content-Type": "application/json",
                DELIVERY_ID_HEADER: delivery_id,
                ATTEMPT_HEADER: str(attempt),
                SIGNATURE_HEADER: sign(signing_key(values), int(time.time()), body),
            }
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S)
            response = await self._client.post(target.url, content=body, headers=headers)
            answer = response.status_code
            error = None if 200 <= answer < 300 else f"HTTP {answer}"
        except (httpx.HTTPError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return DeliveryInfo(delivery_id, attempt, started, answer, error, time.time() - started)
