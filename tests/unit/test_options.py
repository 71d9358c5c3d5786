import pytest

import rayfn
from rayfn._options import function_options
from rayfn.exception import InvalidError


def test_defaults() -> None:
    options = function_options(default_result_ttl=3600)
    assert options.cpu is None  # Ray's default for tasks; web replicas then hold no CPU
    assert options.result_ttl == 3600.0
    assert options.ray_task_options() == {"num_cpus": 1.0}


def test_memory_maps_to_bytes() -> None:
    options = function_options(memory=512, cpu=0.5, default_result_ttl=10)
    assert options.ray_task_options() == {"num_cpus": 0.5, "memory": 512 * 1024 * 1024}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu": -1}, "cpu must be a number of cores between 0 and 1024, got -1"),
        ({"cpu": "2"}, "cpu must be a number"),
        ({"memory": 0}, "memory must be a positive whole number of MiB, got 0"),
        ({"memory": 1.5}, "memory must be a positive whole number"),
        ({"result_ttl": 0}, "result_ttl must be a number of seconds above 0"),
        ({"result_ttl": 10**9}, "at most 604800"),
        ({"result_ttl": float("inf")}, "result_ttl must be"),
        ({"timeout": -1}, "timeout must be a number of seconds above 0 and at most 86400"),
        ({"timeout": 0}, "timeout must be"),
        ({"startup_timeout": 0}, "startup_timeout must be"),
        ({"max_containers": 0}, "max_containers must be a whole number >= 1, got 0"),
        ({"max_containers": True}, "max_containers must be"),
        ({"retries": 101}, "max_retries must be between 0 and 100, got 101"),
        ({"gpu": "TPU"}, "Unknown GPU type 'TPU'"),
    ],
)
def test_out_of_range_options_say_how_to_fix_them(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        function_options(default_result_ttl=3600, **kwargs)


def test_decorator_validates_at_decoration_time() -> None:
    app = rayfn.App("unit-options")
    with pytest.raises(InvalidError, match="result_ttl"):

        @app.function(result_ttl=-5)
        def f() -> None: ...

    assert app.registered_functions == {}


def test_decorator_with_and_without_parentheses() -> None:
    app = rayfn.App("unit-decorators")

    @app.function
    def bare(x: int) -> int:
        return x + 1

    @app.function(cpu=2, name="renamed")
    def with_options(x: int) -> int:
        return x * 2

    assert set(app.registered_functions) == {"bare", "renamed"}
    assert bare.local(1) == 2 and with_options.local(2) == 4
    assert with_options.options is not None and with_options.options.cpu == 2.0
    with pytest.raises(InvalidError, match="already has a function 'bare'"):
        app.function(name="bare")(lambda: None)


def test_result_ttl_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYFN_RESULT_TTL", "42")
    app = rayfn.App("unit-env")

    @app.function()
    def f() -> None: ...

    @app.function(result_ttl=7)
    def g() -> None: ...

    assert f.options is not None and f.options.result_ttl == 42.0
    assert g.options is not None and g.options.result_ttl == 7.0  # keyword beats env


def test_concurrency_limit_is_max_containers_old_name() -> None:
    app = rayfn.App("unit-aliases")

    @app.function(concurrency_limit=3)
    def f() -> None: ...

    assert f.options is not None and f.options.max_containers == 3
    with pytest.raises(InvalidError, match="not both"):
        app.function(max_containers=1, concurrency_limit=2, name="g")(lambda: None)


def test_timeout_defaults_to_five_minutes() -> None:
    options = function_options(default_result_ttl=1)
    assert options.timeout == 300.0 and options.startup_timeout is None
    assert options.retries.max_retries == 0


def test_an_unknown_option_names_itself_and_the_known_ones() -> None:
    app = rayfn.App("unit-unknown-option")
    with pytest.raises(
        InvalidError, match=r"@app.function\(\) has no option 'colour' \(its options: cpu"
    ):
        app.function(colour="blue")  # type: ignore[call-overload]
    with pytest.raises(InvalidError, match=r"image must be a rayfn.Image, got str"):
        app.function(image="debian")  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match=r"@app.cls\(\) has no option 'concurrency'"):
        app.cls(concurrency=3)  # type: ignore[call-arg]


def test_concurrent_inputs_share_one_calls_resources() -> None:
    from rayfn.runtime.records import FunctionOptions
    from rayfn.runtime.resources import GpuRequest

    shared = FunctionOptions(cpu=2.0, memory_mib=1024, gpu=GpuRequest(1), concurrent_inputs=4)
    assert shared.ray_task_options() == {
        "num_cpus": 0.5,
        "memory": 256 * 1024 * 1024,
        "num_gpus": 0.25,
    }
    # Ray takes a fraction of one GPU, or whole GPUs.
    three = FunctionOptions(gpu=GpuRequest(3), concurrent_inputs=2).ray_task_options()
    assert three["num_gpus"] == 2


def test_concurrent_goes_below_the_app_decorator() -> None:
    app = rayfn.App("unit-concurrent")

    @app.function()
    @rayfn.concurrent(max_inputs=8)
    def handler() -> None: ...

    assert handler.options is not None and handler.options.concurrent_inputs == 8
    with pytest.raises(InvalidError, match=r"below @app.cls\(...\) or @app.function"):
        rayfn.concurrent(max_inputs=2)(handler)
    with pytest.raises(InvalidError, match="max_inputs must be a whole number"):
        rayfn.concurrent(max_inputs=0)


@pytest.mark.parametrize(
    ("decorator", "option", "says"),
    [
        ("function", "network_file_systems", r"\(network_file_systems=...\) is not supported"),
        ("function", "region", r"@app.function\(region=...\) is not supported by rayfn: Ray"),
        ("function", "min_containers", r"is an option of @app.cls on rayfn"),
        ("function", "keep_warm", r"is an option of @app.cls on rayfn"),
        ("cls", "enable_memory_snapshot", r"not supported by rayfn: do slow setup in an"),
    ],
)
def test_modal_options_rayfn_lacks_say_so_and_what_to_use(
    decorator: str, option: str, says: str
) -> None:
    from rayfn.exception import NotSupportedError

    app = rayfn.App("unit-modal-only")
    with pytest.raises(NotSupportedError, match=says):
        getattr(app, decorator)(**{option: 1})


def test_a_generator_function_is_known_as_one_and_refuses_retries() -> None:
    from rayfn.exception import NotSupportedError

    app = rayfn.App("unit-generators")

    @app.function()
    def numbers(n: int):  # type: ignore[no-untyped-def]
        yield from range(n)

    @app.function()
    async def ticks(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield i

    @app.function(is_generator=True)
    def made_elsewhere(n: int):  # type: ignore[no-untyped-def]
        return iter(range(n))

    @app.function()
    def plain(n: int) -> list[int]:
        return list(range(n))

    generators = {name: f.definition()[1].generator for name, f in app.registered_functions.items()}
    assert generators == {"numbers": True, "ticks": True, "made_elsewhere": True, "plain": False}

    with pytest.raises(NotSupportedError, match=r"retries= on generator function .* not supported"):

        @app.function(retries=2)
        def retried(n: int):  # type: ignore[no-untyped-def]
            yield n

    @app.cls()
    class Model:
        @rayfn.method()
        def tokens(self, text: str):  # type: ignore[no-untyped-def]
            yield from text.split()

        @rayfn.method(is_generator=False)
        def words(self, text: str) -> list[str]:
            return text.split()

    assert app.registered_functions["Model.tokens"].definition()[1].generator
    assert not app.registered_functions["Model.words"].definition()[1].generator

    # The wrong way to call each is refused before anything reaches a cluster.
    for call, says in [
        (lambda: numbers.remote(3), r"numbers is a generator function: .* \.remote\(\.\.\.\)"),
        (lambda: numbers.spawn(3), r"cannot be called with \.spawn\(\.\.\.\)\. Use \.remote_gen"),
        (lambda: list(numbers.map([3])), r"cannot be called with \.map"),
        (lambda: next(plain.remote_gen(3)), r"plain is not a generator function"),
    ]:
        with pytest.raises(InvalidError, match=says):
            call()


def test_with_options_changes_only_what_it_is_given_and_checks_it() -> None:
    from rayfn._options import option_changes
    from rayfn.runtime.resources import parse_gpu

    changes = option_changes(
        {"cpu": 2, "gpu": "A100", "concurrency_limit": 3, "timeout": 60}, default_result_ttl=10
    )
    assert changes == {"cpu": 2, "gpu": parse_gpu("A100"), "max_containers": 3, "timeout": 60.0}
    with pytest.raises(InvalidError, match="cpu must be a number of cores"):
        option_changes({"cpu": -1}, default_result_ttl=10)
    with pytest.raises(InvalidError, match="with_options\\(\\) has no option 'colour'"):
        option_changes({"colour": "red"}, default_result_ttl=10)


# -- per-call options (with_options(priority=, delay=, at=, expires_in=, ...)) ------------


def test_call_options_are_checked_and_merged() -> None:
    import datetime

    from rayfn._options import call_options
    from rayfn.runtime.protocol import CallOptions

    now = 1_000_000.0
    assert call_options({"cpu": 2}, None, now) is None  # not per-call: left for the variant
    chosen = call_options({"priority": 3, "delay": datetime.timedelta(seconds=5)}, None, now)
    assert chosen == CallOptions(priority=3, delay=5.0)
    merged = call_options({"expires_in": 60, "idempotency_key": "k"}, chosen, now)
    assert merged == CallOptions("k", 3, 5.0, None, 60.0)
    at = datetime.datetime.fromtimestamp(now + 10, tz=datetime.UTC)
    assert call_options({"at": at}, merged, now) == CallOptions("k", 3, None, now + 10, 60.0)
    assert call_options({"priority": 0}, None, now) is None  # all defaults: nothing to send


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"delay": -1}, "0 or more"),
        ({"delay": "soon"}, "number of seconds"),
        ({"delay": float("nan")}, "number of seconds"),
        ({"delay": 31 * 24 * 3600}, "at most"),
        ({"priority": "high"}, "priority is an int"),
        ({"priority": 1.0}, "priority is an int"),
        ({"priority": True}, "priority is an int"),
        ({"priority": 2**40}, "between"),
        ({"expires_in": 0}, "more than 0"),
        ({"delay": 10, "expires_in": 5}, "never run"),
        ({"delay": 1, "at": 2_000_000.0}, "not both"),
        ({"at": "tomorrow"}, "datetime or a Unix time"),
        ({"idempotency_key": "k" * 257}, "1 to 256"),
        ({"webhook": "https://example.com/hook"}, "webhook must be rayfn.Webhook"),
        (
            {"webhook": rayfn.Webhook("https://x.io", secret=rayfn.Secret.from_dict({"K": "v"}))},
            "named secret",
        ),
    ],
)
def test_bad_call_options_are_refused_with_a_clear_error(given: dict, says: str) -> None:
    from rayfn._options import call_options

    with pytest.raises(InvalidError, match=says):
        call_options(dict(given), None, 1_000_000.0)


def test_a_functions_webhook_is_checked_and_its_secret_required() -> None:
    hook = rayfn.Webhook("https://example.com/h", secret=rayfn.Secret.from_name("hooks"))
    options = function_options(default_result_ttl=60.0, webhook=hook)
    assert options.webhook == ("https://example.com/h", "hooks")
    with pytest.raises(InvalidError, match=r"webhook must be rayfn\.Webhook"):
        function_options(default_result_ttl=60.0, webhook="https://example.com/h")  # type: ignore[arg-type]
