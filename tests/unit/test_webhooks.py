"""Signed completion webhooks, the pure parts: signing, the retry schedule, each call's
delivery state and the book's part (runtime/webhooks.py, runtime/book.py)."""

from __future__ import annotations

import json

import pytest

import rayfn
from rayfn.exception import InvalidError
from rayfn.records import CallStatus, DeliveryInfo
from rayfn.runtime.book import Book
from rayfn.runtime.calls import Call
from rayfn.runtime.commands import Deliver, Finished, SetTimer
from rayfn.runtime.protocol import CallOptions
from rayfn.runtime.webhooks import (
    RETRY_FOR_S,
    Deliveries,
    WebhookTarget,
    body_of,
    check_url,
    next_delay,
    sign,
    signing_key,
    verify,
)

KEY = ("app", "f")
T0 = 1_000_000.0
HOOK = WebhookTarget("http://127.0.0.1:9/hook", "hooks")


def test_a_signature_verifies_only_for_its_body_key_and_time() -> None:
    body = b'{"type":"call.finished"}'
    header = sign("k1", int(T0), body)
    assert header.startswith(f"t={int(T0)},v1=")
    assert verify(body, header, "k1", now=T0 + 10)
    assert not verify(body + b" ", header, "k1", now=T0)
    assert not verify(body, header, "k2", now=T0)
    assert not verify(body, header, "k1", now=T0 + 301)  # too old: a replayed capture
    assert not verify(body, "garbage", "k1", now=T0)
    assert rayfn.webhooks.verify is verify


def test_urls_keys_and_the_backoff() -> None:
    assert check_url("https://example.com/x") == "https://example.com/x"
    for bad in ("ftp://example.com", "example.com/hook", "http://", 42, "h" * 3000):
        with pytest.raises(ValueError):
            check_url(bad)
    with pytest.raises(InvalidError, match="http:// or https://"):
        rayfn.Webhook("ftp://example.com", secret=rayfn.Secret.from_name("hooks"))
    with pytest.raises(InvalidError, match=r"rayfn\.Secret"):
        rayfn.Webhook("https://example.com", secret="hooks")  # type: ignore[arg-type]
    assert signing_key({"ANY": "k"}) == "k"
    assert signing_key({"A": "a", "WEBHOOK_SECRET": "k"}) == "k"
    with pytest.raises(ValueError, match="several values"):
        signing_key({"A": "a", "B": "b"})
    assert [next_delay(n) for n in (1, 2, 3, 12)] == [1.0, 2.0, 4.0, 300.0]


def test_deliveries_retry_until_a_2xx_within_their_window() -> None:
    hook = Deliveries(HOOK)
    hook.begin("fc-1", T0)
    assert hook.delivery_id == "dl-fc-1-1" and hook.pending and hook.next_attempt() == 1
    failed = DeliveryInfo("dl-fc-1-1", 1, T0, 500, "HTTP 500")
    assert hook.tried(failed, T0) == T0 + 1
    assert hook.tried(DeliveryInfo("dl-fc-1-1", 2, T0 + 1, None, "ConnectError"), T0 + 1) == T0 + 3
    assert hook.tried(DeliveryInfo("dl-fc-1-1", 3, T0 + 3, 204), T0 + 3) is None
    assert not hook.pending and hook.delivered
    # Journaled and restored as it was.
    again = Deliveries.from_record(hook.record())
    assert (again.delivery_id, again.delivered, again.attempts) == (
        hook.delivery_id,
        True,
        hook.attempts,
    )
    # A replay sends the same id again; a window that closes stops the tries.
    hook.replay(T0 + 10)
    assert hook.pending and hook.next_attempt() == 4
    late = T0 + 10 + RETRY_FOR_S
    assert hook.tried(DeliveryInfo("dl-fc-1-1", 4, late, 503), late) is None
    assert not hook.pending and not hook.delivered
    # The call ends again (requeued): a new delivery id.
    hook.begin("fc-1", late)
    assert hook.delivery_id == "dl-fc-1-2"


def test_the_book_delivers_a_calls_end_retries_and_replays() -> None:
    book = Book(max_tombstones=10)
    book.accept("fc-1", KEY, b"a", 60.0, T0, options=CallOptions(webhook=HOOK))
    commands = book.cancel("fc-1", T0 + 1)
    assert commands[-2:] == [Finished("fc-1"), Deliver("fc-1")]
    target, delivery_id, attempt, info = book.delivery("fc-1") or ((),) * 4
    assert (target, delivery_id, attempt) == (HOOK, "dl-fc-1-1", 1)
    event = json.loads(body_of(info, delivery_id))
    assert event["call"]["status"] == "CANCELLED" and event["delivery_id"] == "dl-fc-1-1"
    # A failed try: the next at its backoff, on the call's own timer.
    failed = DeliveryInfo(delivery_id, 1, T0 + 1, 500, "HTTP 500")
    assert book.delivered("fc-1", failed, T0 + 1) == [SetTimer("fc-1", T0 + 2)]
    assert book.timer_fired("fc-1", T0 + 2) == [Deliver("fc-1")]
    # A restart in between tries again from the start.
    records, _ = book.take_changes()
    restored = Book(max_tombstones=10)
    assert Deliver("fc-1") in restored.restore(records, T0 + 3)
    assert restored.calls["fc-1"].webhook.attempts == [failed]  # type: ignore[union-attr]
    done = DeliveryInfo(delivery_id, 2, T0 + 3, 200)
    assert restored.delivered("fc-1", done, T0 + 3) == []
    assert restored.delivery("fc-1") is None  # delivered: nothing more to send
    assert restored.redeliver("fc-1", T0 + 4) == ([Deliver("fc-1")], None)
    # Retries never outlive the call's result.
    retry = restored.delivered("fc-1", DeliveryInfo(delivery_id, 3, T0 + 60, 500), T0 + 60)
    assert retry == [SetTimer("fc-1", T0 + 61)]
    restored.calls["fc-1"].result_ttl = 0.5
    retry = restored.delivered("fc-1", DeliveryInfo(delivery_id, 4, T0 + 61, 500), T0 + 61)
    assert retry == [SetTimer("fc-1", T0 + 1.5)]


def test_what_cannot_be_delivered_again_says_why() -> None:
    book = Book(max_tombstones=10)
    book.accept("fc-1", KEY, b"a", 60.0, T0)
    book.accept("fc-2", KEY, b"a", 60.0, T0, options=CallOptions(webhook=HOOK))
    assert book.redeliver("fc-1", T0) == ([], "it has no webhook")
    assert book.redeliver("fc-2", T0)[1] == "it is QUEUED: its end is delivered when it ends"
    assert book.redeliver("fc-9", T0) == ([], "unknown")
    assert book.calls["fc-2"].status is CallStatus.QUEUED
    record = Call.from_record(book.calls["fc-2"].record(), None)
    assert record.webhook is not None and record.webhook.target == HOOK
