"""The import directions of docs/architecture.md, read from the code (every import,
lazy ones inside functions included): a wrong direction fails here, not in review.

    rayfn.cli      the command line: may use anything
    rayfn.serve    the job API on Ray Serve: rayfn's public names only
    rayfn (sdk)    what users import: itself, rayfn.runtime
    rayfn.runtime  what runs inside Ray: itself only

Every layer may use the two leaves ``rayfn.exception`` and ``rayfn.records`` (the
exceptions and the public records about calls, which import nothing but each other),
and the one constants module, ``rayfn.runtime.constants``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"sdk": "rayfn", "runtime": "rayfn.runtime", "serve": "rayfn.serve"}
LEAVES = {"rayfn.exception", "rayfn.records", "rayfn.runtime.constants"}
# What serve may use of the SDK: its public modules.
PUBLIC_SDK = {"rayfn", "rayfn.config", "rayfn.functions"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """The rayfn modules ``module`` imports (``from rayfn import x`` counts as
    ``rayfn.x`` when ``x`` is a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            base = node.module
            if node.level:  # relative: from the package this module is in
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            for alias in node.names:
                child = f"{base}.{alias.name}"
                names.add(child if child in MODULES else base)
    return {name for name in names if name == "rayfn" or name.startswith("rayfn.")}


def _layer(module: str) -> str:
    if module in LEAVES:
        return "leaf"
    for layer in ("rayfn.runtime", "rayfn.serve", "rayfn.cli"):
        if module == layer or module.startswith(layer + "."):
            return layer
    return "rayfn"


def _allowed(importer: str, imported: str) -> bool:
    layer, target = _layer(importer), _layer(imported)
    if target == "leaf" and layer != "leaf":
        return True
    if layer == "leaf":
        return target == "leaf"
    if layer == "rayfn.cli":
        return True
    if layer == "rayfn.serve":
        return target == "rayfn.serve" or imported in PUBLIC_SDK
    if layer == "rayfn":
        return target in ("rayfn", "rayfn.runtime")
    return target == "rayfn.runtime"  # runtime


WRONG = sorted(
    (importer, imported)
    for importer, path in MODULES.items()
    for imported in _imports(importer, path)
    if not _allowed(importer, imported)
)


@pytest.mark.parametrize("importer", sorted(MODULES))
def test_imports_go_one_way(importer: str) -> None:
    wrong = [imported for who, imported in WRONG if who == importer]
    assert not wrong, f"{importer} imports {wrong}: against the layers in docs/architecture.md"


def test_the_rules_catch_a_wrong_direction() -> None:
    assert not _allowed("rayfn.runtime.registry", "rayfn._function_call")
    assert not _allowed("rayfn._app", "rayfn.serve.deploy")
    assert not _allowed("rayfn.serve.api", "rayfn._connection")
    assert not _allowed("rayfn.records", "rayfn.runtime.records")
    assert _allowed("rayfn.serve.api", "rayfn")
    assert _allowed("rayfn.runtime.book", "rayfn.records")
    assert _allowed("rayfn.cli.app", "rayfn.serve.deploy")


def test_every_folder_was_read() -> None:
    assert {"rayfn", "rayfn.runtime.registry", "rayfn.serve.api", "rayfn.cli"} <= set(MODULES)
