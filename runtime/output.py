"""What calls print, tagged with the call, so the client that runs them can follow it.

Ray's log monitor tails every worker's stdout and stderr files and publishes their lines
on the GCS log channel, each batch carrying the task name last written to that file as a
``:task_name:`` line (Ray writes one as each task starts). A call tags its output the
same way: its first write is preceded by a ``:task_name:rayfn|<app>|<function>|<call>``
line, so ``rayfn run`` picks its own calls' lines out of the channel (sdk/_output.py).
The tag goes out at a call's first write, so a call that prints nothing costs nothing.

What passes through ``sys.stdout`` and ``sys.stderr`` is tagged (print, logging set up in
the call, tqdm); what a subprocess writes to the file descriptors goes under whatever
tag was written last.
"""

from __future__ import annotations

import contextvars
import sys
from typing import Any, TextIO

from rayfn.runtime.constants import KV_CODE_PREFIX

TAG = "rayfn|"
MARKS = (":task_name:", ":actor_name:")  # Ray's own (ray_constants.LOG_PREFIX_*)

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("rayfn_output_tag")
_fallback: str | None = None  # threads the call started carry no context: its last tag


def call_tag(code_key: str, call_id: str) -> str:
    """The task name a call's output goes under: its app's digest, function and id."""
    parts = code_key.removeprefix(KV_CODE_PREFIX).split(":", 2)
    digest, function = (parts[0], parts[2]) if len(parts) == 3 else ("", code_key)
    return f"{TAG}{digest}|{function}|{call_id}"


def parse_tag(task_name: str | None) -> tuple[str, str, str] | None:
    """(app digest, function, call id) of a tagged batch, None for any other."""
    if not task_name or not task_name.startswith(TAG):
        return None
    parts = task_name[len(TAG) :].split("|")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def begin(tag: str) -> contextvars.Token[str | None]:
    """Tag what this call writes from now on (``end`` with the token after)."""
    global _fallback
    _install()
    _fallback = tag
    return _current.set(tag)


def end(token: contextvars.Token[str | None]) -> None:
    global _fallback
    _current.reset(token)
    _fallback = _current.get(None)


class _Tagged:
    """A worker's stdout or stderr that writes a call's tag line before the call's
    first output, and flushes a call's output as it goes, so it streams live."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tag: str | None = None  # the tag last written to the file
        self._at_line_start = True

    def write(self, text: str) -> int:
        tag = _current.get(None) or _fallback
        if text.startswith(MARKS):
            self._tag = None  # Ray named the next task: ours no longer holds
        elif tag != self._tag and text:
            # Between calls, an empty name: what the worker prints then is no call's.
            line_break = "" if self._at_line_start else "\n"
            self._stream.write(f"{line_break}{MARKS[0]}{tag or ''}\n")
            self._tag = tag
        written = self._stream.write(text)
        if text:
            self._at_line_start = text.endswith("\n")
        if tag is not None:
            self._stream.flush()
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, flush...
        return getattr(self._stream, name)


def _install() -> None:
    if not isinstance(sys.stdout, _Tagged):
        sys.stdout = _Tagged(sys.stdout)
    if not isinstance(sys.stderr, _Tagged):
        sys.stderr = _Tagged(sys.stderr)
