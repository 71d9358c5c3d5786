"""Every exception rayfn raises, under one root.

    Error
    ├── InvalidError          bad input: malformed id, bad option, bad file
    ├── NotFoundError         unknown call id, app or function
    ├── OutputExpiredError    the result aged out (past its result_ttl)
    ├── SerializationError    arguments that cannot be pickled
    ├── RemoteError           a remote exception whose type cannot be rebuilt here
    ├── ExecutionError        Ray failed the call itself (e.g. its worker died)
    │   ├── StartupTimeoutError   it never started (no node could run it)
    │   └── CallLostError         the registry that held it died (its id is from before)
    ├── FunctionTimeoutError  its last attempt ran past the function's timeout
    ├── CancelledError        it was cancelled
    ├── ExpiredUnstartedError it was not started before its expires_in deadline
    ├── ConflictError         an idempotency key names a call with other arguments
    └── ClusterError          no Ray cluster to connect to, or it refused us; a Dict
                              or Queue that did not answer

A call still running raises the builtin ``TimeoutError`` from ``get(timeout=...)``.
``OutputExpiredError`` and ``FunctionTimeoutError`` are deliberately *not*
``TimeoutError``s: a loop that polls while catching ``TimeoutError`` must not spin
forever on a call that has ended. Likewise ``CancelledError`` is rayfn's own (an
``Exception``), not ``asyncio.CancelledError``.
"""

from __future__ import annotations


class Error(Exception):
    """Root of every rayfn exception: ``except rayfn.exception.Error`` catches them all."""


class InvalidError(Error):
    """Raised when an input is malformed: a bad option on ``@app.function``, a call id
    that cannot be one, a file without an ``App``. The message says how to fix it."""


class ConflictError(Error):
    """Raised when an idempotency key already names a call made with other arguments
    (HTTP 409): the same key must mean the same call."""


class NotSupportedError(InvalidError):
    """Raised for a Modal feature rayfn does not have (an ``Image`` method with no Ray
    counterpart...): the message names it, says "not supported by rayfn" and what to
    use instead."""


class NotFoundError(Error):
    """Raised when a call id, app or function does not exist (any more)."""


class OutputExpiredError(Error):
    """Raised by ``FunctionCall.get`` when the call finished longer ago than its
    function's ``result_ttl`` and its result has been dropped."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"The result of call {call_id} has expired.")
        self.call_id = call_id

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.call_id,))


class SerializationError(Error):
    """Raised by ``spawn``/``remote`` when the arguments cannot be pickled (a lock, an
    open socket...; nothing was submitted), and by ``get``/``remote`` when the
    function's result cannot be pickled or is over ``RAYFN_MAX_RESULT_BYTES``."""


class RemoteError(Error):
    """Raised by ``get``/``remote`` for a remote exception whose type cannot be rebuilt
    in this process; ``type_name`` and ``remote_traceback`` say what happened."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return (type(self), (self.type_name, self.message, self.remote_traceback))


class ExecutionError(Error):
    """Raised by ``get``/``remote`` when Ray could not run the call to its end (its
    worker process died, its node was lost): the function itself raised nothing."""


class StartupTimeoutError(ExecutionError):
    """Raised by ``get``/``remote`` when the call did not start within its function's
    ``startup_timeout`` (e.g. it asks for a GPU no node has and none can be added)."""


class CallLostError(ExecutionError):
    """Raised by ``get``/``status``/``cancel`` for a call accepted by a registry actor
    that has died since (Ray restarted it empty, and the call's task died with it).
    The call may or may not have run; spawn it again if it should."""

    def __init__(self, call_id: str) -> None:
        super().__init__(
            f"Call {call_id} was lost: the rayfn registry that accepted it has restarted "
            "since, and its calls died with it (or had expired before). Spawn it again "
            "if it should run."
        )
        self.call_id = call_id

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.call_id,))


class FunctionTimeoutError(Error):
    """Raised by ``get``/``remote`` when the call's last attempt ran past its
    function's ``timeout``; the attempt's worker was stopped."""


class CancelledError(Error):
    """Raised by ``get``/``remote`` for a call that was cancelled with
    ``FunctionCall.cancel()``. Not ``asyncio.CancelledError``."""


class ExpiredUnstartedError(Error):
    """Raised by ``get``/``remote`` for a call that was not started before its
    ``expires_in`` deadline (``with_options(expires_in=...)``): it never ran, and its
    status is ``EXPIRED_UNSTARTED``."""


class ClusterError(Error):
    """Raised when rayfn cannot reach a Ray cluster, or the cluster refuses it; and by a
    ``Dict``/``Queue`` whose actor did not come back from a restart in time, or
    restarted while a call that is unsafe to repeat (``put_many``, ``get``, ``pop``,
    ``put(skip_if_exists=True)``) was on its way."""
