"""Issue 17, item 6: `with_options` on a function and a class: the same code, other
resources and limits: `rayfn run tests/apps/modal_style/options.py`."""

import time

import ray

import rayfn as modal

app = modal.App("modal-style-options")


def held() -> float:
    return ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0)


@app.function(cpu=0.5)
def cores() -> float:
    return held()


@app.function(timeout=60)
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


@app.cls(cpu=0.5)
class Model:
    @modal.method()
    def cores(self) -> float:
        return held()


@app.local_entrypoint()
def main() -> None:
    print("function:", cores.remote(), cores.with_options(cpu=1).remote())
    try:
        nap.with_options(timeout=1).remote(5)
    except modal.exception.FunctionTimeoutError:
        print("short timeout: timed out")
    print("own timeout:", nap.remote(0.1))
    print("class:", Model().cores.remote(), Model.with_options(cpu=1)().cores.remote())
