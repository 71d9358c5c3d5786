import pickle

import pytest

import rayfn
from rayfn._retries import retry_policy
from rayfn.exception import InvalidError
from rayfn.runtime.records import RemoteFailure
from rayfn.runtime.retries import RetryPolicy


def test_backoff_delays_grow_and_cap() -> None:
    policy = RetryPolicy(5, backoff_coefficient=2.0, initial_delay=0.2, max_delay=1.0)
    assert [policy.next_delay(n) for n in range(1, 6)] == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])
    assert RetryPolicy(100, backoff_coefficient=10, max_delay=3600).next_delay(100) == 3600
    with pytest.raises(ValueError):
        policy.next_delay(0)


def test_should_retry_counts_attempts_and_honours_retry_on() -> None:
    policy = RetryPolicy(2, retry_on=("builtins.ConnectionError",))
    assert policy.should_retry(1, "builtins.ConnectionError")
    assert policy.should_retry(2, "builtins.ConnectionError")
    assert not policy.should_retry(3, "builtins.ConnectionError")  # retries used up
    assert not policy.should_retry(1, "builtins.KeyError")  # not listed
    assert policy.should_retry(1, None)  # crashes and timeouts always retry
    assert not RetryPolicy().should_retry(1, None)  # no retries by default


class FlakyServiceError(ConnectionResetError):
    """A user's own exception class, two levels below OSError."""


def test_retry_on_matches_subclasses_as_except_does() -> None:
    policy = rayfn.Retries(2, retry_on=[OSError]).policy()
    connection = RemoteFailure.capture(ConnectionError("refused"))
    assert connection.type_names[:2] == ("builtins.ConnectionError", "builtins.OSError")
    assert policy.should_retry(1, connection.type_names)
    own = RemoteFailure.capture(FlakyServiceError("reset"))
    assert own.type_name == f"{__name__}.FlakyServiceError"
    assert policy.should_retry(1, own.type_names)
    assert not policy.should_retry(1, RemoteFailure.capture(KeyError("k")).type_names)
    assert not policy.should_retry(3, connection.type_names)  # retries used up
    # Listing the subclass does not retry its base, as `except ConnectionError` would not.
    narrow = rayfn.Retries(1, retry_on=[ConnectionError]).policy()
    assert not narrow.should_retry(1, RemoteFailure.capture(OSError("disk")).type_names)


def test_a_failure_carries_the_names_of_its_exception_classes() -> None:
    failure = RemoteFailure.capture(ConnectionError("refused"))
    assert failure.mro == tuple(f"{k.__module__}.{k.__qualname__}" for k in ConnectionError.__mro__)
    assert failure.type_name == failure.mro[0] == "builtins.ConnectionError"
    assert failure.summary == "ConnectionError: refused"
    # Failures rayfn decides have no exception: no class names, always retried.
    assert RemoteFailure.from_ray_error(RuntimeError("worker died")).mro == ()


def test_a_failure_journaled_before_mro_existed_still_loads_and_matches_its_own_type() -> None:
    current = RemoteFailure.capture(ConnectionError("refused"))
    old = object.__new__(RemoteFailure)  # as pickled by a release without the field
    old.__dict__.update({k: v for k, v in vars(current).items() if k != "mro"})
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.type_names == ("builtins.ConnectionError",)
    assert RetryPolicy(1, retry_on=("builtins.ConnectionError",)).should_retry(1, loaded.type_names)


def test_an_int_means_that_many_retries_one_second_apart() -> None:
    policy = retry_policy(3)
    assert policy.max_retries == 3
    assert [policy.next_delay(n) for n in (1, 2, 3)] == [1.0, 1.0, 1.0]
    assert retry_policy(None) == RetryPolicy()


def test_retries_record_exception_types_by_qualified_name() -> None:
    policy = rayfn.Retries(1, retry_on=(ConnectionError, KeyError)).policy()
    assert policy.retry_on == ("builtins.ConnectionError", "builtins.KeyError")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_retries": 101}, "max_retries must be between 0 and 100, got 101"),
        ({"max_retries": -1}, "max_retries must be between 0 and 100"),
        ({"max_retries": 1.5}, "max_retries must be a whole number"),
        ({"max_retries": 1, "max_delay": 3601}, "max_delay must be between 1 and 3600"),
        ({"max_retries": 1, "initial_delay": -1}, "initial_delay must be between 0 and 3600"),
        ({"max_retries": 1, "backoff_coefficient": 0.5}, "backoff_coefficient must be between 1"),
        ({"max_retries": 1, "retry_on": ("nope",)}, "retry_on takes exception classes"),
    ],
)
def test_out_of_range_retries_say_how_to_fix_them(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        rayfn.Retries(**kwargs)
    with pytest.raises(InvalidError, match=r"retries must be an int or rayfn\.Retries"):
        retry_policy("3")  # type: ignore[arg-type]
