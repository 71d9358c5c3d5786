"""``rayfn call ...``: starting a call, one call's result, the list of calls, its
events, cancelling and requeueing one."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Annotated, Any

import typer
from rich.pretty import pprint
from rich.table import Table
from rich.text import Text

from rayfn._function import Function
from rayfn._function_call import FunctionCall, list_calls
from rayfn.cli._common import AsJson, CallId, dashboard_address, err, out, print_table, when
from rayfn.exception import Error, InvalidError
from rayfn.records import CallInfo, CallStatus, Progress

call_cli = typer.Typer(no_args_is_help=True, help="Calls. Example: rayfn call get fc-...")


@call_cli.command("spawn")
def call_spawn(
    app: Annotated[str, typer.Argument(help="The deployed app.")],
    function: Annotated[str, typer.Argument(help="The function (or Class.method).")],
    args: Annotated[
        str, typer.Argument(help="Positional arguments as a JSON list, e.g. '[1, \"a\"]'.")
    ] = "[]",
    kwargs: Annotated[str, typer.Option("--kwargs", help="Keyword arguments, JSON.")] = "{}",
    priority: Annotated[
        int | None, typer.Option("--priority", help="Higher leaves the queue first.")
    ] = None,
    delay: Annotated[
        float | None, typer.Option("--delay", help="Seconds before it may start.")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Not before this ISO 8601 time (or Unix time).")
    ] = None,
    expires_in: Annotated[
        float | None, typer.Option("--expires-in", help="Seconds: not started by then, never.")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="The same key, the same call.")
    ] = None,
) -> None:
    """Start a call of a deployed function and print its id.
    Example: rayfn call spawn my-job-queue process_job '[{"n": 1}]' --priority 5 --delay 60"""
    positional, keywords = _json_arg("arguments", args, list), _json_arg("--kwargs", kwargs, dict)
    chosen = {
        "priority": priority,
        "delay": delay,
        "at": _moment(at),
        "expires_in": expires_in,
        "idempotency_key": idempotency_key,
    }
    handle = Function.from_name(app, function)
    options = {name: value for name, value in chosen.items() if value is not None}
    if options:
        handle = handle.with_options(**options)
    call = handle.spawn(*positional, **keywords)
    out.print(call.object_id, highlight=False)


def _json_arg(name: str, text: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidError(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, kind):
        raise InvalidError(f"{name} must be a JSON {'list' if kind is list else 'object'}.")
    return value


def _moment(text: str | None) -> datetime.datetime | float | None:
    """``--at``: an ISO 8601 time (without a zone: local time) or a Unix time."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidError(f"--at is an ISO 8601 time or a Unix time, got {text!r}.") from None


@call_cli.command("get")
def call_get(
    call_id: CallId,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for it to finish.")
    ] = 0.0,
) -> None:
    """Pretty-print a call's result; exits 1 while it is still running.
    Example: rayfn call get fc-0-1-... --timeout 10"""
    call = FunctionCall.from_id(call_id)
    try:
        result = call.get(timeout=timeout)
    except TimeoutError as exc:
        err.print(f"[yellow]Pending:[/yellow] {exc}", highlight=False, markup=True)
        progress = call.status().progress
        if progress is not None:
            err.print(f"Progress: {shown_progress(progress)}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    except Error:
        raise
    except Exception as exc:  # the function's own exception: show it, it is the result
        err.print(f"[red]The call failed:[/red] {type(exc).__name__}: {exc}", highlight=False)
        for note in getattr(exc, "__notes__", []):
            err.print(note, highlight=False, markup=False)
        raise typer.Exit(1) from None
    pprint(result, expand_all=False)


@call_cli.command("list")
def call_list(
    app: Annotated[str | None, typer.Option("--app", help="Only this app's calls.")] = None,
    function: Annotated[
        str | None, typer.Option("--function", help="Only this function's.")
    ] = None,
    status: Annotated[CallStatus | None, typer.Option("--status", case_sensitive=False)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    before: Annotated[
        str | None, typer.Option("--before", help="Continue after this call id.")
    ] = None,
    dead: Annotated[
        bool, typer.Option("--dead", help="Only dead letters: FAILED or TIMED_OUT.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """List calls, newest first. Example: rayfn call list --app my-job-queue --status FAILED"""
    calls = list_calls(
        app=app, function=function, status=status, limit=limit, before=before, dead=dead
    )
    if as_json:
        out.print_json(json.dumps([_call_json(c) for c in calls]))
        return
    table = Table("Call", "Function", "Status", "Attempts", "Created", "Progress", "Error")
    for c in calls:
        table.add_row(
            c.call_id,
            f"{c.app}.{c.function}",
            c.status.value,
            str(len(c.attempts)),
            when(c.created_at),
            shown_progress(c.progress),
            c.error or "",
        )
    print_table(table)
    if len(calls) == limit:
        out.print(f"More: rayfn call list --before {calls[-1].call_id}", highlight=False)


@call_cli.command("watch")
def call_watch(call_id: CallId) -> None:
    """Print a call's events as they happen (status, progress, its end); exits 1 if it
    did not succeed. Example: rayfn call watch fc-..."""
    status = CallStatus.QUEUED
    for event in FunctionCall.from_id(call_id).watch():
        status = event.info.status
        shown = shown_progress(event.info.progress) if event.kind == "progress" else ""
        line = f"{event.kind.value} {status.value} {shown}".rstrip()
        if event.info.error:
            line += f": {event.info.error}"
        out.print(line, highlight=False, markup=False)
    if status is not CallStatus.SUCCEEDED:
        raise typer.Exit(1)


@call_cli.command("requeue")
def call_requeue(call_id: CallId) -> None:
    """Run a FAILED or TIMED_OUT call again under its id (its earlier attempts are kept).
    Example: rayfn call requeue fc-..."""
    info = FunctionCall.from_id(call_id).requeue()
    out.print(f"{call_id}: {info.status.value}", highlight=False)


@call_cli.command("logs")
def call_logs_command(call_id: CallId) -> None:
    """Print what a call printed (stdout, then stderr), each attempt's, read through
    Ray's log API (the cluster needs its dashboard). Example: rayfn call logs fc-..."""
    from rayfn._call_logs import call_logs

    dashboard_address()  # connects, and says so at once when there is no dashboard
    logs = call_logs(call_id)
    if not logs:
        err.print("It has not been handed to Ray yet: nothing printed.", highlight=False)
    for log in logs:
        if len(logs) > 1:
            err.print(f"-- attempt {log.attempt} on node {log.node}", highlight=False)
        if log.note:
            err.print(log.note, highlight=False, markup=False)
        for line in log.lines:
            out.print(Text(line), highlight=False)


@call_cli.command("deliveries")
def call_deliveries(
    call_id: CallId,
    replay: Annotated[
        bool, typer.Option("--replay", help="Deliver its end to its webhook again, now.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Each try at posting a call's end to its webhook (rayfn.Webhook).
    Example: rayfn call deliveries fc-... --replay"""
    call = FunctionCall.from_id(call_id)
    tries = call.redeliver() if replay else call.deliveries()
    if as_json:
        out.print_json(json.dumps([dataclasses.asdict(t) for t in tries]))
        return
    table = Table("Delivery", "Try", "Sent", "HTTP", "Took", "Error")
    for t in tries:
        took = f"{t.seconds * 1000:.0f} ms"
        answer = "" if t.status_code is None else str(t.status_code)
        table.add_row(t.delivery_id, str(t.attempt), when(t.at), answer, took, t.error or "")
    print_table(table)
    if replay:
        out.print(f"{call_id}: delivering again", highlight=False)


@call_cli.command("cancel")
def call_cancel(call_id: CallId) -> None:
    """Cancel a call (a finished one is left as it is). Example: rayfn call cancel fc-..."""
    info = FunctionCall.from_id(call_id).cancel()
    out.print(f"{call_id}: {info.status.value}", highlight=False)


def shown_progress(progress: Progress | None) -> str:
    """``40% loading`` for 0.4 and a message; a dict as compact JSON."""
    if progress is None:
        return ""
    value = progress.value
    shown = f"{value:.0%}" if isinstance(value, float) else json.dumps(value)
    return f"{shown} {progress.message}" if progress.message else shown


def _call_json(c: CallInfo) -> dict[str, Any]:
    record = dataclasses.asdict(c)
    record["status"] = c.status.value
    return record
