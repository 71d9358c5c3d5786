"""The CLI's tables print whole cells into a narrow terminal or a pipe."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from rayfn.cli import _common


def test_a_table_wider_than_the_console_keeps_its_ids_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    narrow = Console(file=io.StringIO(), width=60, soft_wrap=True)
    monkeypatch.setattr(_common, "out", narrow)
    table = Table("Call", "Function", "Status", "Created")
    call_id = "fc-0-1-uqqcevxbpamuy7taqcxkqyalky"
    table.add_row(call_id, "my-job-queue.process_job", "SUCCEEDED", "2026-12-03 18:48:44")
    _common.print_table(table)
    printed = narrow.file.getvalue()  # type: ignore[attr-defined]
    assert call_id in printed and "…" not in printed
    assert len(printed.splitlines()) == 5  # header rule, header, rule, the row, bottom
