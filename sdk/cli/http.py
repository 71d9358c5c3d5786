"""``rayfn http ...``: the built-in job API on Ray Serve."""

from __future__ import annotations

from typing import Annotated

import typer

from rayfn import _connection
from rayfn.cli._common import out
from rayfn.exception import InvalidError

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


def ui(
    open_it: Annotated[
        bool, typer.Option("--open", help="Open it in this machine's web browser.")
    ] = False,
) -> None:
    """Print the URL of the console (calls, apps, figures; served by the job API at
    /ui/, behind its token). Example: rayfn ui --open"""
    import webbrowser

    import httpx

    from rayfn._web_hosting import base_url

    url = f"{base_url()}/ui/"
    try:
        httpx.get(f"{base_url()}/healthz", timeout=5).raise_for_status()
    except httpx.HTTPError:
        raise InvalidError(
            f"The job API does not answer at {base_url()}: start it with `rayfn http start`."
        ) from None
    out.print(url, highlight=False)
    if open_it:
        webbrowser.open(url)
