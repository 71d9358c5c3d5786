"""Functions for the head-restart test: ``slow`` notes each run of itself in a folder,
so the test can tell that a call ran at least once, and how often."""

import os
import time
from pathlib import Path

import rayfn

app = rayfn.App("test-head-restart")


@app.function()
def double(x: int) -> int:
    return 2 * x


@app.function(max_containers=1)
def slow(x: int, folder: str) -> int:
    """One at a time, 0.2 s each: a queue that is still long when the head goes."""
    fd = os.open(Path(folder) / f"slow-{x}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)
    time.sleep(0.2)
    return 3 * x
