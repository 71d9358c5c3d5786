"""GPU requests: ``gpu="A100"``, ``"H100:2"``, ``"any"``, or a list of fallbacks, turned
into Ray's ``num_gpus`` and ``accelerator_type``; and Ray's ``.options()`` keywords as
the resources the scheduler counts. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Ray's accelerator type names for NVIDIA GPUs (ray.util.accelerators), which is what
# `accelerator_type:<NAME>` resources on nodes are called.
KNOWN_GPUS = (
    "A10G",
    "A100",
    "A100-40G",
    "A100-80G",
    "B200",
    "H100",
    "H200",
    "L4",
    "L40S",
    "P100",
    "T4",
    "V100",
)
_BY_UPPER = {name.upper(): name for name in KNOWN_GPUS}
MAX_GPUS_PER_CALL = 8


@dataclass(frozen=True)
class GpuRequest:
    """GPUs a call needs: ``count`` of one of ``types`` (tried in order; empty: any)."""

    count: int
    types: tuple[str, ...] = ()


def parse_gpu(spec: str | list[str] | tuple[str, ...]) -> GpuRequest:
    """Parse a Modal-style GPU spec.

    >>> parse_gpu("H100:2")
    GpuRequest(count=2, types=('H100',))

    Raises:
        ValueError: unknown type or bad count; the message lists the known types.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    if not items:
        raise ValueError("gpu= needs at least one GPU type, e.g. gpu='A100'.")
    counts = set()
    types: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"gpu= takes strings like 'A100' or 'H100:2', got {item!r}.")
        name, _, count_text = item.partition(":")
        count = 1
        if count_text:
            if not count_text.isdigit() or not 1 <= int(count_text) <= MAX_GPUS_PER_CALL:
                raise ValueError(
                    f"GPU count in {item!r} must be a whole number from 1 to {MAX_GPUS_PER_CALL}."
                )
            count = int(count_text)
        counts.add(count)
        if name.lower() == "any":
            types.clear()
            break
        canonical = _BY_UPPER.get(name.upper())
        if canonical is None:
            raise ValueError(
                f"Unknown GPU type {name!r}; known types: {', '.join(KNOWN_GPUS)}, or 'any'."
            )
        types.append(canonical)
    if len(counts) > 1:
        raise ValueError(f"GPU fallbacks must ask for the same count, got {spec!r}.")
    return GpuRequest(count=counts.pop(), types=tuple(types))


def choose_type(request: GpuRequest, cluster_resources: dict[str, float]) -> str | None:
    """The accelerator type to ask Ray for: the first of the request's types that a
    node of the cluster has, else the first one (the autoscaler may add it)."""
    if not request.types:
        return None
    for name in request.types:
        if cluster_resources.get(f"accelerator_type:{name}", 0) > 0:
            return name
    return request.types[0]


# A bundle of Ray resources by the names the scheduler counts: CPU, GPU, memory (bytes),
# accelerator_type:<NAME>...
Resources = dict[str, float]


def held_resources(ray_options: dict[str, Any]) -> Resources:
    """What a task or actor made with these ``.options()`` keywords holds while it runs.

    >>> held_resources({"num_cpus": 0.5, "num_gpus": 1, "accelerator_type": "A100"})
    {'CPU': 0.5, 'GPU': 1.0, 'accelerator_type:A100': 0.001}
    """
    held = {
        "CPU": float(ray_options.get("num_cpus", 1.0)),
        "GPU": float(ray_options.get("num_gpus", 0.0)),
        "memory": float(ray_options.get("memory", 0.0)),
    }
    accelerator = ray_options.get("accelerator_type")
    if accelerator is not None:
        held[f"accelerator_type:{accelerator}"] = 0.001  # what Ray asks of the type's nodes
    return {name: amount for name, amount in held.items() if amount > 0}


def fits_some_node(shape: Resources, nodes: list[Resources]) -> bool:
    """Whether one of ``nodes`` (each node's total resources) could ever hold ``shape``;
    if none can, it waits for a new node (an autoscaler's), whatever else is freed."""
    return any(
        all(node.get(name, 0.0) >= amount for name, amount in shape.items()) for node in nodes
    )
