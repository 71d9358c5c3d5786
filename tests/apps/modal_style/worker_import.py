"""Issue 17, item 2: the file is imported on the workers, as Modal does, so what its top
level builds is built there: `rayfn run tests/apps/modal_style/worker_import.py`."""

import os
import threading
from dataclasses import dataclass

import rayfn as modal

image = modal.Image.debian_slim().env({"WHERE": "in the image"})
app = modal.App("modal-style-worker-import", image=image)

# Built where the module is imported: here, and again on each worker.
BUILT_LOCALLY = modal.is_local()
BUILT_BY = os.getpid()
# No pickle of this could cross to a worker; the worker builds its own.
guard = threading.Lock()

with image.imports():
    import json  # what the image has, imported at the top as Modal programs do


@dataclass
class Point:  # an argument of the module's own class: pickled by reference to it
    x: int
    y: int


@app.function()
def where() -> dict:
    with guard:
        return {
            "built locally": BUILT_LOCALLY,
            "built in this process": os.getpid() == BUILT_BY,
            "is_local": modal.is_local(),
            "env": os.environ.get("WHERE"),
            "json": json.dumps([1]),
        }


@app.function()
def norm(p: Point) -> int:
    assert isinstance(p, Point), type(p)
    return p.x * p.x + p.y * p.y


@app.function()
def caller() -> int:
    return norm.remote(Point(3, 4)) + 1  # the run's own norm: nothing is deployed


@app.cls()
class Counter:
    @modal.enter()
    def start(self) -> None:
        self.built_locally = BUILT_LOCALLY

    @modal.method()
    def look(self, p: Point) -> str:
        return f"{self.built_locally} {p.x + p.y}"


@app.local_entrypoint()
def main() -> None:
    print("where:", sorted(where.remote().items()))
    print("norm:", norm.remote(Point(1, 2)))
    print("caller:", caller.remote())
    print("class:", Counter().look.remote(Point(2, 2)))
    print("local:", modal.is_local())
