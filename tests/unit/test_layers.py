"""The import directions of docs/architecture.md, read from the code (every import,
lazy ones inside functions included): a wrong direction fails here, not in review.

    rayfn.cli      the command line: may use anything
    rayfn.serve    the job API on Ray Serve: rayfn's public names only
    rayfn (sdk)    what users import: itself, rayfn.runtime
    rayfn.runtime  what runs inside Ray: itself only

Every layer may use the two leaves ``rayfn.exception`` and ``rayfn.records`` (the
exceptions and the public records about calls, which import nothing but each other),
and the one constants module, ``rayfn.runtime.constants``. Serve may also use
``rayfn.runtime._ray_compat``, the one module that touches Ray's private APIs: no other
module imports a private Ray module or reaches a private Ray name, so a Ray upgrade is
checked in one place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"sdk": "rayfn", "runtime": "rayfn.runtime", "serve": "rayfn.serve"}
LEAVES = {
    "rayfn.exception",
    "rayfn.records",
    "rayfn.runtime.constants",
    "rayfn.runtime.http_forward",  # handing HTTP requests on: no Ray, nothing of rayfn
}
# What serve may use of the SDK: its public modules.
PUBLIC_SDK = {"rayfn", "rayfn.config", "rayfn.console", "rayfn.functions"}
# The one module allowed to use Ray's private APIs (and which serve may import).
RAY_COMPAT = "rayfn.runtime._ray_compat"
# Ray modules that are private without an underscore in their path: generated protobuf
# code, the internal KV store, and the autoscaler's own (undocumented) SDK.
PRIVATE_RAY_MODULES = ("ray.core.generated", "ray.experimental.internal_kv", "ray.autoscaler.v2")


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
        return target == "rayfn.serve" or imported in PUBLIC_SDK or imported == RAY_COMPAT
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


def _is_private_ray(dotted: str) -> bool:
    """Whether ``dotted`` (a module, or a name reached from one) is Ray's private API: a
    part of its path past ``ray`` starts with one underscore (``ray._private``,
    ``ray._raylet``, ``ray.autoscaler._private``, ``ray.serve._run``...), or it lies in
    one of PRIVATE_RAY_MODULES."""
    parts = dotted.split(".")
    if parts[0] != "ray":
        return False
    if any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
        return True
    return any(dotted == m or dotted.startswith(m + ".") for m in PRIVATE_RAY_MODULES)


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None if it is not a plain chain of names."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def private_ray_uses(source: str, filename: str = "<source>") -> list[str]:
    """The private Ray modules and names ``source`` imports or reaches (each as
    ``line: dotted.name``): imports of them, and attribute chains from a name bound to a
    Ray module (``ray._private.worker``, ``internal_kv._internal_kv_get``,
    ``serve._run``)."""
    tree = ast.parse(source, filename)
    bound: dict[str, str] = {}  # local name -> the Ray module or name it is bound to
    found: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "ray":
                    continue
                if _is_private_ray(alias.name):
                    found.add((node.lineno, alias.name))
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[alias.name.split(".")[0]] = "ray"
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] != "ray":
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if _is_private_ray(full):
                    found.add((node.lineno, full))
                bound[alias.asname or alias.name] = full
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:  # whole chains only
            chain = _dotted(node)
            if chain is None or chain[0] not in bound:
                continue
            full = ".".join([bound[chain[0]], *chain[1:]])
            if _is_private_ray(full):
                found.add((node.lineno, full))
    return [f"{line}: {name}" for line, name in sorted(found)]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != RAY_COMPAT))
def test_private_ray_only_in_ray_compat(module: str) -> None:
    uses = private_ray_uses(MODULES[module].read_text(), str(MODULES[module]))
    assert not uses, (
        f"{module} uses Ray's private API ({', '.join(uses)}): go through {RAY_COMPAT}, "
        "which names the Ray version it was checked against"
    )


def test_the_private_ray_rule_catches_each_form() -> None:
    caught = {
        "from ray._private import ray_constants": ["1: ray._private.ray_constants"],
        "import ray._raylet": ["1: ray._raylet"],
        "from ray._common.utils import x": ["1: ray._common.utils.x"],
        "from ray.autoscaler._private.util import validate_config": [
            "1: ray.autoscaler._private.util.validate_config"
        ],
        "from ray.core.generated import gcs_service_pb2": ["1: ray.core.generated.gcs_service_pb2"],
        "from ray.experimental import internal_kv\ninternal_kv._internal_kv_get(k)": [
            "1: ray.experimental.internal_kv",
            "2: ray.experimental.internal_kv._internal_kv_get",
        ],
        "import ray\nray._private.worker.global_worker": ["2: ray._private.worker.global_worker"],
        "import ray\nray._raylet.GcsLogSubscriber(address=a)": ["2: ray._raylet.GcsLogSubscriber"],
        "from ray import serve\nserve._run(app, _blocking=False)": ["2: ray.serve._run"],
        "import ray.serve as s\ns._run(app)": ["2: ray.serve._run"],
    }
    for source, uses in caught.items():
        assert private_ray_uses(source) == uses, source
    public = "import ray\nfrom ray import serve, cloudpickle\nray.get(r)\nserve.run(a)\n"
    assert private_ray_uses(public + "ray.util.state.list_tasks()\nx._private") == []


def test_the_rules_catch_a_wrong_direction() -> None:
    assert not _allowed("rayfn.runtime.registry", "rayfn._function_call")
    assert not _allowed("rayfn._app", "rayfn.serve.deploy")
    assert not _allowed("rayfn.serve.api", "rayfn._connection")
    assert not _allowed("rayfn.records", "rayfn.runtime.records")
    assert _allowed("rayfn.serve.api", "rayfn")
    assert _allowed("rayfn.runtime.book", "rayfn.records")
    assert _allowed("rayfn.cli.app", "rayfn.serve.deploy")
    assert _allowed("rayfn.serve.deploy", "rayfn.runtime._ray_compat")
    assert not _allowed("rayfn.serve.deploy", "rayfn.runtime.kv")


def test_every_folder_was_read() -> None:
    assert {"rayfn", "rayfn.runtime.registry", "rayfn.serve.api", "rayfn.cli"} <= set(MODULES)
