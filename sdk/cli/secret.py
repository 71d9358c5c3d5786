"""``rayfn secret ...``: secrets functions get as environment variables."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from rayfn import _connection
from rayfn._checks import check_name
from rayfn._secret import check_secret_values
from rayfn.cli._common import AsJson, SecretName, out, print_table
from rayfn.exception import InvalidError

secret_cli = typer.Typer(
    no_args_is_help=True, help="Secrets for functions. Example: rayfn secret list"
)


@secret_cli.command("create")
def secret_create(
    name: SecretName,
    pairs: Annotated[list[str], typer.Argument(help="KEY=VALUE pairs")],
    force: Annotated[bool, typer.Option("--force", help="Replace a secret of that name.")] = False,
) -> None:
    """Create a secret that functions get as environment variables
    (secrets=[rayfn.Secret.from_name(NAME)]). Example: rayfn secret create openai KEY=sk-1"""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidError(f"Give KEY=VALUE pairs; {key!r} has no '='.")
        values[key] = value
    check_name("secret", name)
    check_secret_values(values)
    control = _connection.control()
    if not force and not control.missing_secrets([name]).result():
        raise InvalidError(f"Secret {name!r} exists; add --force to replace it.")
    control.put_secret(name, values).result()
    out.print(f"[green]✓[/green] Created secret {name} with keys {', '.join(sorted(values))}")


@secret_cli.command("list")
def secret_list(as_json: AsJson = False) -> None:
    """List secrets and their keys (never their values). Example: rayfn secret list"""
    found = _connection.control().list_secrets().result()
    if as_json:
        out.print_json(json.dumps([{"name": n, "keys": keys} for n, keys in found]))
        return
    table = Table("Secret", "Keys")
    for name, keys in found:
        table.add_row(name, ", ".join(keys))
    print_table(table)


@secret_cli.command("delete")
def secret_delete(name: SecretName) -> None:
    """Delete a secret. Example: rayfn secret delete openai"""
    if not _connection.control().delete_secret(check_name("secret", name)).result():
        raise InvalidError(f"No secret named {name!r} (see `rayfn secret list`).")
    out.print(f"Deleted secret {name}.")
