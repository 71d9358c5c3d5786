"""The front door: exactly these names are public, and the exceptions keep their
promises (httpx's tests/test_exported_members.py habit)."""

import inspect

import rayfn
from rayfn import exception


def test_public_names() -> None:
    assert sorted(rayfn.__all__) == sorted(
        [
            "App",
            "CallInfo",
            "CallStatus",
            "Cls",
            "Cron",
            "Dict",
            "Function",
            "FunctionCall",
            "Image",
            "Period",
            "Progress",
            "Queue",
            "Retries",
            "Secret",
            "Volume",
            "Webhook",
            "__version__",
            "asgi_app",
            "batched",
            "concurrent",
            "console",
            "current_function_call_id",
            "enable_output",
            "enter",
            "exception",
            "exit",
            "fastapi_endpoint",
            "functions",
            "is_local",
            "list_calls",
            "method",
            "set_progress",
            "web_endpoint",
            "web_server",
            "webhooks",
            "wsgi_app",
        ]
    )
    for name in rayfn.__all__:
        assert hasattr(rayfn, name)
        assert not name.startswith("_") or name == "__version__"


def test_modal_module_paths_exist() -> None:
    assert rayfn.functions.FunctionCall is rayfn.FunctionCall
    assert rayfn.functions.Function is rayfn.Function
    assert rayfn.exception.OutputExpiredError


def test_every_exception_has_one_root_and_says_when_it_is_raised() -> None:
    classes = [
        c
        for _, c in inspect.getmembers(exception, inspect.isclass)
        if issubclass(c, BaseException) and c.__module__ == exception.__name__
    ]
    assert len(classes) >= 7
    for cls in classes:
        assert issubclass(cls, exception.Error)
        assert cls.__doc__ and ("Raised" in cls.__doc__ or cls is exception.Error), cls


def test_output_expired_is_not_a_timeout_and_no_builtin_is_shadowed() -> None:
    assert not issubclass(exception.OutputExpiredError, TimeoutError)
    assert not hasattr(exception, "TimeoutError")
    assert not hasattr(exception, "ConnectionError")


def test_image_is_recorded_immutably() -> None:
    base = rayfn.Image.debian_slim()
    image = base.pip_install("fastapi[standard]", ["httpx"])
    assert image.pip_packages == ("fastapi[standard]", "httpx")
    assert base.pip_packages == ()
    assert rayfn.App("with-image", image=image).image is image
