"""``rayfn http ...``: the built-in job API on Ray Serve."""

from __future__ import annotations

import typer

from rayfn import _connection
from rayfn.cli._common import out

http_cli = typer.Typer(no_args_is_help=True, help="The job API. Example: rayfn http start")


@http_cli.command("start")
def http_start() -> None:
    """Run the built-in job API on Ray Serve. Example: rayfn http start"""
    from rayfn.serve.deploy import deploy_api

    _connection.connect()  # rayfn's way, with the cluster's token: Serve's own has none
    api = deploy_api()
    out.print(f"job API => {api}/v1 (docs: {api}/docs)", highlight=False)


@http_cli.command("stop")
def http_stop() -> None:
    """Remove the built-in job API from Ray Serve. Example: rayfn http stop"""
    from rayfn.serve.deploy import stop_api

    _connection.connect()
    stop_api()
    out.print("Stopped the job API.", highlight=False)
