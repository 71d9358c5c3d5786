"""The unit tier needs no cluster: connecting to Ray here is a bug in the test."""

import pytest
import ray


@pytest.fixture(autouse=True)
def _forbid_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("unit tests must not connect to Ray (ray.init was called)")

    monkeypatch.setattr(ray, "init", refuse)
