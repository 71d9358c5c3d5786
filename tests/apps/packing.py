"""Short functions, which the registry packs several calls to a task: each run is
noted in a file of the test's, so a test can tell how often each call ran."""

import os
import time
from pathlib import Path

import rayfn

app = rayfn.App("test-packing")

BIG = 100 * 1024  # bytes: over the inline limit, so the result is the task's 2nd return


def _note(folder: str, i: int) -> None:
    fd = os.open(Path(folder) / "runs", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{i} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


@app.function()
def tally(folder: str, i: int, big: bool = False):
    _note(folder, i)
    return bytes(BIG) if big else i


@app.function(timeout=1.5)
def tally_or_hang(folder: str, i: int, hang: int | None = None):
    """Call ``hang`` runs past its timeout (or until cancelled); the rest are short."""
    _note(folder, i)
    if i == hang:
        time.sleep(30)
    return i


@app.function()
def tally_or_crash(folder: str, i: int, crash: int | None = None):
    """Call ``crash`` kills its worker process."""
    _note(folder, i)
    if i == crash:
        os._exit(1)
    return i


@app.function(retries=rayfn.Retries(2, initial_delay=0.05))
def flaky(folder: str, i: int):
    """Odd calls fail on their first attempt and succeed on the retry."""
    runs = (Path(folder) / "runs").read_text().split() if (Path(folder) / "runs").exists() else []
    _note(folder, i)
    if i % 2 and str(i) not in runs[::2]:
        raise ValueError(f"call {i}: first attempt fails")
    return i
