"""What a failed web deploy reports (serve/deploy.py ``replica_failure``): the user's
error and frames out of Serve's message, without a cluster."""

from __future__ import annotations

from rayfn._web_hosting import replica_failure

SERVE_MESSAGE = (
    "The deployment failed to start 3 times in a row. See controller logs. Error:\n"
    "\x1b[36mray::site.initialize_and_get_metadata()\x1b[39m (pid=1, ip=10.0.0.1)\n"
    '  File "/usr/lib/python3.11/concurrent/futures/_base.py", line 456, in result\n'
    "    return self.__get_result()\n"
    '  File "/venv/lib/python3.11/site-packages/ray/serve/_private/replica.py", line 1928\n'
    "    raise RuntimeError(traceback.format_exc()) from None\n"
    "RuntimeError: Traceback (most recent call last):\n"
    '  File "/venv/lib/python3.11/site-packages/ray/serve/_private/replica.py", line 1867\n'
    "    await self._user_callable_wrapper.initialize_callable()\n"
    "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "/home/me/site.py", line 9, in site\n'
    "    import not_a_module_here\n"
    "ModuleNotFoundError: No module named 'not_a_module_here'\n"
)


def test_the_users_error_and_frames_come_out_of_serves_message() -> None:
    summary, frames = replica_failure(SERVE_MESSAGE)
    assert summary == "ModuleNotFoundError: No module named 'not_a_module_here'"
    assert frames.splitlines() == [
        "Traceback (most recent call last):",
        '  File "/home/me/site.py", line 9, in site',
        "    import not_a_module_here",
        "ModuleNotFoundError: No module named 'not_a_module_here'",
    ]


def test_a_message_without_a_traceback_is_its_own_summary() -> None:
    assert replica_failure("Replica scheduling timed out.") == (
        "Replica scheduling timed out.",
        "",
    )
