import pytest

import rayfn
from rayfn.exception import InvalidError
from rayfn.runtime.schedules import Schedule, parse_cron, utc


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
