"""Tagging what a call prints (runtime/output.py) and showing it in the client
(sdk/_output.py), without a cluster: a worker's file is a StringIO here."""

from __future__ import annotations

import io

from rayfn._output import _Follower
from rayfn.runtime import output
from rayfn.runtime.code import app_digest, code_key


def test_a_call_tags_its_first_write_and_ray_marks_reset_the_tag() -> None:
    file = io.StringIO()
    stream = output._Tagged(file)
    tag = output.call_tag(code_key("my app", 3, "work"), "fc-0-1-abc")
    assert output.parse_tag(tag) == (app_digest("my app"), "work", "fc-0-1-abc")

    stream.write("before any call\n")  # no call: untagged, as Ray wrote it
    token = output._current.set(tag)
    stream.write("\rstep 1")
    stream.write("\rstep 2")
    stream.write(":task_name:ray's next task\n")  # Ray names a task: ours no longer holds
    stream.write("again\n")
    output._current.reset(token)
    stream.write("after\n")
    assert file.getvalue().split("\n")[:-1] == [
        "before any call",
        f":task_name:{tag}",
        "\rstep 1\rstep 2:task_name:ray's next task",
        f":task_name:{tag}",
        "again",
        ":task_name:",  # between calls: no call's output
        "after",
    ]


def test_a_tag_line_never_lands_mid_line() -> None:
    file = io.StringIO()
    stream = output._Tagged(file)
    first = output.call_tag(code_key("a", 1, "f"), "fc-1")
    second = output.call_tag(code_key("a", 1, "f"), "fc-2")
    token = output._current.set(first)
    stream.write("no newline yet")
    output._current.reset(token)
    token = output._current.set(second)
    stream.write("next\n")
    output._current.reset(token)
    assert file.getvalue().split("\n")[:-1] == [
        f":task_name:{first}",
        "no newline yet",
        f":task_name:{second}",
        "next",
    ]


def test_the_client_shows_followed_apps_lines_with_their_call_and_progress_once() -> None:
    follower = _Follower()
    with follower._lock:
        follower._apps[app_digest("jobs@ep-1")] += 1
    tag = output.call_tag(code_key("jobs@ep-1", 1, "work"), "fc-9")
    other = output.call_tag(code_key("someone-else", 1, "work"), "fc-8")
    assert follower._prefix({"task_name": tag}) == "[work fc-9] "
    assert follower._prefix({"task_name": other}) is None
    assert follower._prefix({"task_name": "ray.task", "actor_name": ""}) is None

    out = io.StringIO()
    out.isatty = lambda: False  # type: ignore[method-assign]
    import sys

    saved, sys.stdout = sys.stdout, out
    try:
        follower._show("[work fc-9] ", ["hello", "\r 10%\r 50%", "\r100%", "", "bye"], False)
    finally:
        sys.stdout = saved
    assert out.getvalue().splitlines() == [
        "[work fc-9] hello",
        "[work fc-9]  50%",
        "[work fc-9] 100%",
        "[work fc-9] bye",
    ]
