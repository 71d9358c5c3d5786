"""Functions for the durability tests: each notes every run of itself in a folder, so
the test can tell that a call ran at least once, and how often."""

import os
import time
from pathlib import Path

import rayfn

app = rayfn.App("test-durable")


def _ran(folder: str, name: str) -> int:
    """Note a run of ``name``; how many runs there were before this one."""
    path = Path(folder) / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)
    return path.stat().st_size - 1


@app.function()
def square(x: int) -> int:
    return x * x


@app.function()
def big(x: int) -> bytes:
    """200 KiB: more than rides inline, so it stays in Ray's object store."""
    return bytes([x % 256]) * (200 * 1024)


@app.function(max_containers=2)
def slow(x: int, folder: str, seconds: float = 0.02) -> int:
    _ran(folder, f"slow-{x}")
    time.sleep(seconds)
    return 2 * x


@app.function(result_ttl=3)
def brief(x: int) -> int:
    """Its result ages out after 3 s: many of them make an expiry burst."""
    return x


@app.function()
def work(i: int) -> int:
    """One in a hundred raises."""
    if i % 100 == 7:
        raise ValueError(f"job {i} failed")
    return i


@app.function(retries=rayfn.Retries(2, initial_delay=0.05))
def flaky(i: int, folder: str) -> int:
    """Fails its first run, then succeeds: retried by its policy."""
    if _ran(folder, f"flaky-{i}") == 0:
        raise RuntimeError(f"first run of {i}")
    return i


@app.function(retries=rayfn.Retries(1, initial_delay=30.0))
def patient(folder: str) -> str:
    """Fails its first run, then waits out a long backoff before its second."""
    if _ran(folder, "patient") == 0:
        raise RuntimeError("first run")
    return "second run"


@app.function()
def stamp() -> float:
    """When it ran."""
    return time.time()
