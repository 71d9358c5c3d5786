import pytest

from rayfn._options import function_options
from rayfn.exception import InvalidError
from rayfn.runtime.resources import GpuRequest, choose_type, parse_gpu


def test_gpu_specs() -> None:
    assert parse_gpu("A100") == GpuRequest(1, ("A100",))
    assert parse_gpu("h100:2") == GpuRequest(2, ("H100",))
    assert parse_gpu("any") == GpuRequest(1, ())
    assert parse_gpu("any:4") == GpuRequest(4, ())
    assert parse_gpu(["H100", "A100"]) == GpuRequest(1, ("H100", "A100"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("Z9000", "Unknown GPU type 'Z9000'; known types: A10G, A100"),
        ("A100:0", "must be a whole number from 1 to 8"),
        ("A100:x", "must be a whole number"),
        ([], "at least one GPU type"),
        (["A100:1", "H100:2"], "same count"),
        ([3], "takes strings"),
    ],
)
def test_bad_gpu_specs(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_gpu(spec)  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match=message):
        function_options(gpu=spec, default_result_ttl=1)  # type: ignore[arg-type]


def test_fallbacks_pick_a_type_the_cluster_has() -> None:
    request = parse_gpu(["H100", "A100"])
    assert choose_type(request, {"accelerator_type:A100": 1.0}) == "A100"
    assert choose_type(request, {}) == "H100"  # none present: the autoscaler's first choice
    assert choose_type(parse_gpu("any"), {}) is None


def test_gpu_maps_to_ray_task_options() -> None:
    options = function_options(gpu="A100:2", cpu=4, memory=1024, default_result_ttl=1)
    assert options.ray_task_options() == {
        "num_cpus": 4.0,
        "memory": 1024 * 1024 * 1024,
        "num_gpus": 2,
        "accelerator_type": "A100",
    }
    assert function_options(gpu="any", default_result_ttl=1).ray_task_options() == {
        "num_cpus": 1.0,
        "num_gpus": 1,
    }
