"""Which image requirements need a per-task env: only those this environment lacks."""

from rayfn.runtime.environment import runtime_env_for, unsatisfied


def test_installed_requirements_need_no_env() -> None:
    # rayfn's own dependencies, extras included, are here by construction.
    assert unsatisfied(["fastapi[standard]", "ray[serve]>=2", "pydantic"]) == []
    assert runtime_env_for(["fastapi[standard]", "pydantic>=2"]) is None


def test_missing_or_mismatched_requirements_go_to_pip() -> None:
    wanted = ["pydantic", "surely-not-installed-pkg", "pydantic<1", "not a requirement!"]
    assert unsatisfied(wanted) == wanted[1:]
    assert runtime_env_for(wanted) == {"pip": wanted[1:]}


def test_an_extra_whose_packages_are_missing_is_unsatisfied() -> None:
    # pydantic's "email" extra needs email-validator, which rayfn does pull in (via
    # fastapi[standard]); its "timezone" extra needs tzdata on some platforms only.
    assert unsatisfied(["pydantic[email]"]) == []
    assert unsatisfied(["ray[rllib]"]) == ["ray[rllib]"]
