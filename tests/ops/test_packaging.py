"""Pinned installs: bounded dependencies in pyproject.toml, every one pinned in the lock files bin/run, bin/test and
the container install from."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
OPTIONAL = [r for extra in PROJECT["optional-dependencies"].values() for r in extra]


def pinned(lock: str) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", (ROOT / lock).read_text(), flags=re.MULTILINE)
    return {canonical(name): version for name, version in pins}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_has_an_upper_bound():
    requirements = [Requirement(r) for r in PROJECT["dependencies"] + OPTIONAL]
    unbounded = [str(r) for r in requirements if not any(s.operator in {"<", "=="} for s in r.specifier)]
    assert unbounded == []


def test_the_lock_files_pin_every_declared_dependency():
    runtime, dev = pinned("requirements.lock"), pinned("requirements-dev.lock")
    for requirement in map(Requirement, PROJECT["dependencies"]):
        name = canonical(requirement.name)
        assert name in runtime and name in dev, name
        assert requirement.specifier.contains(runtime[name]), (name, runtime[name])
    for requirement in map(Requirement, OPTIONAL):
        name = canonical(requirement.name)
        assert name in dev, name
        assert requirement.specifier.contains(dev[name]), (name, dev[name])


def test_bin_scripts_install_from_the_lock():
    setup = (ROOT / "bin" / "_setup.sh").read_text()
    assert "pip install -q -r requirements-dev.lock" in setup
    assert "pip install -q --no-deps -e ." in setup


def test_license_is_an_spdx_string_and_unused_dependencies_are_gone():
    assert PROJECT["license"] == "Apache-2.0"
    names = {canonical(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert {"httpx", "pyjwt"}.isdisjoint(names)
    assert "requests" in names  # notifications/delivery.py sends webhooks with it
