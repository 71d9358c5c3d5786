"""@app.cls classes for tests/test_classes.py."""

import os
import time
import uuid

import rayfn

app = rayfn.App("test-classes")


@app.cls(cpu=0.25, max_containers=2, scaledown_window=2)
class Model:
    @rayfn.enter()
    def load(self) -> None:
        time.sleep(2)  # a slow model load, once per container
        self.container = uuid.uuid4().hex
        self.weights = 10
        entered = rayfn.Dict.from_name("test-classes-entered", create_if_missing=True)
        entered[self.container] = os.getpid()

    @rayfn.method()
    def predict(self, x: int) -> tuple[int, str]:
        time.sleep(0.1)
        return x * self.weights, self.container

    @rayfn.method()
    def fail(self) -> None:
        raise ValueError("model failed")

    @rayfn.exit()
    def unload(self) -> None:
        exited = rayfn.Dict.from_name("test-classes-exited", create_if_missing=True)
        exited[self.container] = True


@app.cls(cpu=0.25, max_containers=1)
@rayfn.concurrent(max_inputs=4)
class Server:
    @rayfn.method()
    def handle(self, seconds: float) -> tuple[float, float]:
        """Sleeps; returns when it started and ended."""
        started = time.time()
        time.sleep(seconds)
        return started, time.time()


@app.cls(max_containers=2)  # 1 CPU each, default scaledown_window (60 s)
class Warm:
    @rayfn.enter()
    def start(self) -> None:
        self.container = uuid.uuid4().hex

    @rayfn.method()
    def where(self, seconds: float) -> str:
        time.sleep(seconds)
        return self.container

    @rayfn.exit()
    def stop(self) -> None:
        exited = rayfn.Dict.from_name("test-classes-warm-exited", create_if_missing=True)
        exited[self.container] = True


@app.function()  # 1 CPU
def crunch(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
