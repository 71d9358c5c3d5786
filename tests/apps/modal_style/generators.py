"""Issue 17, item 4: generator functions stream what they yield, as they yield it:
`rayfn run tests/apps/modal_style/generators.py`."""

import asyncio
import time

import rayfn as modal

app = modal.App("modal-style-generators")


@app.function()
def countdown(n: int, pause: float = 0.0):
    for i in range(n, 0, -1):
        yield i
        time.sleep(pause)


@app.function()
async def ticks(n: int):
    for i in range(n):
        await asyncio.sleep(0.01)
        yield f"tick {i}"


@app.function()
def breaks(n: int):
    yield "before"
    raise ValueError(f"broke after {n}")


@app.function()
def forever():
    i = 0
    while True:
        yield i
        i += 1
        time.sleep(0.05)


@app.cls()
class Tokenizer:
    @modal.method()
    def tokens(self, text: str):
        yield from text.split()


async def collect() -> list[str]:
    return [tick async for tick in ticks.remote_gen.aio(3)]


@app.local_entrypoint()
def main() -> None:
    start = time.monotonic()
    for value in countdown.remote_gen(3, pause=1.5):
        print(f"countdown {value} at {time.monotonic() - start:.2f}")
    print("async:", asyncio.run(collect()))
    seen = []
    try:
        for value in breaks.remote_gen(2):
            seen.append(value)
    except ValueError as exc:
        print("raised:", seen, exc)
    stream = forever.remote_gen()
    first = [next(stream) for _ in range(3)]
    stream.close()
    (call,) = modal.list_calls(app=app.name, function="forever")
    print("stopped early:", first, call.status.value)
    print("class:", list(Tokenizer().tokens.remote_gen("a b c")))
    try:
        countdown.remote(1)
    except modal.exception.InvalidError as exc:
        print("refused:", exc)
