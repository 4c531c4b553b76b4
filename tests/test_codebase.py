"""The codebase's own rules, checked with the tests: lint, format, layering, docs in step."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import grimp
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mailgate.config import Settings, load

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_lint_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", "mailgate", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "format", "--check", "mailgate", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_errors() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_hold() -> None:
    result = _run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_no_import_circles() -> None:
    """No modules of mailgate import each other in a circle, TYPE_CHECKING imports included:
    dependencies point one way (DESIGN.md, Layout)."""
    graph = grimp.build_graph("mailgate", cache_dir=None)
    circles = [
        (module, *(graph.find_shortest_chain(importer=imported, imported=module) or ()))
        for module in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(module))
        if graph.chain_exists(importer=imported, imported=module)
    ]
    assert not circles, "\n".join(" -> ".join(circle) for circle in circles)


def test_the_documented_config_is_the_default() -> None:
    assert load(ROOT / "config" / "mailgate.toml", env={}) == Settings()


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for section in fields(Settings):
        for key in fields(getattr(Settings(), section.name)):
            assert f"`[{section.name}] {key.name}`" in readme, f"[{section.name}] {key.name}"


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\n```sh\n(.+?)\n```", readme)
    assert match, "README.md has no marked test command"
    assert "pytest" in match.group(1)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert match.group(1) in ci_lines, ".ci/run must run the README's test command verbatim"


def test_pyproject_pins_lower_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    for requirement in requirements:
        assert ">=" in requirement, f"{requirement} has no lower bound"


def test_constraints_pin_every_runtime_dependency() -> None:
    """constraints.txt (what the image and the test command install with) pins each dependency
    of pyproject.toml to one version, which its lower bound allows."""
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        pin = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        assert pin, f"not a pin of one version: {line}"
        pins[canonicalize_name(pin.group(1))] = pin.group(2)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [(d, True) for d in project["dependencies"]]
    # Test dependencies resolved with them (agentmail-toolkit) are pinned within their bounds too.
    tests = [(d, False) for d in project["optional-dependencies"]["test"]]
    for dependency, required in runtime + tests:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        if name not in pins:
            assert not required, f"{requirement.name} is not pinned in constraints.txt"
            continue
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{requirement.name}=={pins[name]} does not satisfy {requirement.specifier}"
        )
