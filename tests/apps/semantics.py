"""Functions for the job-semantics tests. They record what happened to them in files
under a folder the test passes in, so the test can see attempts, pids and overlap."""

import os
import time
from pathlib import Path

import rayfn

app = rayfn.App("test-semantics")


def _mark(folder: str, name: str, text: str = "") -> None:
    # O_APPEND writes of one short line are atomic: concurrent calls do not interleave.
    fd = os.open(Path(folder) / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


def _count(folder: str, name: str) -> int:
    path = Path(folder) / name
    return len(path.read_text().splitlines()) if path.exists() else 0


@app.function(retries=rayfn.Retries(3, initial_delay=0.2, backoff_coefficient=2))
def fails_twice(folder: str):
    _mark(folder, "attempts", str(time.time()))
    if _count(folder, "attempts") <= 2:
        raise ConnectionError("transient")
    return "third time lucky"


@app.function(retries=rayfn.Retries(3, initial_delay=0.1, retry_on=(ConnectionError,)))
def only_connection_errors_retried(folder: str, error: str):
    _mark(folder, "attempts")
    raise {"ConnectionError": ConnectionError, "KeyError": KeyError}[error](error)


@app.function(retries=1)
def crashes_first(folder: str):
    _mark(folder, "attempts")
    if _count(folder, "attempts") == 1:
        os._exit(1)
    return "survived"


@app.function()
def crashes_always():
    os._exit(3)


@app.function(timeout=1)
def overruns(folder: str):
    _mark(folder, "pid", str(os.getpid()))
    time.sleep(30)
    return "too late"


@app.function(max_containers=2)
def limited(folder: str, index: int):
    start = time.time()
    time.sleep(1)
    _mark(folder, "spans", f"{start} {time.time()} {index}")
    return index


@app.function(max_containers=1)
def one_at_a_time(folder: str, name: str, seconds: float):
    _mark(folder, name, str(os.getpid()))
    time.sleep(seconds)
    return name


@app.function()
def square(x: int) -> int:
    return x * x


@app.function()
def add(a: int, b: int) -> int:
    return a + b


@app.function()
def reciprocal(x: int) -> float:
    return 1 / x


@app.function()
def sleep_then(seconds: float, value):
    time.sleep(seconds)
    return value
