"""Signed completion webhooks (beyond Modal): when a call with a webhook ends, rayfn
POSTs its status record to the webhook's URL, signed with HMAC-SHA256, and retries
with backoff (1 s, 2 s, 4 s... at most 5 minutes apart, for up to an hour) until a 2xx
answer. Each try is listed by ``FunctionCall.deliveries()`` and
``rayfn call deliveries fc-...``, and ``redeliver()`` sends one again.

A receiver verifies each delivery and drops a delivery id it has seen (deliveries are
at least once)::

    @web.post("/hooks/rayfn")
    async def hook(request: Request) -> dict:
        body = await request.body()
        if not rayfn.webhooks.verify(body, request.headers["Rayfn-Signature"], KEY):
            raise HTTPException(400)
        event = json.loads(body)  # {"type": "call.finished", "delivery_id", "call": {...}}
        ...

The body's ``call`` is the call's status record; its result comes from the job API
(``GET /v1/calls/{id}/result``) or ``FunctionCall.from_id(id).get()``.
"""

from __future__ import annotations

from rayfn._secret import Secret
from rayfn.exception import InvalidError
from rayfn.runtime.webhooks import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    WebhookTarget,
    check_url,
    verify,
)

__all__ = ["DELIVERY_ID_HEADER", "SIGNATURE_HEADER", "Webhook", "verify"]


class Webhook:
    """Where a call's end is posted, and the ``Secret`` whose value signs it (its only
    value, or its ``WEBHOOK_SECRET``). On a function, every call's; per call, with
    ``f.with_options(webhook=...)``.

    Example:
        >>> key = rayfn.Secret.from_name("hooks")  # rayfn secret create hooks KEY=...
        >>> @app.function(webhook=rayfn.Webhook("https://example.com/hooks", secret=key))
        ... def process_job(data): ...

    Raises:
        InvalidError: the URL is not an absolute http(s) URL, or ``secret`` is not a
            ``rayfn.Secret``.
    """

    def __init__(self, url: str, *, secret: Secret) -> None:
        try:
            self.url = check_url(url)
        except ValueError as exc:
            raise InvalidError(str(exc)) from None
        if not isinstance(secret, Secret):
            raise InvalidError(
                "A webhook's secret is a rayfn.Secret (its value signs each delivery), "
                f"e.g. rayfn.Secret.from_name('hooks'); got {secret!r}."
            )
        self.secret = secret

    @property
    def target(self) -> WebhookTarget:
        return WebhookTarget(self.url, self.secret.name)

    def __repr__(self) -> str:
        return f"Webhook({self.url!r}, secret={self.secret!r})"
