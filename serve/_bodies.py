"""The job API's JSON bodies: what requests send and routes answer (pydantic models,
so FastAPI checks them and writes the OpenAPI schema), and the status record made
from a ``CallInfo``."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

import rayfn
from rayfn.records import CallInfo, CallStatus


class SpawnRequest(BaseModel):
    """Arguments of a call, as JSON."""

    model_config = ConfigDict(extra="forbid")

    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # The same key with the same arguments: the call made before, not a second one.
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    priority: StrictInt | None = None  # higher leaves the function's queue first
    delay: float | None = Field(default=None, ge=0)  # seconds before it may start
    at: datetime.datetime | float | None = None  # not started before (ISO 8601 or Unix)
    expires_in: float | None = Field(default=None, gt=0)  # not started by then: never
    webhook: WebhookBody | None = None  # where its end is posted, signed

    def call_options(self, idempotency_key: str | None) -> dict[str, Any]:
        """The per-call options set (``Function.with_options`` keywords)."""
        chosen = self.model_dump(include=set(CALL_OPTION_FIELDS), exclude_none=True)
        if self.webhook is not None:
            secret = rayfn.Secret.from_name(self.webhook.secret)
            chosen["webhook"] = rayfn.Webhook(self.webhook.url, secret=secret)
        key = idempotency_key or self.idempotency_key
        return {**chosen, "idempotency_key": key} if key is not None else chosen


class WebhookBody(BaseModel):
    """A call's own webhook: its URL and the name of the rayfn Secret that signs."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048)
    secret: str = Field(min_length=1, max_length=256)


class DeliveryRecord(BaseModel):
    """One try at posting a call's end to its webhook."""

    delivery_id: str
    attempt: int
    at: float
    status_code: int | None = None
    error: str | None = None
    seconds: float


CALL_OPTION_FIELDS = ("priority", "delay", "at", "expires_in")


class SpawnResponse(BaseModel):
    call_id: str


class ProgressRecord(BaseModel):
    """What a running call last said of its progress (``rayfn.set_progress``)."""

    value: float | dict[str, Any]  # a fraction done (0 to 1), or a small dict
    message: str | None = None
    at: float


class AttemptRecord(BaseModel):
    number: int
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    outcome: str | None = None
    error: str | None = None
    task_id: str | None = None  # the Ray task that ran it


class CallRecord(BaseModel):
    call_id: str
    app: str
    function: str
    status: CallStatus
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    progress: ProgressRecord | None = None
    priority: int = 0
    scheduled_for: float | None = None  # SCHEDULED until then (delay, at)
    start_by: float | None = None  # never started after (expires_in)
    attempts: list[AttemptRecord] = Field(default_factory=list)


class ListQuery(BaseModel):
    """Which calls ``GET /v1/calls`` lists, newest first."""

    app: str | None = None
    function: str | None = None
    status: CallStatus | None = None
    dead: bool = False  # only dead letters: FAILED or TIMED_OUT
    limit: int = Field(50, ge=1, le=10_000)
    before: str | None = None  # a call id: the page after it
    since: float | None = None  # created at or after (a Unix time)
    until: float | None = None  # created before
    prefix: str | None = Field(default=None, max_length=64)  # ids that start with it


class PendingResponse(BaseModel):
    call_id: str
    status: CallStatus


class ResultResponse(BaseModel):
    """bytes in the result are base64 text; a bytes result has ``encoding: base64``.
    NaN and infinities are the strings "NaN", "Infinity", "-Infinity"."""

    call_id: str
    status: CallStatus = CallStatus.SUCCEEDED
    result: Any = None
    encoding: str | None = None


class RemoteErrorBody(BaseModel):
    type: str
    message: str
    traceback: str | None = None


class FailedResponse(BaseModel):
    call_id: str
    status: CallStatus = CallStatus.FAILED
    error: RemoteErrorBody


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer of the API."""

    error: str  # a stable code: "not_found", "expired", "invalid", ...
    message: str


def call_record(info: CallInfo) -> CallRecord:
    """A status record as the API answers it."""
    skip = ("progress", "attempts")
    fields = {f: getattr(info, f) for f in CallRecord.model_fields if f not in skip}
    progress = info.progress
    if progress is not None:
        fields["progress"] = ProgressRecord(**dataclasses.asdict(progress))
    attempts = [AttemptRecord(**dataclasses.asdict(a)) for a in info.attempts]
    return CallRecord(**fields, attempts=attempts)
