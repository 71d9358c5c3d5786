"""The ``rayfn`` command line: one module per noun (``app``, ``call``, ``cluster``,
``secret``, ``http``), put together here.

Every user mistake (missing file, unknown app, bad id) prints one line and exits 1,
in one place (``_common.OneLineErrors``); exceptions raised by the user's own
entrypoint keep their traceback.
"""

from __future__ import annotations

import typer

from rayfn.cli import app, call, cluster, http, secret
from rayfn.cli._common import OneLineErrors

cli = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Run Modal-style functions and job queues on your Ray cluster.\n\n"
    "Example: rayfn deploy my_job_queue.py && rayfn run my_job_queue.py",
)
# In the order `rayfn --help` lists them: the top-level commands, then the nouns.
cli.command()(cluster.dashboard)
cli.command()(http.ui)
cli.command()(app.deploy)
cli.command()(app.serve)
cli.command(context_settings=app.RUN_SETTINGS)(app.run)
cli.add_typer(app.app_cli, name="app")
cli.add_typer(call.call_cli, name="call")
cli.add_typer(cluster.cluster_cli, name="cluster")
cli.add_typer(secret.secret_cli, name="secret")
cli.add_typer(http.http_cli, name="http")


def main() -> None:
    cli()


__all__ = ["cli", "main"]
