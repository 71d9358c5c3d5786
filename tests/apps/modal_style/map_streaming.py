"""Issue 17, item 5, as a Modal user writes it: `map` hands each result over as soon as
it (and, in order, those before it) finished, not after the whole batch."""

import time

import rayfn as modal

app = modal.App("modal-style-map-streaming")


@app.function()
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.local_entrypoint()
def main() -> None:
    start = time.monotonic()
    for value in sleepy.map([0.0, 0.1, 3.0]):
        print(f"ordered {value} at {time.monotonic() - start:.1f}")
    start = time.monotonic()
    for value in sleepy.map([3.0, 0.0], order_outputs=False):
        print(f"unordered {value} at {time.monotonic() - start:.1f}")
