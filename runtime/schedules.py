"""When scheduled functions fire: a fixed period, or a cron expression (UTC). Pure."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

# minute, hour, day of month, month, day of week (0 = Sunday; 7 is Sunday too)
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))
_SEARCH_MINUTES = 366 * 24 * 60 * 5  # a valid expression fires within five years


def parse_cron(expression: str) -> tuple[frozenset[int], ...]:
    """The allowed values of each of the five fields.

    >>> parse_cron("*/30 9-17 * * 1-5")[0]
    frozenset({0, 30})

    Raises:
        ValueError: not five fields, or a field out of range; says which.
    """
    parts = expression.split() if isinstance(expression, str) else []
    if len(parts) != 5:
        raise ValueError(
            f"A cron expression has five fields (minute hour day month weekday), "
            f"got {expression!r}."
        )
    fields = []
    for text, (name, low, high) in zip(parts, _FIELDS, strict=True):
        values: set[int] = set()
        for item in text.split(","):
            values |= _parse_item(item, name, low, high)
        if name == "weekday" and 7 in values:
            values = (values - {7}) | {0}
        fields.append(frozenset(values))
    return tuple(fields)


def _parse_item(item: str, name: str, low: int, high: int) -> set[int]:
    base, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) < 1:
            raise ValueError(f"Bad step {item!r} in the cron {name} field.")
        step = int(step_text)
    if base == "*":
        start, end = low, high
    elif "-" in base:
        first, _, last = base.partition("-")
        if not (first.isdigit() and last.isdigit()):
            raise ValueError(f"Bad range {item!r} in the cron {name} field.")
        start, end = int(first), int(last)
    elif base.isdigit():
        start = end = int(base)
        if step_text:
            end = high
    else:
        raise ValueError(f"Bad value {item!r} in the cron {name} field.")
    if not low <= start <= end <= high:
        raise ValueError(f"{item!r} is outside {low}-{high} in the cron {name} field.")
    return set(range(start, end + 1, step))


@dataclass(frozen=True)
class Schedule:
    """Either every ``period_s`` seconds (first one period after deploy), or at the
    minutes a cron expression allows (UTC)."""

    period_s: float | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if (self.period_s is None) == (self.cron is None):
            raise ValueError("A schedule is a period or a cron expression, not both.")
        if self.period_s is not None and not self.period_s > 0:
            raise ValueError(f"A period must be above 0 seconds, got {self.period_s!r}.")
        if self.cron is not None:
            parse_cron(self.cron)

    def next_after(self, t: float) -> float:
        """The first firing time after ``t`` (seconds since the epoch)."""
        if self.period_s is not None:
            return t + self.period_s
        assert self.cron is not None
        minutes, hours, days, months, weekdays = parse_cron(self.cron)
        day_restricted = len(days) < 31
        weekday_restricted = len(weekdays) < 7
        candidate = (int(t) // 60 + 1) * 60
        for _ in range(_SEARCH_MINUTES):
            tm = time.gmtime(candidate)
            weekday = (tm.tm_wday + 1) % 7  # gmtime: Monday is 0; cron: Sunday is 0
            day_ok = tm.tm_mday in days
            weekday_ok = weekday in weekdays
            # Cron's rule: with both day fields restricted, either one matching will do.
            if day_restricted and weekday_restricted:
                date_ok = day_ok or weekday_ok
            else:
                date_ok = day_ok and weekday_ok
            if tm.tm_mon in months and date_ok and tm.tm_hour in hours and tm.tm_min in minutes:
                return float(candidate)
            candidate += 60
        raise ValueError(f"The cron expression {self.cron!r} never fires.")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Seconds since the epoch of a UTC time (for tests and examples)."""
    return float(calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0)))
