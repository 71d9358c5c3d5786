"""When scheduled functions fire: a fixed period, or a cron expression in a time zone.
Pure; the control actor asks its ``Timetable`` on each tick which functions are due.

Cron expressions are read and stepped through by ``cronsim`` (the evaluator
healthchecks.io runs), with Debian cron's rules: the day-of-month and weekday fields
match either one when both are restricted, and in a zone with daylight saving time a
job at a fixed local time runs once a day: at the first moment after a skipped time
(spring), and only the first time an hour repeats (autumn).
"""

from __future__ import annotations

import calendar
import math
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

_FIELDS = "minute hour day month weekday"
# The epoch in UTC: where parse_cron checks that an expression can fire at all.
_EPOCH = datetime.fromtimestamp(0, ZoneInfo("UTC"))

Key = TypeVar("Key", bound=Hashable)


def parse_cron(expression: str) -> tuple[frozenset[int | tuple[int, int]], ...]:
    """The allowed values of each of the five fields (minute, hour, day of month,
    month, weekday with 0 for Sunday), as cronsim reads them. Its extensions keep
    cronsim's markers: ``L`` and ``LW`` days as negative numbers, ``5L`` (last Friday)
    and ``5#2`` (second Friday) weekdays as pairs.

    >>> sorted(parse_cron("*/30 9-17 * * 1-5")[0])
    [0, 30]

    Raises:
        ValueError: not five fields, a field cronsim refuses, or a day no month has;
            the message names the field.
    """
    parts = expression.split() if isinstance(expression, str) else []
    if len(parts) != 5:
        raise ValueError(
            f"A cron expression has five fields ({_FIELDS}), got {expression!r}; "
            "for example '*/5 * * * *' (every five minutes)."
        )
    try:
        sim = CronSim(expression, _EPOCH)
    except CronSimError as exc:
        raise ValueError(
            f"{exc} in the cron expression {expression!r} (fields: {_FIELDS})."
        ) from None
    weekdays = {0 if day == 7 else day for day in sim.weekdays}  # both say Sunday
    fields: tuple[set[int | tuple[int, int]], ...] = (
        set(sim.minutes),
        set(sim.hours),
        set(sim.days),
        set(sim.months),
        weekdays,
    )
    return tuple(frozenset(values) for values in fields)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, such as ``"Europe/Berlin"``.

    Raises:
        ValueError: no such zone; says what a name looks like.
    """
    try:
        return ZoneInfo(name)
    except (ValueError, TypeError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"Unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin', "
            "'America/New_York' or 'UTC'."
        ) from None


@dataclass(frozen=True)
class Schedule:
    """Either every ``period_s`` seconds (first one period after deploy), or at the
    minutes a cron expression allows, read in ``timezone``."""

    period_s: float | None = None
    cron: str | None = None
    timezone: str = "UTC"  # an IANA name; only a cron expression reads it

    def __post_init__(self) -> None:
        if (self.period_s is None) == (self.cron is None):
            raise ValueError("A schedule is a period or a cron expression, not both.")
        if self.period_s is not None and not self.period_s > 0:
            raise ValueError(f"A period must be above 0 seconds, got {self.period_s!r}.")
        zone(self.timezone)
        if self.cron is not None:
            parse_cron(self.cron)
            self.next_after(time.time())  # e.g. "0 0 * 2 1#5" may not fire for decades

    def next_after(self, t: float) -> float:
        """The first firing time after ``t`` (seconds since the epoch)."""
        if self.period_s is not None:
            return t + self.period_s
        if self.cron is None:  # __post_init__ allows no such schedule
            raise ValueError("A schedule is a period or a cron expression.")
        # cronsim steps a fixed-time job through local wall-clock time; in the hour
        # autumn repeats, its first answer can lie before ``t``: skip past it.
        try:
            for fires in CronSim(self.cron, datetime.fromtimestamp(t, zone(self.timezone))):
                if fires.timestamp() > t:
                    return fires.timestamp()
        except StopIteration:  # cronsim looks 50 years ahead
            pass
        raise ValueError(f"The cron expression {self.cron!r} never fires after {t}.")


class Timetable(Generic[Key]):
    """The next firing time of each scheduled function.

    A firing time is worked out when a schedule first shows up and again each time it
    fires, never on a tick when nothing is due: a tick that fires nothing costs one
    comparison per schedule, however far ahead a cron expression looks.
    """

    def __init__(self) -> None:
        self._next: dict[Key, float] = {}

    def due(self, scheduled: Mapping[Key, tuple[Schedule, float]], now: float) -> list[Key]:
        """Which of ``scheduled`` (each with its schedule and when it was deployed)
        fire at ``now``; their next firing times move past ``now``. Keys that are no
        longer scheduled (their app stopped or was redeployed) are forgotten."""
        fire = []
        for key, (schedule, deployed_at) in scheduled.items():
            at = self._next.get(key)
            if at is None:
                at = self._next[key] = _next_or_never(schedule, deployed_at)
            if now >= at:
                self._next[key] = _next_or_never(schedule, now)
                fire.append(key)
        if len(self._next) > len(scheduled):
            for key in self._next.keys() - scheduled.keys():
                del self._next[key]
        return fire

    def next_firing(self, key: Key) -> float | None:
        """When ``key`` fires next, once a tick has seen it."""
        return self._next.get(key)


def _next_or_never(schedule: Schedule, t: float) -> float:
    # Checked at decoration, but a deployment read back from the GCS may be older than
    # a check: a schedule that cannot fire must not fail every tick of the others.
    try:
        return schedule.next_after(t)
    except ValueError:
        return math.inf


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Seconds since the epoch of a UTC time (for tests and examples)."""
    return float(calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0)))
