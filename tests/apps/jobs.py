"""Functions the tests run remotely (importable, so tests and subprocesses share them)."""

import os
import time

import rayfn

app = rayfn.App("test-jobs")


class JobFailed(Exception):
    """A user-defined exception, to check that its type survives the trip."""


@app.function()
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@app.function()
def slow(seconds: float, value=None):
    time.sleep(seconds)
    return value if value is not None else seconds


@app.function(result_ttl=2)
def short_lived(value):
    return value


@app.function()
def fail(message: str):
    raise JobFailed(message)


@app.function()
def fail_with_builtin(n: int):
    return {}["missing-key-" + str(n)]


@app.function()
def spawn_child(value):
    """Nested call: a running function spawns another and waits for it."""
    call = echo.spawn(value)
    return {"child_id": call.object_id, "child": call.get(timeout=60)}


@app.function()
def whoami():
    return {"call_id": rayfn.current_function_call_id(), "pid": os.getpid()}


@app.function()
def unpicklable_result():
    import threading

    return threading.Lock()


@app.function()
def sized_result(n: int):
    return b"x" * n
