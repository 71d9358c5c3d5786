"""The Image builder as Modal programs call it, and what a cluster makes of an image
(runtime/environment.py, run here as the control actor runs it). No cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import rayfn
from rayfn.exception import InvalidError, NotSupportedError
from rayfn.runtime import environment
from rayfn.runtime.records import ImageSpec

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_builder_methods_record_what_each_adds() -> None:
    image = (
        rayfn.Image.debian_slim(python_version=f"{HERE}.1", force_build=True)
        .pip_install("httpx", ["pydantic>=2"], force_build=True)
        .uv_pip_install("fastapi")
        .apt_install("git", ["curl"])
        .env({"A": "1"})
    )
    assert image.python_version == HERE
    assert image.pip_packages == ("httpx", "pydantic>=2")
    assert image.uv_packages == ("fastapi",)
    assert image.apt_packages == ("git", "curl")
    spec = image.spec()
    assert spec == ImageSpec(
        pip=("httpx", "pydantic>=2"),
        uv_pip=("fastapi",),
        apt=("git", "curl"),
        python_version=HERE,
        runtime_env={"env_vars": {"A": "1"}},
    )


def test_requirements_files_are_read_without_comments(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nhttpx==0.27  # client\n\nrich\n")
    image = rayfn.Image.debian_slim().pip_install_from_requirements(requirements)
    assert image.pip_packages == ("httpx==0.27", "rich")
    with pytest.raises(InvalidError, match="cannot read"):
        rayfn.Image.debian_slim().pip_install_from_requirements(tmp_path / "missing.txt")


def test_what_rayfn_cannot_do_says_so_and_what_to_use() -> None:
    base = rayfn.Image.debian_slim()
    with pytest.raises(NotSupportedError, match=r"run_commands is not supported by rayfn.*setup_"):
        base.run_commands("apt-get update")
    with pytest.raises(InvalidError, match=r"add_local_file: a.txt is not a file"):
        base.add_local_file("a.txt", "/root/a.txt")
    with pytest.raises(InvalidError, match=r"remote_path must name a path"):
        base.add_local_dir(".", remote_path="/")
    with pytest.raises(NotSupportedError, match=r"pip_install\(index_url=...\) is not supported"):
        base.pip_install("torch", index_url="https://download.pytorch.org/whl/cpu")
    with pytest.raises(NotSupportedError, match="setup_dockerfile_commands"):
        rayfn.Image.from_registry("python:3.11", setup_dockerfile_commands=["RUN x"])
    with pytest.raises(InvalidError, match=r"python_version must look like '3\.11'"):
        rayfn.Image.debian_slim(python_version="three")
    with pytest.raises(InvalidError, match="package names"):
        base.apt_install(3)  # type: ignore[arg-type]


def test_imports_swallow_what_this_machine_lacks_only() -> None:
    image = rayfn.Image.debian_slim()
    with image.imports():
        import json

        import surely_not_installed_anywhere  # noqa: F401
    assert json.dumps(1) == "1"
    with pytest.raises(ZeroDivisionError), image.imports():
        1 / 0  # noqa: B018


def test_the_cluster_checks_python_system_packages_and_containers() -> None:
    assert environment.problems(ImageSpec(python_version=HERE, apt=("bash",)), "a.f") == []
    (python,) = environment.problems(ImageSpec(python_version="2.7"), "a.f")
    assert python.startswith(f"a.f asks for Python 2.7, but the cluster runs Python {HERE}")
    (apt,) = environment.problems(ImageSpec(apt=("surely-absent-apt-package",)), "a.f")
    assert "needs the system packages surely-absent-apt-package" in apt
    registry = ImageSpec(registry_image="python:3.11", python_version="2.7")
    found = environment.problems(registry, "a.f")
    assert not any("Python" in p for p in found)  # a container brings its own Python
    assert environment.runtime_env_of(registry) == {"image_uri": "python:3.11"}


def test_only_missing_requirements_become_a_runtime_env() -> None:
    image = ImageSpec(pip=("pytest", "surely-absent-pkg"), uv_pip=("surely-absent-uv-pkg",))
    assert environment.runtime_env_of(image) == {
        "pip": ["surely-absent-pkg"],
        "uv": ["surely-absent-uv-pkg"],
    }
    assert environment.runtime_env_of(ImageSpec(pip=("pytest",))) is None


def test_modal_names_rayfn_lacks_raise_saying_so() -> None:
    import rayfn as modal

    app = modal.App("unit-lacks")

    @app.function()
    def f() -> None: ...

    for use, says in [
        (lambda: f.with_options(image=modal.Image.debian_slim()), r"with_options\(image=...\) is"),
        (lambda: f.with_options(region="eu"), r"\(region=...\) is not supported by rayfn"),
        (lambda: modal.asgi_app(custom_domains=["x.example"]), r"custom_domains is not"),
    ]:
        with pytest.raises(NotSupportedError, match=says):
            use()
    with pytest.raises(InvalidError, match="requires_proxy_auth must be True or False"):
        modal.fastapi_endpoint(requires_proxy_auth="yes")  # type: ignore[arg-type]
