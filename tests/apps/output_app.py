"""A file as `rayfn run` and `rayfn serve` users write it: functions that print."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import rayfn

app = rayfn.App("test-output")


@app.function()
def chatty(i: int) -> int:
    print(f"hello from call {i}")
    print(f"warning {i} on stderr", file=sys.stderr)
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("user").info("logged %d", i)
    return i


@app.function()
def progress(steps: int) -> str:
    for step in range(1, steps + 1):
        sys.stderr.write(f"\rworking {step}/{steps}")
        sys.stderr.flush()
        time.sleep(0.05)
    sys.stderr.write("\n")
    return "done"


@app.local_entrypoint()
def main(n: int = 2) -> None:
    print(sum(chatty.map(range(n))))
    print(progress.remote(5))


@app.function()
def handshake(marker: str) -> str:
    """Prints, then waits for the test to create ``marker``, which it does only once
    it has read the print: passes only if output streams while the call runs."""
    print("waiting for the marker", flush=True)
    deadline = time.monotonic() + 60
    while not Path(marker).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the print never reached the terminal")
        time.sleep(0.1)
    print(f"printed at {time.time()}")
    return "seen"


@app.local_entrypoint()
def live(marker: str) -> None:
    print(handshake.remote(marker))


@app.function()
def sleeper(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.local_entrypoint()
def leave(n: int = 3, seconds: float = 60.0) -> None:
    """Spawns and returns at once, as fire-and-forget scripts do."""
    calls = [sleeper.spawn(seconds) for _ in range(n)]
    print(" ".join(c.object_id for c in calls), flush=True)


@app.local_entrypoint()
def hang(n: int = 2) -> None:
    """Spawns, says so, and waits for ever: the test kills it."""
    leave(n, 600.0)
    time.sleep(3600)


@app.function()
def broken(x: int) -> int:
    raise ValueError(f"bad input {x}")


@app.local_entrypoint()
def fails() -> None:
    broken.remote(7)
