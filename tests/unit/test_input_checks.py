"""Bad names and waits are refused on the client with InvalidError, before anything is
sent; the CLI prints such an error as one plain line."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from typer.testing import CliRunner

import rayfn
from rayfn._checks import check_name, check_wait
from rayfn.cli import cli
from rayfn.config import settings
from rayfn.exception import InvalidError
from rayfn.runtime.constants import MAX_WAIT_S
from rayfn.runtime.ids import CALL_ID_EXAMPLE, is_call_id

# Anchored with "$", each of these once passed: "$" also matches before a final newline.
NEWLINE_NAMES = ["a\n", "ok-name\n"]


@pytest.mark.parametrize("name", NEWLINE_NAMES)
def test_every_name_ending_in_a_newline_is_refused(name: str) -> None:
    refusals: list[Any] = [
        lambda: rayfn.App(name),
        lambda: rayfn.Function.from_name(name, "f"),
        lambda: rayfn.Function.from_name("app", name),
        lambda: rayfn.Cls.from_name(name, "Model"),
        lambda: rayfn.Dict.from_name(name),
        lambda: rayfn.Queue.from_name(name, create_if_missing=True),
        lambda: rayfn.Secret.from_name(name),
        lambda: rayfn.Secret.from_dict({"KEY\n": "value"}),
        lambda: rayfn.asgi_app(route_prefix=f"/{name}"),
        lambda: rayfn.fastapi_endpoint(label=name),
        lambda: rayfn.App("app").function(name=name)(lambda: None),
        lambda: rayfn.FunctionCall.from_id(CALL_ID_EXAMPLE + "\n"),
    ]
    for refuse in refusals:
        with pytest.raises(InvalidError):
            refuse()
    assert not is_call_id(CALL_ID_EXAMPLE + "\n")


def test_good_names_pass_unchanged() -> None:
    assert check_name("app", "my-app.v2_x") == "my-app.v2_x"
    assert check_name("Dict", "x" * 128) == "x" * 128
    assert rayfn.asgi_app(route_prefix="/team/jobs") is not None
    assert is_call_id(CALL_ID_EXAMPLE)
    with pytest.raises(InvalidError, match="Invalid Dict name"):
        check_name("Dict", "x" * 129)


@pytest.mark.parametrize("seconds", [None, 0, 0.5, 10, MAX_WAIT_S, int(MAX_WAIT_S)])
def test_waits_from_zero_to_a_year_are_accepted(seconds: float | None) -> None:
    expected = None if seconds is None else float(seconds)
    assert check_wait("timeout", seconds) == expected


@pytest.mark.parametrize(
    "seconds", [10**20, 10**400, MAX_WAIT_S + 1, -1, -0.001, math.nan, math.inf, True, "5"]
)
def test_waits_outside_zero_to_a_year_are_refused_with_the_range(seconds: object) -> None:
    call = rayfn.FunctionCall.from_id(CALL_ID_EXAMPLE)
    with pytest.raises(InvalidError, match=r"from 0 to 31536000 \(one year\)"):
        call.get(timeout=seconds)
    with pytest.raises(InvalidError, match=r"from 0 to 31536000 \(one year\)"):
        asyncio.run(call.get.aio(timeout=seconds))


@pytest.mark.parametrize("call_id", ["[/x]", "[bold]not-an-id"])
def test_the_cli_prints_an_error_that_looks_like_markup_as_one_plain_line(call_id: str) -> None:
    result = CliRunner().invoke(cli, ["call", "get", call_id])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {call_id!r} is not a call id"), lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RAYFN_HTTP_PORT", "abc"),
        ("RAYFN_RESULT_TTL", "-1"),
        ("RAYFN_HTTP_BODY_TIMEOUT", "nan"),
        ("RAYFN_MAX_RESULT_BYTES", "lots"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidError) as raised:
        settings()
    message = str(raised.value)
    assert f"{variable}={value!r}" in message and "\n" not in message
    result = CliRunner().invoke(cli, ["http", "start"])  # the CLI: one line, exit 1
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0, result.output
    assert variable in result.output


def test_the_token_is_never_echoed_in_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYFN_API_TOKEN", "s3cret")
    monkeypatch.setenv("RAYFN_HTTP_PORT", "0")
    with pytest.raises(InvalidError) as raised:
        settings()
    assert "s3cret" not in str(raised.value)
