"""Programs over Dict and Queue, secrets and schedules, for tests/test_shared.py."""

import os
import time

import rayfn

app = rayfn.App("test-shared")


# -- scatter / gather over a Dict --------------------------------------------------------


@app.function(cpu=0.5)
def parent(n: int, board: rayfn.Dict) -> list[str]:
    """Spawn n parts; the last part to finish spawns the gatherer."""
    return [part.spawn(i, n, board).object_id for i in range(n)]


@app.function(cpu=0.5)
def part(i: int, n: int, board: rayfn.Dict) -> int:
    board[f"id:{i}"] = rayfn.current_function_call_id()
    board[f"done:{i}"] = True
    done = sum(1 for key in board if key.startswith("done:"))
    # Several parts may see all n done; the Dict's put-if-absent elects one of them.
    if done == n and board.put("gatherer", i, skip_if_exists=True):
        board["gatherer_id"] = gather.spawn(n, board).object_id
    return i * i


@app.function(cpu=0.5)
def gather(n: int, board: rayfn.Dict) -> int:
    ids = [board[f"id:{i}"] for i in range(n)]
    return sum(rayfn.FunctionCall.from_id(call_id).get(timeout=60) for call_id in ids)


# -- producer / consumer over a Queue ----------------------------------------------------


@app.function(cpu=0.5)
def producer(jobs: rayfn.Queue, n: int, consumers: int) -> None:
    jobs.put_many(list(range(n)))
    for _ in range(consumers):
        jobs.put(None)  # one stop sign per consumer


@app.function(cpu=0.5)
def consumer(jobs: rayfn.Queue, results: rayfn.Dict, name: str) -> int:
    handled = 0
    # One at a time: a batch could hold the other consumer's stop sign too.
    while (item := jobs.get(timeout=60)) is not None:
        results[item] = (name, item * 10)
        handled += 1
    return handled


# -- secrets -------------------------------------------------------------------------------


@app.function(
    secrets=[rayfn.Secret.from_name("test-api"), rayfn.Secret.from_dict({"MODE": "inline-mode"})]
)
def read_env() -> dict:
    return {"API_KEY": os.environ.get("API_KEY"), "MODE": os.environ.get("MODE")}


@app.function()
def read_env_plain() -> dict:
    return {"API_KEY": os.environ.get("API_KEY"), "MODE": os.environ.get("MODE")}


@app.function(secrets=[rayfn.Secret.from_name("test-api")])
def fail_with_secret() -> None:
    raise ValueError("it failed")


# -- schedules -------------------------------------------------------------------------------

scheduled = rayfn.App("test-schedule")


@scheduled.function(schedule=rayfn.Period(seconds=1), cpu=0.1)
def tick() -> float:
    return time.time()


@scheduled.function(schedule=rayfn.Period(seconds=0.5), cpu=0.1)
def slow_tick() -> float:
    time.sleep(2)
    return time.time()
