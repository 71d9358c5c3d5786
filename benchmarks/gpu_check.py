"""Run by hand on a machine with an NVIDIA GPU (never in CI, which has none): start a
local rayfn cluster that sees the GPU and show where ``gpu=`` work lands. A function
and a class that ask for a GPU run on it and see it (Ray's ``CUDA_VISIBLE_DEVICES``,
torch's device name, a matrix product on it); one that asks for none sees no GPU.
Prints a JSON report. Needs torch on that machine.

    python -m benchmarks.gpu_check
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import ray

import rayfn
from rayfn import _local_cluster

app = rayfn.App("gpu-check")


def _seen() -> dict[str, Any]:
    import torch

    seen: dict[str, Any] = {
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "ray_gpu_ids": ray.get_gpu_ids(),
        "assigned": ray.get_runtime_context().get_assigned_resources(),
        "torch_cuda_devices": torch.cuda.device_count(),
    }
    if torch.cuda.is_available():
        x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        torch.cuda.synchronize()
        seen["device"] = torch.cuda.get_device_name(0)
        seen["matmul_on"] = str((x @ x).device)
    return seen


@app.function(gpu="any")
def on_a_gpu() -> dict[str, Any]:
    return _seen()


@app.function(cpu=1)
def on_no_gpu() -> dict[str, Any]:
    return _seen()


@app.cls(gpu="any")
class Model:
    @rayfn.enter()
    def load(self) -> None:
        self.at_enter = _seen()

    @rayfn.method()
    def seen(self) -> dict[str, Any]:
        return {"at_enter": self.at_enter, "now": _seen()}


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="rayfn-gpu-check-"))
    os.environ["RAYFN_HOME"] = str(home)
    no_drain = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    _local_cluster.start(home, num_cpus=4, include_dashboard=False, extra_env=no_drain)
    try:
        with app.run():
            report = {
                "cluster": ray.cluster_resources(),
                "gpu_function": on_a_gpu.remote(),
                "cpu_function": on_no_gpu.remote(),
                "gpu_class": Model().seen.remote(),
            }
        print(json.dumps(report, indent=2, default=str), flush=True)
    except BaseException:
        traceback.print_exc()  # before the cluster goes, which ends this process
        sys.stderr.flush()
        raise
    finally:
        ray.shutdown()
        _local_cluster.stop(home)


if __name__ == "__main__":
    main()
