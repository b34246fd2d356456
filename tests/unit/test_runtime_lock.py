"""The image's lock: only what `istio-operator run` needs, all of it, and up to date."""

from __future__ import annotations

import functools
import importlib.util
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement

ROOT = Path(__file__).parent.parent.parent
SCRIPT = ROOT / "tools" / "lock" / "runtime_lock.py"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@functools.cache
def script() -> ModuleType:
    """tools/lock/runtime_lock.py, a script rather than a package module."""
    spec = importlib.util.spec_from_file_location("runtime_lock", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def normalize(name: str) -> str:
    return str(script().normalize(name))


def locked(path: Path) -> set[str]:
    return {normalize(e.name) for e in script().parse_lock(path.read_text())}


def installed_closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements pull in, as installed, markers evaluated
    (the development environment stands for the image's platform)."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = normalize(requirement.name)
        key_extras = sorted(requirement.extras)
        if name in seen and not key_extras:
            continue
        seen.add(name)
        for text in metadata.requires(requirement.name) or []:
            for wanted in ["", *key_extras]:
                todo.append((Requirement(text), wanted))
    return seen


def test_the_committed_runtime_lock_is_up_to_date() -> None:
    assert script().main(["--check"]) == 0, "run tools/lock/runtime_lock.py"


def test_no_development_package_is_in_the_runtime_lock() -> None:
    dev_requirements = PYPROJECT["project"]["optional-dependencies"]["dev"]
    dev = {normalize(Requirement(r).name) for r in dev_requirements}
    dev_only = installed_closure(dev_requirements)
    runtime = installed_closure(PYPROJECT["project"]["dependencies"])
    assert dev & locked(RUNTIME_LOCK) == set()
    assert (dev_only - runtime) & locked(RUNTIME_LOCK) == set()


def test_every_runtime_dependency_and_its_closure_is_locked() -> None:
    runtime = installed_closure(PYPROJECT["project"]["dependencies"])
    assert runtime - locked(RUNTIME_LOCK) == set()


def test_the_runtime_lock_is_part_of_the_full_lock_with_its_hashes() -> None:
    full = (ROOT / "requirements.lock").read_text().splitlines()
    for entry in script().parse_lock(RUNTIME_LOCK.read_text()):
        assert [line for line in entry.lines if line not in full] == []
        assert any("--hash=sha256:" in line for line in entry.lines), entry.name


def test_the_image_installs_the_runtime_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements-runtime.lock" in dockerfile
    assert "requirements.lock" not in dockerfile.replace("requirements-runtime.lock", "")
