from pathlib import Path

import pytest

from rayfn._loader import find_app, import_file
from rayfn.exception import InvalidError


def test_imports_a_file_and_finds_its_app(tmp_path: Path) -> None:
    file = tmp_path / "unit_loader_app.py"
    file.write_text("import rayfn\napp = rayfn.App('loader')\n")
    app = find_app(import_file(file))
    assert app.name == "loader"
    assert app.source == str(file.resolve())


def test_several_apps_need_a_variable_name(tmp_path: Path) -> None:
    file = tmp_path / "unit_two_apps.py"
    file.write_text("import rayfn\na = rayfn.App('a')\nb = rayfn.App('b')\n")
    module = import_file(file)
    with pytest.raises(InvalidError, match=r"several apps \(a, b\): pick one with FILE::VARIABLE"):
        find_app(module)
    assert find_app(module, "b").name == "b"


def test_missing_file_no_app_and_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match="No such file"):
        import_file(tmp_path / "missing.py")
    empty = tmp_path / "unit_empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(InvalidError, match=r"No rayfn\.App in"):
        find_app(import_file(empty))
    broken = tmp_path / "unit_broken.py"
    broken.write_text("def f(:\n")
    with pytest.raises(InvalidError, match=r"unit_broken.py:1: syntax error"):
        import_file(broken)


def test_a_file_that_fails_to_import_shows_only_its_own_frames(tmp_path: Path) -> None:
    helper = tmp_path / "unit_helper_mod.py"
    helper.write_text("def setup():\n    import no_such_package_here\n")
    file = tmp_path / "unit_failing_app.py"
    file.write_text("import rayfn\nimport unit_helper_mod\nunit_helper_mod.setup()\n")
    with pytest.raises(InvalidError, match="failed to import: ModuleNotFoundError") as caught:
        import_file(file)
    (trace,) = caught.value.__notes__
    assert 'unit_failing_app.py", line 3' in trace
    assert 'unit_helper_mod.py", line 2' in trace
    assert "import no_such_package_here" in trace
    assert "_loader.py" not in trace and "importlib" not in trace and "frozen" not in trace
    assert trace.splitlines()[-1] == "ModuleNotFoundError: No module named 'no_such_package_here'"
