"""``rayfn cluster ...`` and ``rayfn dashboard``: the local background cluster, and
cloud clusters through Ray's launcher."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Annotated

import typer

from rayfn import _local_cluster
from rayfn.cli._common import LauncherConfig, Yes, dashboard_address, out, when
from rayfn.config import settings
from rayfn.exception import InvalidError
from rayfn.runtime import _ray_compat as ray_compat
from rayfn.runtime.resources import parse_gpu

cluster_cli = typer.Typer(
    no_args_is_help=True, help="The local background Ray cluster. Example: rayfn cluster status"
)


@cluster_cli.command("start")
def cluster_start(
    num_cpus: Annotated[int | None, typer.Option(help="CPUs to offer (default: all).")] = None,
    num_gpus: Annotated[
        int | None,
        typer.Option(
            help="GPUs to offer (default: those Ray detects); more than the machine has "
            "declares fake ones, for trying gpu= functions on a laptop."
        ),
    ] = None,
    gpu_type: Annotated[
        str | None,
        typer.Option(help='Accelerator type the GPUs are declared as, e.g. A100 (for gpu="A100").'),
    ] = None,
    port: Annotated[int | None, typer.Option(help="GCS port (default: 6379 if free).")] = None,
    dashboard: Annotated[bool, typer.Option(help="Run the Ray dashboard.")] = True,
) -> None:
    """Start a local Ray cluster in the background, if none is running.
    Example: rayfn cluster start --num-cpus 2 --num-gpus 1 --gpu-type A100"""
    home = settings().home
    record = _local_cluster.read_record(home)
    if record is not None:
        out.print(f"A rayfn cluster is already running at {record.address}.", highlight=False)
        return
    started = time.monotonic()
    resources = None
    if gpu_type is not None:
        if not num_gpus:
            raise InvalidError("--gpu-type needs --num-gpus.")
        try:
            request = parse_gpu(gpu_type)
        except ValueError as exc:
            raise InvalidError(str(exc)) from None
        if len(request.types) != 1 or request.count != 1:
            raise InvalidError(f"--gpu-type takes one GPU type such as A100, got {gpu_type!r}.")
        resources = {f"accelerator_type:{request.types[0]}": float(num_gpus)}
    record = _local_cluster.start(
        home,
        port=port,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        resources=resources,
        include_dashboard=dashboard,
    )
    out.print(
        f"[green]✓[/green] Started a local Ray cluster at {record.address} in "
        f"{time.monotonic() - started:.1f} s (dashboard: {record.dashboard_url or 'off'}). "
        "Stop it with `rayfn cluster stop`.",
        highlight=False,
    )


@cluster_cli.command("stop")
def cluster_stop() -> None:
    """Stop the local cluster rayfn started (only that one). Example: rayfn cluster stop"""
    record = _local_cluster.stop(settings().home)
    if record is None:
        out.print("No rayfn cluster is running.")
    else:
        out.print(f"Stopped the Ray cluster at {record.address}.", highlight=False)


@cluster_cli.command("status")
def cluster_status() -> None:
    """Say whether the local cluster runs, and where. Example: rayfn cluster status"""
    record = _local_cluster.read_record(settings().home)
    if record is None:
        out.print("No rayfn cluster is running (start one with `rayfn cluster start`).")
        raise typer.Exit(1)
    out.print(
        f"Running at {record.address} (pid {record.pid}, since {when(record.started_at)}); "
        f"dashboard: {record.dashboard_url or 'off'}; token: {record.token_file}; "
        f"log: {record.log_file}",
        highlight=False,
    )


@cluster_cli.command("up")
def cluster_up(config: LauncherConfig = Path("cluster.yaml"), yes: Yes = False) -> None:
    """Create or update a cloud cluster from a launcher config (`ray up`), checked with
    Ray's own validation first. Example: rayfn cluster up cluster.yaml -y"""
    _run_ray("up", _checked_launcher_config(config), yes)


@cluster_cli.command("down")
def cluster_down(config: LauncherConfig = Path("cluster.yaml"), yes: Yes = False) -> None:
    """Tear down the cloud cluster of a launcher config (`ray down`).
    Example: rayfn cluster down cluster.yaml -y"""
    _run_ray("down", _checked_launcher_config(config), yes)


def _checked_launcher_config(config: Path) -> Path:
    import yaml

    if not config.is_file():
        raise InvalidError(f"No cluster config at {config} (see cluster.yaml in rayfn's repo).")
    try:
        ray_compat.validate_launcher_config(yaml.safe_load(config.read_text()))
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidError(f"{config} is not a valid Ray cluster config: {first_line}") from None
    return config


def _run_ray(verb: str, config: Path, yes: bool) -> None:
    command = [*_local_cluster._ray_command(), verb, str(config), *(["-y"] if yes else [])]
    raise typer.Exit(subprocess.call(command))


def dashboard() -> None:
    """Print the Ray dashboard's URL: rayfn's tasks show there as app.function, its
    actors as rayfn:registry:0 and rayfn:control. Example: rayfn dashboard"""
    record = _local_cluster.read_record(settings().home)
    if record is not None and os.environ.get("RAY_ADDRESS") is None:
        if record.dashboard_url is None:
            raise InvalidError("The local cluster runs without a dashboard (--no-dashboard).")
        out.print(record.dashboard_url, highlight=False)
        return
    out.print(dashboard_address(), highlight=False)
