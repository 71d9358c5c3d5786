"""Every command's help ends its summary with a one-line example (no cluster needed:
--help never connects)."""

from typing import Any

import typer.main

from rayfn.cli import cli


def _is_group(command: Any) -> bool:
    # typer ships its own click; groups are what have subcommands.
    return hasattr(command, "commands")


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if _is_group(command):
            found += _commands(command, path)
        else:
            found.append(path)
    return found


def test_every_command_has_a_one_line_example() -> None:
    root = typer.main.get_command(cli)
    assert _is_group(root)
    commands = _commands(root)
    assert ("app", "logs") in commands and ("cluster", "up") in commands
    assert ("dashboard",) in commands
    for path in commands:
        command = root
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        examples = [line for line in (command.help or "").splitlines() if "Example: rayfn " in line]
        assert examples, f"`rayfn {' '.join(path)} --help` has no example"
        assert f"rayfn {' '.join(path)}" in examples[0], path
