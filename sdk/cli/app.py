"""Commands about apps: ``rayfn deploy``, ``serve`` and ``run`` a file's app, and
``rayfn app ...`` for the deployed ones."""

from __future__ import annotations

import asyncio
import inspect
import json
import signal
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.pretty import pprint
from rich.table import Table
from rich.text import Text

from rayfn import _connection, _output
from rayfn._function import Function
from rayfn._loader import find_app, import_file
from rayfn.cli._common import (
    AppFile,
    AppName,
    AsJson,
    ProgressBars,
    dashboard_address,
    err,
    out,
    print_table,
    when,
)
from rayfn.exception import Error, InvalidError
from rayfn.runtime.records import user_traceback

app_cli = typer.Typer(no_args_is_help=True, help="Deployed apps. Example: rayfn app list")


# -- deploy, serve and run ----------------------------------------------------------------


def deploy(file: AppFile) -> None:
    """Deploy the app in FILE; it stays until `rayfn app stop`. Example: rayfn deploy jobs.py"""
    from rayfn.serve.deploy import deploy_api

    path, _, var = file.partition("::")
    app = find_app(import_file(path), var or None)
    with ProgressBars().shown():
        info = app.deploy()
    out.print(
        f"[green]✓[/green] Deployed app [bold]{info.name}[/bold] version {info.version} "
        f"({len(info.functions)} functions: {', '.join(info.functions) or 'none'})",
        highlight=False,
    )
    api = deploy_api()
    for name, function in app.registered_functions.items():
        if function.web is not None:
            out.print(f"{name} => {function.get_web_url()}", highlight=False)
            out.print(f"  at its own root: {function.get_web_origin()}", highlight=False)
    out.print(f"job API => {api}/v1 (docs: {api}/docs)", highlight=False)


def serve(file: AppFile) -> None:
    """Serve the app's web functions until Ctrl-C or SIGTERM, reloading when FILE
    changes; they live at /<app>-dev/<function>. Example: rayfn serve web.py"""
    from rayfn._web_hosting import delete_web_functions, serve_app_prefix

    path, _, var = file.partition("::")
    _stop_on_sigterm()
    app_name = None
    try:
        while True:
            mtime = _mtime(path)
            app = find_app(import_file(path), var or None)
            if app.name is None:
                raise InvalidError("`rayfn serve` needs an App with a name.")
            app_name = app.name
            replicas = f"ServeReplica:{serve_app_prefix(app.name, dev=True)}"
            web = {n: f for n, f in app.registered_functions.items() if f.web is not None}
            if not web:
                raise InvalidError(f"{path} has no web functions (@asgi_app, @fastapi_endpoint).")
            with app.run(), _output.follower.following(None, replicas):  # the run serves them
                for name, function in web.items():
                    out.print(f"{name} => {function.get_web_url()}", highlight=False)
                    out.print(f"  at its own root: {function.get_web_origin()}", highlight=False)
                out.print(
                    "Serving; Ctrl-C stops. Reloading when the file changes.", highlight=False
                )
                while _mtime(path) == mtime:
                    time.sleep(0.5)
                out.print(f"{path} changed: reloading.", highlight=False)
    except KeyboardInterrupt:
        out.print("Stopping.", highlight=False)
    finally:
        if app_name is not None:
            delete_web_functions(app_name, dev=True)


def _stop_on_sigterm() -> None:
    """SIGTERM stops a command as Ctrl-C does (its app stopped, its calls cancelled),
    without the stack dump of Ray's own handler, which ``ray.init`` installs: hence
    connect first."""
    _connection.connect()
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _mtime(path: str) -> float | None:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return None


# `run` passes what follows FILE to the entrypoint: its parameters become options.
RUN_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def run(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="FILE or FILE::FUNCTION")],
    detach: Annotated[
        bool, typer.Option("--detach", help="Leave the calls running when the entrypoint returns.")
    ] = False,
) -> None:
    """Run a local entrypoint (or one function) with the file's app running ephemerally,
    showing what its calls print. When the entrypoint returns, calls still running are
    cancelled, unless --detach. Entrypoint parameters become options.
    Example: rayfn run jobs.py --n 5"""
    path, _, name = target.partition("::")
    _stop_on_sigterm()
    module = import_file(path)
    app = find_app(module)
    entry = _pick_entry(app.registered_entrypoints, app.registered_functions, name, path)
    kwargs = _parse_entry_options(entry, ctx.args, target)
    with app.run(detach=detach), ProgressBars().shown():
        try:
            if isinstance(entry, Function):
                result = entry.remote(**kwargs)
                if result is not None:
                    pprint(result, expand_all=False)
            elif inspect.iscoroutinefunction(entry):  # an async entrypoint, as Modal awaits it
                asyncio.run(entry(**kwargs))
            else:
                entry(**kwargs)
        except KeyboardInterrupt:
            err.print("Interrupted: the app stops and its calls are cancelled.", highlight=False)
            raise typer.Exit(130) from None
        except Error:
            raise
        except Exception as exc:  # the user's own code raised (or a call it made)
            failed = Error(f"{target} raised {type(exc).__name__}: {exc}")
            failed.add_note(user_traceback(exc, exc.__traceback__).rstrip())
            raise failed from None
    if detach:
        out.print(
            f"Detached: {app.name or 'the app'}'s calls run on; it stops when they end "
            "(`rayfn call list` shows them).",
            highlight=False,
        )


def _pick_entry(
    entrypoints: dict[str, Callable[..., Any]],
    functions: dict[str, Function],
    name: str,
    path: str,
) -> Callable[..., Any] | Function:
    if name:
        if name in entrypoints:
            return entrypoints[name]
        if name in functions:
            return functions[name]
        known = ", ".join([*entrypoints, *functions]) or "none"
        raise InvalidError(f"{path} has no entrypoint or function {name!r} (it has: {known}).")
    if len(entrypoints) == 1:
        return next(iter(entrypoints.values()))
    if not entrypoints and len(functions) == 1:
        return next(iter(functions.values()))
    choices = ", ".join(f"{path}::{n}" for n in [*entrypoints, *functions]) or "none"
    raise InvalidError(f"Say what to run: {choices}")


def _parse_entry_options(
    entry: Callable[..., Any] | Function, args: list[str], target: str
) -> dict[str, Any]:
    """Turn ``--name value`` arguments into keyword arguments of ``entry``."""
    fn = entry.definition()[0] if isinstance(entry, Function) else entry
    hints = typing.get_type_hints(fn)
    params: list[click.Parameter] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        flag = p.name.replace("_", "-")
        kind = hints.get(p.name, str if p.default is p.empty else type(p.default))
        required = p.default is p.empty
        if kind is bool:
            params.append(
                click.Option(
                    [f"--{flag}/--no-{flag}"],
                    default=False if required else p.default,
                )
            )
        else:
            click_type = {int: click.INT, float: click.FLOAT}.get(kind, click.STRING)
            params.append(
                click.Option(
                    [f"--{flag}", p.name],
                    type=click_type,
                    required=required,
                    default=None if required else p.default,
                )
            )
    command = click.Command(target, params=params, callback=lambda **kw: kw)
    try:
        parsed = command.main(args=args, prog_name=f"rayfn run {target}", standalone_mode=False)
    except click.UsageError as exc:
        raise InvalidError(f"{exc.format_message()} (see: rayfn run {target} --help)") from exc
    if not isinstance(parsed, dict):  # --help was printed
        raise typer.Exit(0)
    return parsed


# -- rayfn app ... --------------------------------------------------------------------------


@app_cli.command("list")
def app_list(as_json: AsJson = False) -> None:
    """List deployed apps. Example: rayfn app list --json"""
    apps = _connection.control().list_apps().result()
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "name": a.name,
                        "version": a.version,
                        "functions": list(a.functions),
                        "deployed_at": a.deployed_at,
                        "source": a.source,
                        "ephemeral": a.ephemeral,
                    }
                    for a in apps
                ]
            )
        )
        return
    table = Table("App", "Version", "Functions", "Deployed", "Source")
    for a in apps:
        name = f"{a.name} (ephemeral)" if a.ephemeral else a.name
        table.add_row(name, str(a.version), ", ".join(a.functions), when(a.deployed_at), a.source)
    print_table(table)


@app_cli.command("logs")
def app_logs(
    name: AppName,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new calls' logs.")
    ] = False,
    limit: Annotated[
        int, typer.Option(help="Show the logs of at most this many recent tasks.")
    ] = 20,
) -> None:
    """Print what an app's tasks wrote to stdout/stderr, read through Ray's log API
    (the cluster needs its dashboard). Example: rayfn app logs my-job-queue -f"""
    from ray.util.state import get_log, list_tasks

    apps = {a.name: a for a in _connection.control().list_apps().result()}
    if name not in apps:
        raise InvalidError(f"No deployed app named {name!r} (see `rayfn app list`).")
    dashboard_address()  # connects, and says so at once when there is no dashboard
    names = [f"{name}.{function}" for function in apps[name].functions]
    shown: set[str] = set()
    while True:
        tasks = []
        for task_name in names:
            found = list_tasks(filters=[("name", "=", task_name)], limit=10_000)
            tasks += [t for t in found if t.state in ("FINISHED", "FAILED")]
        tasks.sort(key=lambda t: t.start_time_ms or 0)
        fresh = [t for t in tasks if t.task_id not in shown][-limit:]
        for task in fresh:
            shown.add(task.task_id)
            try:
                lines = "".join(get_log(task_id=task.task_id, tail=-1))
            except Exception:  # its worker's log is gone (node removed, rotated)
                continue
            for line in lines.splitlines():
                # Text, not markup: a log line's brackets are the user's, not rich's.
                out.print(Text.assemble((task.name, "dim"), " ", line), highlight=False)
        if not follow:
            return
        time.sleep(1.0)


@app_cli.command("stop")
def app_stop(name: AppName) -> None:
    """Stop (undeploy) an app; running calls finish. Example: rayfn app stop my-job-queue"""
    from rayfn._web_hosting import delete_web_functions

    if _connection.control().stop(name).result() is None:
        raise InvalidError(f"No deployed app named {name!r} (see `rayfn app list`).")
    delete_web_functions(name)
    out.print(f"Stopped app [bold]{name}[/bold].", highlight=False)
