"""Issue 17, item 6: `@modal.batched` on a function and a class method: callers pass one
value, the function gets lists: `rayfn run tests/apps/modal_style/batching.py`."""

import rayfn as modal

app = modal.App("modal-style-batched")


@app.function()
@modal.batched(max_batch_size=4, wait_ms=300)
def measure(texts: list[str], scale: list[int]) -> list[tuple[int, int]]:
    # (its own result, how many calls shared this batch)
    return [(len(text) * by, len(texts)) for text, by in zip(texts, scale, strict=True)]


@app.function()
@modal.batched(max_batch_size=3, wait_ms=50)
def fails(xs: list[int]) -> list[int]:
    raise ValueError(f"a batch of {len(xs)} failed")


@app.cls()
class Model:
    @modal.enter()
    def load(self) -> None:
        self.offset = 100

    @modal.method()
    @modal.batched(max_batch_size=8, wait_ms=200)
    def predict(self, xs: list[int]) -> list[int]:
        return [x + self.offset for x in xs]


@app.local_entrypoint()
def main() -> None:
    print("map:", list(measure.map(["a", "bb", "ccc", "dddd"], [1, 2, 1, 2])))
    print("alone:", measure.remote("xyz", scale=3))
    print("failed:", [str(e) for e in fails.map([1, 2, 3], return_exceptions=True)])
    print("class:", list(Model().predict.map(range(5))))
