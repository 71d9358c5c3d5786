"""Issue 17, item 6, as a Modal user writes it: `@modal.concurrent` on a function lets
several of its calls share what one asks for, so more of them run at once."""

import time

import rayfn as modal

app = modal.App("modal-style-concurrent")


@app.function(cpu=1)
@modal.concurrent(max_inputs=4)
def overlap(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def most_at_once(spans: list[tuple[float, float]]) -> int:
    return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)


@app.local_entrypoint()
def main() -> None:
    # The test cluster has 2 CPUs: one call per CPU would run 2 at once, not 4.
    print("at once:", most_at_once(list(overlap.map([4.0] * 4))))
