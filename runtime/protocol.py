"""The records clients send to rayfn's actors and get back (``runtime/clients.py``
sends them). Named tuples: typed for mypy and a reader, and as cheap to pickle as
the bare tuples they replace, which matters for a batch of thousands of calls."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, NamedTuple

from rayfn.runtime.webhooks import WebhookTarget

if TYPE_CHECKING:
    import ray

    from rayfn.records import CallStatus
    from rayfn.runtime.records import AttemptMeta, CallOutcome, FunctionOptions, NotDeployed


class Submission(NamedTuple):
    """One call as the registry takes it."""

    target: str  # the deployment: an app's name, or an ephemeral run's key
    function: str
    args: bytes  # pickled (args, kwargs)
    parent: str | None = None  # the call it was spawned from, for the call graph
    options: CallOptions | None = None  # per-call options, when any is set


class CallOptions(NamedTuple):
    """Options of one call, beyond its function's (``with_options(priority=...)``, the
    job API's submit body). Times are relative where they can be, so the registry's
    clock decides them, not the client's (``at`` is a moment: the registry compares it
    with its own clock)."""

    idempotency_key: str | None = None  # the same key, the same call
    priority: int = 0  # higher leaves its function's queue first; FIFO among equals
    delay: float | None = None  # seconds from acceptance before it may start (SCHEDULED)
    at: float | None = None  # a Unix time before which it may not start (SCHEDULED)
    expires_in: float | None = None  # seconds from acceptance: not started by then, never
    webhook: WebhookTarget | None = None  # where its end is posted, signed


class Conflict(NamedTuple):
    """The registry's answer to a submission whose idempotency key names a call made
    with other arguments."""

    idempotency_key: str
    call_id: str


class Submitted(NamedTuple):
    """The registry's answer to ``submit``."""

    # per submission: its call id, or why it was refused (a Conflict: its idempotency
    # key names a call made with other arguments)
    answers: list[str | NotDeployed | Conflict]
    outcome: CallOutcome | None = None  # the first call's, when asked to wait for it


class StreamChunk(NamedTuple):
    """The registry's answer to ``stream``: a generator call's next values (refs to
    them), else, once it ended and every value was read, its outcome; ``gone``: the
    registry holds no stream of that call (read already, kept past its time, or lost
    with a registry restart)."""

    items: list[ray.ObjectRef[object]]
    outcome: CallOutcome | None = None
    gone: bool = False


class PollMode(enum.StrEnum):
    """How ``poll`` waits, and which calls it answers for."""

    FIRST = "first"  # for the first id; and for the others that have finished by then
    ALL = "all"  # until every call has finished; for each
    ANY = "any"  # until one has finished; for those that have


# The answer to ``poll``: call id -> where it stands (with its result once finished).
Polled = dict[str, "CallOutcome"]


class CallQuery(NamedTuple):
    """Which calls ``list_calls`` lists, newest first."""

    app: str | None = None
    function: str | None = None
    status: CallStatus | None = None
    limit: int = 50
    before: str | None = None  # a call id: continue a listing after it
    dead: bool = False  # only dead letters (FAILED, TIMED_OUT)
    since: float | None = None  # created at or after (a Unix time)
    until: float | None = None  # created before
    prefix: str | None = None  # ids that start with it


class LoadedVersion(NamedTuple):
    """What the registry needs of a deployed function (its code is in the GCS)."""

    version: int
    options: FunctionOptions
    runtime_env: dict[str, Any] | None


class TaskHeader(NamedTuple):
    """What a task is told of its call besides the arguments (its first argument, sent
    as one string: the cheapest thing Ray ships)."""

    call_id: str
    attempt: int
    code_key: str  # where the worker finds the function's code (runtime/code.py)
    secrets: tuple[str, ...]  # names of the secrets set as env vars for the call
    max_result_bytes: int  # a larger result fails the call (RAYFN_MAX_RESULT_BYTES)
    label: str  # "app.function", for messages (last in the text: it may hold anything)
    volumes: tuple[tuple[str, str], ...] = ()  # (mount path, volume name) to mount first
    start_by: float | None = None  # a Unix time: not started after it, the call never runs

    def to_str(self) -> str:
        secrets = ",".join(self.secrets)
        volumes = ",".join(f"{path}={name}" for path, name in self.volumes)
        start_by = "" if self.start_by is None else repr(self.start_by)
        fields = (self.call_id, self.attempt, self.code_key, secrets, self.max_result_bytes)
        return "\n".join(map(str, fields)) + f"\n{start_by}\n{volumes}\n{self.label}"

    @classmethod
    def parse(cls, text: str) -> TaskHeader:
        call_id, attempt, code_key, secrets, limit, start_by, volumes, label = text.split("\n", 7)
        names = tuple(secrets.split(",")) if secrets else ()
        mounts = tuple(_mount(v) for v in volumes.split(",")) if volumes else ()
        deadline = float(start_by) if start_by else None
        return cls(call_id, int(attempt), code_key, names, int(limit), label, mounts, deadline)


def _mount(text: str) -> tuple[str, str]:
    """``"/path=name"`` as ``(path, name)``."""
    path, _, name = text.rpartition("=")
    return path, name


# A pack's calls that have finished, as the start report hands them over:
# (call id, attempt, how it went).
Finished = tuple[tuple[str, int, "AttemptMeta"], ...]
