"""Issue 17, item 3, as a Modal user writes it: an async entrypoint and the `.aio` twins
of the calls, the call handles and the shared objects; `rayfn run` awaits `main`."""

import asyncio
import time

import rayfn as modal
from rayfn.dict import Dict
from rayfn.queue import Queue

app = modal.App("modal-style-async")


@app.function()
def square(x: int) -> int:
    return x * x


@app.function()
def add(a: int, b: int) -> int:
    return a + b


@app.function()
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.cls()
class Doubler:
    @modal.method()
    def twice(self, x: int) -> int:
        return 2 * x


async def ticks_while(work: "asyncio.Future[object]") -> int:
    """How often the event loop got to run while ``work`` went on."""
    count = 0
    while not work.done():
        await asyncio.sleep(0.05)
        count += 1
    return count


@app.local_entrypoint()
async def main() -> None:
    print("remote:", await square.remote.aio(3))
    print("map:", [x async for x in square.map.aio(range(5))])
    print("starmap:", [x async for x in add.starmap.aio([(1, 2), (3, 4)])])
    await square.for_each.aio(range(3))
    calls = await square.spawn_map.aio(range(4))
    print("gather:", await modal.FunctionCall.gather.aio(*calls))
    call = await square.spawn.aio(7)
    print("get:", await call.get.aio(timeout=60))
    print("cls:", await Doubler().twice.remote.aio(21))

    naps = asyncio.gather(*[nap.remote.aio(0.5) for _ in range(2)])
    print("loop ran during the calls:", await ticks_while(naps) >= 3)
    mapped = asyncio.ensure_future(_collect(nap.map.aio([0.5, 0.5])))
    print("loop ran during the map:", await ticks_while(mapped) >= 3)

    d = Dict.from_name("modal-style-async", create_if_missing=True)
    await d.put.aio("a", 1)
    await d.update.aio({"b": 2})
    print("dict:", await d.get.aio("a"), await d.contains.aio("b"), await d.len.aio())
    print("dict keys:", sorted([k async for k in d.keys.aio()]))
    print("dict pop:", await d.pop.aio("a"), await d.len.aio())
    await d.clear.aio()
    Dict.delete("modal-style-async")

    q = Queue.from_name("modal-style-async", create_if_missing=True)
    await q.put.aio("first")
    await q.put_many.aio(["second", "third"])
    print("queue:", await q.get.aio(), await q.get_many.aio(5, timeout=1), await q.len.aio())
    Queue.delete("modal-style-async")


async def _collect(items):  # type: ignore[no-untyped-def]
    return [x async for x in items]
