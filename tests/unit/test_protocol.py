"""The records that cross from the registry to a worker and back, without Ray."""

import dataclasses

import pytest

import rayfn
from rayfn.exception import InvalidError
from rayfn.runtime.protocol import TaskHeader


@pytest.mark.parametrize("secrets", [(), ("db",), ("db", "api-key")])
def test_a_task_header_reads_back_as_it_was_written(secrets: tuple[str, ...]) -> None:
    header = TaskHeader("fc-0-1-abc", 3, "rayfn:code:x:1:f", secrets, 1024, "app.f")
    assert TaskHeader.parse(header.to_str()) == header


def test_a_task_header_carries_the_volumes_to_mount() -> None:
    mounts = (("/data", "models"), ("/root/.cache/hf", "hf-cache"))
    header = TaskHeader("fc-0-1-abc", 1, "key", (), 5, "app.f", mounts)
    assert TaskHeader.parse(header.to_str()) == header


def test_a_label_with_newlines_stays_whole() -> None:
    header = TaskHeader("fc-0-1-abc", 1, "key", (), 5, "weird\nlabel\n")
    assert TaskHeader.parse(header.to_str()).label == "weird\nlabel\n"


def test_deploy_sends_the_result_size_limit_in_force_and_refuses_a_bad_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = rayfn.App("limits")

    @app.function()
    def f() -> None: ...

    monkeypatch.setenv("RAYFN_MAX_RESULT_BYTES", "4096")
    options = app._spec("limits").functions["f"].options
    assert options.max_result_bytes == 4096
    monkeypatch.setenv("RAYFN_MAX_RESULT_BYTES", "a lot")
    with pytest.raises(InvalidError, match="RAYFN_MAX_RESULT_BYTES='a lot'"):
        app.deploy()  # before anything is sent: no cluster needed
    assert dataclasses.fields(options)  # a plain record, as the workers get it
