"""``rayfn.Period`` and ``rayfn.Cron``: when a deployed function runs by itself."""

from __future__ import annotations

from rayfn.exception import InvalidError
from rayfn.runtime.schedules import Schedule


class Period:
    """Run every so often; the first run is one period after the deploy.

    Example:
        >>> @app.function(schedule=rayfn.Period(minutes=5))
    """

    def __init__(
        self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0
    ) -> None:
        total = days * 86400 + hours * 3600 + minutes * 60 + seconds
        if not total > 0:
            raise InvalidError("A Period must be longer than 0 seconds, e.g. Period(minutes=5).")
        self.schedule = Schedule(period_s=float(total))

    def __repr__(self) -> str:
        return f"Period(seconds={self.schedule.period_s:g})"


class Cron:
    """Run at the minutes a cron expression allows, read in ``timezone`` (UTC unless
    given; any IANA name). In a zone with daylight saving time, a job at a fixed local
    time runs once a day: at 03:00 when spring skips 02:30, and only the first time
    autumn repeats it.

    Example:
        >>> @app.function(schedule=rayfn.Cron("*/5 * * * *"))
        >>> @app.function(schedule=rayfn.Cron("0 9 * * 1", timezone="Europe/Berlin"))
    """

    def __init__(self, cron_string: str, timezone: str = "UTC") -> None:
        try:
            self.schedule = Schedule(cron=cron_string, timezone=timezone)
        except ValueError as exc:
            raise InvalidError(str(exc)) from None

    def __repr__(self) -> str:
        if self.schedule.timezone == "UTC":
            return f"Cron({self.schedule.cron!r})"
        return f"Cron({self.schedule.cron!r}, timezone={self.schedule.timezone!r})"
