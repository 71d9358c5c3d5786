"""What the console (``/ui`` on the job API) shows beyond calls' status records: the
deployed apps with their functions' options, the registry's figures, and what a call
printed. Public so the job API (``rayfn.serve``) reads them as any client would."""

from __future__ import annotations

from typing import Any

from rayfn import _connection
from rayfn._call_logs import AttemptLog, call_logs
from rayfn.runtime.records import AppInfo, FunctionInfo, FunctionOptions

__all__ = ["AttemptLog", "apps", "call_logs", "figures"]


def apps() -> list[dict[str, Any]]:
    """Deployed apps (not ephemeral runs), each with its functions and their options:
    secret names, never their values (those stay in the GCS)."""
    control = _connection.control()
    found = []
    for app in control.list_apps().result():
        if app.ephemeral:
            continue
        functions = control.describe_app(app.name).result()
        if isinstance(functions, list):
            found.append(app_record(app, functions))
    return found


def figures(window: float = 3600.0) -> dict[str, Any]:
    """Per function: calls by status, queue depth, running now, p50/p95 of run time
    and queue wait over ``window`` seconds; calls ended per minute; run-time
    histograms (``rayfn.runtime.figures``)."""
    found: dict[str, Any] = _connection.registry().figures(window).result()
    return found


def app_record(app: AppInfo, functions: list[FunctionInfo]) -> dict[str, Any]:
    return {
        "name": app.name,
        "version": app.version,
        "deployed_at": app.deployed_at,
        "source": app.source,
        "functions": [
            {"name": f.name, "signature": f.signature, "options": _options(f.options)}
            for f in functions
            if "[" not in f.name  # with_options variants: their base function stands
        ],
    }


def _options(options: FunctionOptions) -> dict[str, Any]:
    gpu = options.gpu
    return {
        "cpu": options.cpu,
        "memory_mib": options.memory_mib,
        "gpu": None if gpu is None else f"{'|'.join(gpu.types) or 'any'}:{gpu.count}",
        "timeout": options.timeout,
        "retries": options.retries.max_retries,
        "max_containers": options.max_containers,
        "result_ttl": options.result_ttl,
        "secrets": list(options.secrets),
        "webhook": None if options.webhook is None else options.webhook.url,
        "class": None if options.container is None else options.container.class_name,
        "generator": options.generator,
    }
