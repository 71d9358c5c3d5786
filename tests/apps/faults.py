"""Functions for the fault tests: they tell the test where they run, then wait."""

import os
import time
from pathlib import Path

import ray

import rayfn

app = rayfn.App("test-faults")


def _note(folder: str, name: str, text: str) -> None:
    fd = os.open(Path(folder) / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


def _attempt(folder: str) -> int:
    path = Path(folder) / "pids"
    return len(path.read_text().splitlines()) if path.exists() else 0


@app.function(retries=rayfn.Retries(2, initial_delay=0.1))
def killed_once(folder: str):
    """The first attempt waits to be SIGKILLed by the test; the retry returns."""
    first = _attempt(folder) == 0
    _note(folder, "pids", str(os.getpid()))
    if first:
        time.sleep(60)
    return "retried after the kill"


@app.function()
def killed_for_good(folder: str):
    _note(folder, "pids", str(os.getpid()))
    time.sleep(60)


@app.function(retries=rayfn.Retries(2, initial_delay=0.1))
def on_some_node(folder: str):
    """Reports its node, then waits long on the first attempt (its node is removed)."""
    node = ray.get_runtime_context().get_node_id()
    first = _attempt(folder) == 0
    _note(folder, "pids", f"{os.getpid()} {node}")
    if first:
        time.sleep(60)
    return node


@app.function()
def double(x: int) -> int:
    time.sleep(0.2)
    return 2 * x
