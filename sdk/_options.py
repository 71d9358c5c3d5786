"""Validation of ``@app.function(...)`` options, at decoration time, with the fix in
the message. Pure: no Ray."""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import math
from collections.abc import Sequence
from typing import Any, TypedDict

from typing_extensions import Unpack

from rayfn._cls import BATCH_MARK
from rayfn._image import Image
from rayfn._retries import Retries, retry_policy
from rayfn._schedules import Cron, Period
from rayfn._secret import Secret
from rayfn._volume import Volume, mounts_of
from rayfn.exception import InvalidError, NotSupportedError
from rayfn.runtime.constants import DEFAULT_TIMEOUT_S, MAX_RESULT_TTL_S, MAX_TIMEOUT_S
from rayfn.runtime.protocol import CallOptions
from rayfn.runtime.records import FunctionOptions
from rayfn.runtime.resources import parse_gpu
from rayfn.runtime.webhooks import WebhookTarget
from rayfn.webhooks import Webhook


class DecoratorOptions(TypedDict, total=False):
    """What each call of a function asks for: the options ``@app.function`` and
    ``@app.cls`` share (documented on ``App.function``)."""

    cpu: float | None
    memory: int | None
    gpu: str | list[str] | None
    retries: int | Retries | None
    timeout: float | None
    startup_timeout: float | None
    max_containers: int | None
    result_ttl: float | None
    secrets: Sequence[Secret]
    image: Image | None
    volumes: dict[str, Volume] | None
    webhook: Webhook | None


_CONTAINERS_ARE_CLASSES = (
    "is an option of @app.cls on rayfn: a function's calls are Ray tasks, each started "
    "when it runs (Ray keeps worker processes warm). Use @app.cls for containers that stay"
)
_NO_VOLUMES = "is not supported by rayfn: use volumes={path: rayfn.Volume.from_name(...)}"
# Modal's options of @app.function and @app.cls that rayfn does not have, with what to
# use instead (options of its own it does not know get the list of those it does).
MODAL_ONLY = {
    "network_file_systems": _NO_VOLUMES,
    "cloud": "is not supported by rayfn: Ray places each call; ask for cpu=, gpu=, memory=",
    "region": "is not supported by rayfn: Ray places each call; ask for cpu=, gpu=, memory=",
    "proxy": "is not supported by rayfn: calls reach the network from their node",
    "mounts": "is not supported by rayfn: use image=rayfn.Image...add_local_dir(...) "
    "or .add_local_python_source(...)",
    "enable_memory_snapshot": "is not supported by rayfn: do slow setup in an @app.cls "
    "@rayfn.enter() method, which runs once per container",
    "ephemeral_disk": "is not supported by rayfn: calls use their node's disk",
    "block_network": "is not supported by rayfn: calls reach the network from their node",
    "i6pn": "is not supported by rayfn: calls reach each other through Ray",
    "restrict_modal_access": "is not supported by rayfn",
    "nonpreemptible": "is not supported by rayfn: choose the node types in cluster.yaml",
    "single_use_containers": "is not supported by rayfn: a plain function's calls are "
    "Ray tasks already, each in a worker process Ray may reuse",
}
MODAL_ONLY_ON_FUNCTIONS = dict.fromkeys(
    (
        "min_containers",
        "keep_warm",
        "buffer_containers",
        "scaledown_window",
        "container_idle_timeout",
    ),
    _CONTAINERS_ARE_CLASSES,
)


def refuse_modal_only(names: Sequence[str], decorator: str) -> None:
    """Raise for the first of ``names`` that is a Modal option rayfn does not have.

    Raises:
        NotSupportedError: it names the option and what to use instead.
    """
    table = {**MODAL_ONLY, **(MODAL_ONLY_ON_FUNCTIONS if decorator == "function" else {})}
    for name in names:
        if name in table:
            raise NotSupportedError(f"@app.{decorator}({name}=...) {table[name]}.")


# with_options(...): each option it takes, and the FunctionOptions field it sets.
_VARIANT_FIELDS = {
    "cpu": "cpu",
    "memory": "memory_mib",
    "gpu": "gpu",
    "retries": "retries",
    "timeout": "timeout",
    "startup_timeout": "startup_timeout",
    "max_containers": "max_containers",
    "result_ttl": "result_ttl",
}


MAX_IDEMPOTENCY_KEY = 256
# How far ahead a call may be scheduled (delay=, at=) or given to start (expires_in=).
MAX_SCHEDULE_S = 30 * 24 * 3600.0
# Priorities fit a 32-bit integer (JSON clients, other languages).
PRIORITY_RANGE = (-(2**31), 2**31 - 1)
CALL_OPTIONS = ("idempotency_key", "priority", "delay", "at", "expires_in", "webhook")


def idempotency_key_of(key: Any) -> str | None:
    """A checked idempotency key (None: none given).

    Raises:
        InvalidError: not a string of 1 to 256 characters.
    """
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        shown = repr(key) if not isinstance(key, str) else f"{len(key)} characters"
        raise InvalidError(
            f"An idempotency key is a string of 1 to {MAX_IDEMPOTENCY_KEY} characters, got {shown}."
        )
    return key


def call_options(
    options: dict[str, Any], earlier: CallOptions | None, now: float
) -> CallOptions | None:
    """The per-call options among ``with_options``' keywords (taken out of
    ``options``), over those set ``earlier``; None when none is set. ``now`` is the
    client's time, to check an ``at`` against.

    ``priority``: an int, higher first. ``delay``: seconds (or a ``timedelta``) from
    acceptance before the call may start. ``at``: a ``datetime`` (naive: local time)
    or a Unix time before which it may not start. ``expires_in``: seconds (or a
    ``timedelta``) from acceptance after which it never starts.

    Raises:
        InvalidError: an option of the wrong type or out of range; ``delay`` with
            ``at``; an ``expires_in`` that ends before the call may start.
    """
    given = {name: options.pop(name) for name in CALL_OPTIONS if name in options}
    if not given:
        return earlier
    if given.get("delay") is not None and given.get("at") is not None:
        raise InvalidError("Give a call delay= or at=, not both.")
    merged = (earlier or CallOptions())._asdict()
    if "idempotency_key" in given:
        merged["idempotency_key"] = idempotency_key_of(given["idempotency_key"])
    if "priority" in given:
        merged["priority"] = _priority(given["priority"])
    if "delay" in given:
        merged["delay"], merged["at"] = _span("delay", given["delay"], zero_ok=True), None
    if "at" in given:
        merged["at"], merged["delay"] = _moment(given["at"], now), None
    if "webhook" in given:
        merged["webhook"] = _call_webhook(given["webhook"])
    if "expires_in" in given:
        merged["expires_in"] = _span("expires_in", given["expires_in"], zero_ok=False)
    chosen = CallOptions(**merged)
    starts_after = chosen.delay or (chosen.at - now if chosen.at is not None else 0.0)
    if chosen.expires_in is not None and chosen.expires_in <= starts_after:
        raise InvalidError(
            f"expires_in={chosen.expires_in:g} s ends before the call may start "
            f"({starts_after:g} s from now): it would never run."
        )
    return None if chosen == CallOptions() else chosen


def _call_webhook(webhook: Any) -> WebhookTarget | None:
    if webhook is None:
        return None
    if not isinstance(webhook, Webhook):
        raise InvalidError(_WEBHOOK_TYPE.format(webhook))
    if webhook.secret.inline_values is not None:
        raise InvalidError(
            "A call's own webhook signs with a named secret (Secret.from_name): "
            "Secret.from_dict values are uploaded with a deploy, on a function's webhook."
        )
    return webhook.target


def _priority(value: Any) -> int:
    low, high = PRIORITY_RANGE
    if type(value) is not int:  # not a bool, not a float that looks whole
        raise InvalidError(f"priority is an int (higher runs first), got {value!r}.")
    if not low <= value <= high:
        raise InvalidError(f"priority must be between {low} and {high}, got {value}.")
    return value


def _span(name: str, value: Any, *, zero_ok: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidError(f"{name} is a number of seconds or a timedelta, got {value!r}.")
    if value < 0 or (value == 0 and not zero_ok):
        least = "0 or more" if zero_ok else "more than 0"
        raise InvalidError(f"{name} must be {least} seconds, got {value:g}.")
    if value > MAX_SCHEDULE_S:
        raise InvalidError(f"{name} may be at most {MAX_SCHEDULE_S:g} s (30 days), got {value:g}.")
    return float(value)


def _moment(value: Any, now: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        value = value.timestamp()  # a naive datetime is local time, as Python reads it
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidError(f"at is a datetime or a Unix time in seconds, got {value!r}.")
    if value - now > MAX_SCHEDULE_S:
        raise InvalidError(f"at may be at most 30 days ahead, got {value - now:g} s ahead.")
    return float(value)


def option_changes(options: dict[str, Any], *, default_result_ttl: float) -> dict[str, Any]:
    """What ``with_options(**options)`` changes, as FunctionOptions fields.

    Raises:
        InvalidError: an option out of range, or one it does not take.
        NotSupportedError: an option rayfn fixes at deploy (``image``, ``secrets``,
            ``volumes``) or a Modal option rayfn lacks.
    """
    options = dict(options)
    if "concurrency_limit" in options:
        options["max_containers"] = options.pop("concurrency_limit")
    for fixed in ("image", "secrets", "volumes"):
        if fixed in options:
            raise NotSupportedError(
                f"with_options({fixed}=...) is not supported by rayfn: {fixed} are set "
                "when the app is deployed; deploy a second function with them."
            )
    unknown = sorted(set(options) - set(_VARIANT_FIELDS))
    refuse_modal_only(unknown, "function")
    if unknown:
        raise InvalidError(
            f"with_options() has no option {unknown[0]!r} (its options: "
            f"{', '.join(_VARIANT_FIELDS)}, concurrency_limit)."
        )
    checked = function_options(default_result_ttl=default_result_ttl, **options)
    return {_VARIANT_FIELDS[k]: getattr(checked, _VARIANT_FIELDS[k]) for k in options}


def batching(options: FunctionOptions, fn: Any) -> FunctionOptions:
    """``options`` of ``fn``, ``@batched`` or not.

    Raises:
        InvalidError: a batched generator, or a batched ``@concurrent`` function.
    """
    batch = getattr(fn, BATCH_MARK, None)
    if batch is None:
        return options
    if options.generator:
        raise InvalidError("A @batched function cannot be a generator: return a list.")
    if options.concurrent_inputs > 1:
        raise InvalidError("Give @batched or @concurrent, not both: a batch is the inputs at once.")
    max_batch_size, wait_ms = batch
    return dataclasses.replace(options, max_batch_size=max_batch_size, batch_wait_ms=wait_ms)


def streaming(options: FunctionOptions, fn: Any, is_generator: bool | None) -> FunctionOptions:
    """``options`` of ``fn``, a generator function (or marked ``is_generator=True``)
    or not.

    Raises:
        NotSupportedError: retries on a generator function: what it yielded was
            handed out already and cannot be taken back.
    """
    if is_generator is None:
        is_generator = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
    if not is_generator:
        return options
    if options.retries.max_retries:
        raise NotSupportedError(
            f"retries= on generator function {getattr(fn, '__qualname__', fn)} is not "
            "supported by rayfn: what it yielded was handed out already. Retry in the "
            "caller, or make it a plain function returning a list."
        )
    return dataclasses.replace(options, generator=True)


def function_options(
    *,
    default_result_ttl: float,
    schedule: Period | Cron | None = None,
    decorator: str = "function",
    **given: Unpack[DecoratorOptions],
) -> FunctionOptions:
    """Check the options a user gave ``@app.<decorator>`` and return them as a record.

    Raises:
        InvalidError: an option is unknown, or out of range; the message says the
            allowed range.
    """
    unknown = sorted(set(given) - set(DecoratorOptions.__annotations__))
    refuse_modal_only(unknown, decorator)
    if unknown:
        known = ", ".join(DecoratorOptions.__annotations__)
        raise InvalidError(
            f"@app.{decorator}() has no option {unknown[0]!r} (its options: {known})."
        )
    cpu, memory, gpu = given.get("cpu"), given.get("memory"), given.get("gpu")
    result_ttl, timeout = given.get("result_ttl"), given.get("timeout")
    startup_timeout, max_containers = given.get("startup_timeout"), given.get("max_containers")
    retries, secrets = given.get("retries"), given.get("secrets", ())
    if cpu is not None and (not _is_number(cpu) or not 0 <= cpu <= 1024):
        raise InvalidError(f"cpu must be a number of cores between 0 and 1024, got {cpu!r}.")
    if memory is not None and (
        isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0
    ):
        raise InvalidError(f"memory must be a positive whole number of MiB, got {memory!r}.")
    result_ttl = _seconds(
        "result_ttl", result_ttl, default_result_ttl, MAX_RESULT_TTL_S, "one week"
    )
    timeout = _seconds("timeout", timeout, DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, "one day")
    if startup_timeout is not None:
        startup_timeout = _seconds(
            "startup_timeout", startup_timeout, None, MAX_TIMEOUT_S, "one day"
        )
    if max_containers is not None and (
        isinstance(max_containers, bool)
        or not isinstance(max_containers, int)
        or max_containers < 1
    ):
        raise InvalidError(f"max_containers must be a whole number >= 1, got {max_containers!r}.")
    gpu_request = None
    if gpu is not None:
        try:
            gpu_request = parse_gpu(gpu)
        except ValueError as exc:
            raise InvalidError(str(exc)) from None
    if isinstance(secrets, Secret | str) or not all(isinstance(x, Secret) for x in secrets):
        raise InvalidError(
            "secrets must be a list of rayfn.Secret, e.g. [rayfn.Secret.from_name('openai')]."
        )
    webhook = given.get("webhook")
    if webhook is not None and not isinstance(webhook, Webhook):
        raise InvalidError(_WEBHOOK_TYPE.format(webhook))
    image = given.get("image")
    if image is not None and not isinstance(image, Image):
        raise InvalidError(f"image must be a rayfn.Image, got {type(image).__name__}.")
    if schedule is not None and not isinstance(schedule, Period | Cron):
        raise InvalidError(
            f"schedule must be rayfn.Period(...) or rayfn.Cron('...'), got {schedule!r}."
        )
    return FunctionOptions(
        secrets=tuple(dict.fromkeys(x.name for x in secrets)),
        schedule=None if schedule is None else schedule.schedule,
        cpu=None if cpu is None else float(cpu),
        memory_mib=memory,
        gpu=gpu_request,
        result_ttl=result_ttl,
        timeout=timeout,
        startup_timeout=startup_timeout,
        max_containers=max_containers,
        retries=retry_policy(retries),
        volumes=mounts_of(given.get("volumes")),
        webhook=None if webhook is None else webhook.target,
    )


_WEBHOOK_TYPE = "webhook must be rayfn.Webhook(url, secret=rayfn.Secret.from_name(...)), got {!r}."


def all_secrets(options: DecoratorOptions) -> list[Secret]:
    """The secrets a function's options name: its ``secrets`` and its webhook's."""
    webhook = options.get("webhook")
    return [*options.get("secrets", ()), *([webhook.secret] if webhook else [])]


def check_pool(min_containers: int, max_containers: int | None, scaledown_window: float) -> None:
    """Check the container pool options of ``@app.cls``.

    Raises:
        InvalidError: an option is out of range; the message says the allowed range.
    """
    if not _is_count(min_containers) or min_containers < 0:
        raise InvalidError(f"min_containers must be a whole number >= 0, got {min_containers!r}.")
    # max_containers itself is checked with the other options, after this.
    if isinstance(max_containers, int) and max_containers < min_containers:
        raise InvalidError("max_containers must be at least min_containers.")
    if not _is_number(scaledown_window) or not 0 < scaledown_window <= 24 * 3600:
        raise InvalidError(
            f"scaledown_window must be seconds above 0, at most a day; got {scaledown_window!r}."
        )


def _seconds(
    name: str, value: float | None, default: float | None, maximum: float, spelled: str
) -> float:
    """A duration option: above 0, at most ``maximum``; ``default`` when not given."""
    if value is None:
        value = default
    if isinstance(value, int | float) and _is_number(value) and 0 < value <= maximum:
        return float(value)
    raise InvalidError(
        f"{name} must be a number of seconds above 0 and at most {maximum:.0f} "
        f"({spelled}), got {value!r}."
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
