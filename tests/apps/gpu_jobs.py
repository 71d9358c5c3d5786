"""GPU functions for the multi-node test (the GPUs are declared, not real)."""

import os

import ray

import rayfn

app = rayfn.App("test-gpu")


def _where() -> dict:
    return {
        "node": ray.get_runtime_context().get_node_id(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
    }


@app.function(gpu="A100")
def on_a100():
    return _where()


@app.function(gpu=["H100", "A100"])
def h100_or_a100():
    return _where()


@app.function(gpu="H100")
def on_h100():
    return _where()


@app.function(gpu="H100", startup_timeout=2)
def on_h100_or_give_up():
    return _where()


@app.function(cpu=0.5)
def on_cpu():
    return _where()
