"""What a call printed, after the fact: each attempt's Ray log (its task's, or its
container actor's) read through Ray's log API, cut to the lines written under the
call's own output tag (runtime/output.py), so a pack's or a container's other calls
are left out. Needs the cluster's dashboard (Ray's log API runs there)."""

from __future__ import annotations

from dataclasses import dataclass

from rayfn._function_call import FunctionCall
from rayfn.runtime.output import MARKS, parse_tag


@dataclass(frozen=True)
class AttemptLog:
    """One attempt's printed lines, and where it ran."""

    attempt: int
    node: str | None  # the Ray node id
    lines: tuple[str, ...]
    note: str | None = None  # why no lines could be read, if so


def lines_of(text: str, call_id: str) -> list[str]:
    """The lines of a worker's log written while ``call_id``'s tag was on."""
    mine: list[str] = []
    on = False
    for line in text.splitlines():
        if line.startswith(MARKS):
            tag = parse_tag(line.split(":", 2)[2])
            on = tag is not None and tag[2] == call_id
            continue
        if on:
            mine.append(line)
    return mine


def call_logs(call_id: str) -> list[AttemptLog]:
    """Each attempt of the call that reached Ray, with what it printed (stdout, then
    stderr).

    Raises:
        NotFoundError: no such call, or its result has expired.
    """
    from ray.util.state import get_log, get_task

    logs = []
    for attempt in FunctionCall.from_id(call_id).status().attempts:
        if attempt.task_id is None:
            continue
        try:
            found = get_task(attempt.task_id)
        except Exception as exc:  # the state API is down, or the dashboard is gone
            logs.append(AttemptLog(attempt.number, None, (), f"Ray's state API: {exc}"))
            continue
        task = found[-1] if isinstance(found, list) else found
        if task is None:
            logs.append(AttemptLog(attempt.number, None, (), "Ray no longer knows its task."))
            continue
        where = {"actor_id": task.actor_id} if task.actor_id else {"task_id": attempt.task_id}
        lines: list[str] = []
        note = None
        for suffix in ("out", "err"):
            try:
                text = "".join(get_log(**where, suffix=suffix, tail=-1, node_id=task.node_id))
            except Exception as exc:  # its worker's log is gone (node removed, rotated)
                note = f"Its log could not be read: {exc}"
                continue
            lines += lines_of(text, call_id)
        logs.append(AttemptLog(attempt.number, task.node_id, tuple(lines), note))
    return logs
