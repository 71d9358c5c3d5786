import pickle

import pytest

import rayfn
from rayfn.exception import InvalidError
from rayfn.runtime.schedules import Schedule, Timetable, parse_cron, utc


def test_period_fires_one_period_later() -> None:
    assert Schedule(period_s=90).next_after(1000.0) == 1090.0
    assert rayfn.Period(minutes=1, seconds=30).schedule == Schedule(period_s=90.0)


@pytest.mark.parametrize(
    ("expression", "after", "fires"),
    [
        ("*/5 * * * *", utc(2026, 11, 30, 10, 2), utc(2026, 11, 30, 10, 5)),
        ("*/5 * * * *", utc(2026, 11, 30, 10, 5), utc(2026, 11, 30, 10, 10)),
        ("0 9 * * 1-5", utc(2026, 11, 27, 12, 0), utc(2026, 11, 30, 9, 0)),  # Fri -> Mon
        ("30 23 31 12 *", utc(2026, 1, 1), utc(2026, 12, 31, 23, 30)),
        ("0 0 1 * 0", utc(2026, 11, 2), utc(2026, 11, 8)),  # day 1 OR a Sunday
        ("15,45 * * * *", utc(2026, 11, 30, 10, 20), utc(2026, 11, 30, 10, 45)),
        ("0 0 * * 7", utc(2026, 11, 30), utc(2026, 12, 6)),  # 7 is Sunday too
    ],
)
def test_cron_next_firing(expression: str, after: float, fires: float) -> None:
    assert Schedule(cron=expression).next_after(after) == fires


@pytest.mark.parametrize(
    "bad", ["", "* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *"]
)
def test_bad_cron_is_refused_saying_why(bad: str) -> None:
    with pytest.raises(InvalidError, match="cron"):
        rayfn.Cron(bad)


@pytest.mark.parametrize(
    ("expression", "after", "fires"),
    [
        ("0 0 1 1 *", utc(2026, 1, 1, 0, 1), utc(2027, 1, 1)),  # yearly, just missed
        ("0 12 29 2 *", utc(2026, 3, 1), utc(2028, 2, 29, 12)),  # leap days only
        ("0 0 L 2 *", utc(2027, 1, 1), utc(2027, 2, 28)),  # cronsim's "last day"
    ],
)
def test_yearly_and_rare_crons_find_their_next_firing(
    expression: str, after: float, fires: float
) -> None:
    assert Schedule(cron=expression).next_after(after) == fires


@pytest.mark.parametrize(
    ("zone", "after", "fires"),
    [
        ("Europe/Berlin", utc(2026, 1, 1), utc(2026, 1, 5, 8)),  # CET: UTC+1
        ("Europe/Berlin", utc(2026, 7, 1), utc(2026, 7, 6, 7)),  # CEST: UTC+2
        ("America/New_York", utc(2026, 1, 1), utc(2026, 1, 5, 14)),  # EST: UTC-5
        ("UTC", utc(2026, 7, 1), utc(2026, 7, 6, 9)),
    ],
)
def test_cron_reads_its_fields_in_its_time_zone(zone: str, after: float, fires: float) -> None:
    cron = rayfn.Cron("0 9 * * 1", timezone=zone)  # Mondays at 09:00 local time
    assert cron.schedule.next_after(after) == fires


def test_a_fixed_local_time_runs_once_on_the_days_the_clocks_change() -> None:
    nightly = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 never happens: it runs at 03:00.
    assert nightly.next_after(utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1, 0)
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice: it runs the
    # first time only, also when asked from inside the repeated hour.
    first = nightly.next_after(utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert nightly.next_after(first) == utc(2026, 10, 26, 1, 30)  # 02:30 CET, next day
    assert nightly.next_after(utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 26, 1, 30)


def test_an_every_few_minutes_cron_keeps_its_pace_through_the_repeated_hour() -> None:
    every_half_hour = Schedule(cron="*/30 * * * *", timezone="Europe/Berlin")
    t, fired = utc(2026, 10, 25, 0, 0), []
    for _ in range(4):
        t = every_half_hour.next_after(t)
        fired.append(t)
    assert fired == [utc(2026, 10, 25, 0, 30) + 1800 * n for n in range(4)]


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("0 0 30 2 *", "day-of-month"),  # no February has a 30th
        ("0 0 * * * *", "five fields"),  # cronsim's seconds field: not Modal's syntax
        ("0 0 * 13 *", "month"),
    ],
)
def test_a_cron_that_cannot_fire_is_refused_at_decoration(bad: str, why: str) -> None:
    with pytest.raises(InvalidError, match=why):
        rayfn.Cron(bad)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe", "", "../etc/passwd", 5])
def test_an_unknown_time_zone_is_refused_naming_a_good_one(zone: object) -> None:
    with pytest.raises(InvalidError, match=r"Unknown time zone .* such as 'Europe/Berlin'"):
        rayfn.Cron("0 9 * * 1", timezone=zone)  # type: ignore[arg-type]


def test_cron_repr_shows_its_zone_when_not_utc() -> None:
    assert repr(rayfn.Cron("0 9 * * 1")) == "Cron('0 9 * * 1')"
    assert (
        repr(rayfn.Cron("0 9 * * 1", "Europe/Berlin"))
        == "Cron('0 9 * * 1', timezone='Europe/Berlin')"
    )


def test_a_schedule_saved_before_time_zones_reads_as_utc() -> None:
    saved = Schedule(cron="0 9 * * 1")
    old = object.__new__(Schedule)  # as pickled by a release without the field
    old.__dict__.update({k: v for k, v in vars(saved).items() if k != "timezone"})
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.timezone == "UTC"
    assert loaded.next_after(utc(2026, 7, 1)) == utc(2026, 7, 6, 9)


def test_timetable_fires_when_due_and_moves_past_now() -> None:
    table: Timetable[str] = Timetable()
    every_minute = (Schedule(period_s=60.0), 1000.0)
    assert table.due({"tick": every_minute}, 1059.0) == []
    assert table.next_firing("tick") == 1060.0
    assert table.due({"tick": every_minute}, 1060.5) == ["tick"]
    assert table.next_firing("tick") == 1120.5
    assert table.due({"tick": every_minute}, 1061.0) == []


def test_timetable_forgets_schedules_that_are_gone() -> None:
    table: Timetable[str] = Timetable()
    table.due({"old": (Schedule(period_s=60.0), 0.0)}, 1.0)
    table.due({}, 2.0)
    assert table.next_firing("old") is None


def test_a_yearly_cron_costs_an_idle_tick_no_cron_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control actor ticks every 0.2 s; a yearly cron must not be searched on each."""
    searches = 0
    next_after = Schedule.next_after

    def counted(schedule: Schedule, t: float) -> float:
        nonlocal searches
        searches += 1
        return next_after(schedule, t)

    table: Timetable[tuple[str, str, int]] = Timetable()
    deployed_at = utc(2026, 1, 1, 0, 1)
    scheduled = {("app", "yearly", 1): (Schedule(cron="0 0 1 1 *"), deployed_at)}
    monkeypatch.setattr(Schedule, "next_after", counted)
    for tick in range(1000):  # what a tick costs: benchmarks/bench.py, schedule_tick
        assert table.due(scheduled, deployed_at + 0.2 * tick) == []
    assert searches == 1  # when it first showed up; never again while not due
    assert table.due(scheduled, utc(2027, 1, 1)) == [("app", "yearly", 1)]
    assert searches == 2 and table.next_firing(("app", "yearly", 1)) == utc(2028, 1, 1)


def test_cron_fields() -> None:
    minutes, hours, days, months, weekdays = parse_cron("0,30 9-11 */10 1 *")
    assert minutes == {0, 30} and hours == {9, 10, 11}
    assert days == {1, 11, 21, 31} and months == {1} and weekdays == set(range(7))


def test_period_must_be_positive() -> None:
    with pytest.raises(InvalidError, match="longer than 0"):
        rayfn.Period()


def test_schedule_and_secrets_options_are_checked_at_decoration() -> None:
    app = rayfn.App("options-check")
    with pytest.raises(InvalidError, match="schedule must be"):
        app.function(schedule="*/5 * * * *")  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match=r"secrets must be a list of rayfn\.Secret"):
        app.function(secrets=rayfn.Secret.from_name("x"))  # type: ignore[arg-type]


def test_secret_values_never_show_in_reprs_or_errors() -> None:
    secret = rayfn.Secret.from_dict({"API_KEY": "hunter2"})
    assert "hunter2" not in repr(secret)
    assert secret.name.startswith("inline-")
    with pytest.raises(InvalidError) as raised:
        rayfn.Secret.from_dict({"API_KEY": 12345})  # type: ignore[dict-item]
    assert "12345" not in str(raised.value)
    with pytest.raises(InvalidError, match="environment variable names"):
        rayfn.Secret.from_dict({"not a name": "x"})
    app = rayfn.App("secret-options")

    @app.function(secrets=[secret])
    def f() -> None: ...

    assert "hunter2" not in repr(f.options)
