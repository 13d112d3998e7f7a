"""Every stage's dvc.yaml ``deps`` cover the qfair modules its script imports, by construction.

For each stage, the modules its command runs (``qfair.stage`` and ``stages/<name>.py``) are read
with ``ast``; every ``import qfair.x`` / ``from qfair.x import y`` (``y`` a submodule or not, at
module level or inside a function: a lazy import is still a dependency) is followed, transitively,
within the qfair package. A package's ``__init__.py`` that imports or defines something counts as
imported with the package (Python runs it first). Each file found must be a dep of the stage, or
lie under a dep that is a directory; otherwise a code change would not rerun the stage.

One exception is by design (dvc.yaml's header): qfair/params.py only validates, in the
validate_params stage, and a stage that depends on that stage's marker
(results/params_validated.txt) reads the values it uses through ``params:``, so params.py and
what only it imports are not its deps.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
SCRIPT = re.compile(r"stages/\w+\.py")
PARAMS = Path("qfair/params.py")
MARKER = "results/params_validated.txt"  # validate_params' output: params.py has run and passed


def _module_file(module: str) -> Path | None:
    """``qfair.a.b`` -> qfair/a/b.py or qfair/a/b/__init__.py (relative to the repo); None if neither."""
    base = Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (REPO / candidate).is_file():
            return candidate
    return None


def _package_of(path: Path) -> str:
    """The package a file belongs to (for a package's ``__init__.py``: that package)."""
    return ".".join(path.with_suffix("").parts[:-1])


def _imported_modules(path: Path) -> set[str]:
    """The qfair modules one source file imports (static: every import statement in it)."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's own package upwards
                package = _package_of(path).split(".")
                anchor = package[: len(package) - node.level + 1]
                module = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            # `from qfair.x import y` imports the submodule qfair.x.y where there is one
            found.update(f"{module}.{alias.name}" for alias in node.names
                         if _module_file(f"{module}.{alias.name}") is not None)
    return {m for m in found if m == "qfair" or m.startswith("qfair.")}


def _runs_code(init: Path) -> bool:
    """An ``__init__.py`` that imports or defines something (not just a docstring and constants)."""
    tree = ast.parse((REPO / init).read_text(encoding="utf-8"))
    return any(isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef)
               and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
               for node in tree.body)


def _with_packages(module: str) -> list[str]:
    """``qfair.a.b`` and the packages Python initialises first: qfair, qfair.a."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@cache
def source_closure(script: str, stop: Path | None = None) -> dict[Path, str]:
    """Every qfair file ``script`` needs, each with the file that imports it (for the message);
    ``stop``: a file not followed (nor listed)."""
    needed: dict[Path, str] = {}
    todo = [Path(script)]
    while todo:
        path = todo.pop()
        for module in sorted(_imported_modules(path)):
            for name in _with_packages(module):
                file = _module_file(name)
                if file is None or file in needed or file == stop:
                    continue
                if file.name == "__init__.py" and not _runs_code(file):
                    continue
                needed[file] = str(path)
                todo.append(file)
    return needed


def _covered(file: Path, deps: list[str]) -> bool:
    posix = file.as_posix()
    return any(posix == dep.rstrip("/") or posix.startswith(dep.rstrip("/") + "/") for dep in deps)


def _deps(stage: dict) -> list[str]:
    return [dep if isinstance(dep, str) else next(iter(dep)) for dep in stage.get("deps", [])]


def _scripts(stage: dict) -> list[str]:
    """What the stage's command runs: ``python -m qfair.stage stages/<name>.py``."""
    scripts = SCRIPT.findall(stage["cmd"])
    if "-m qfair.stage" in stage["cmd"]:
        scripts.insert(0, "qfair/stage.py")
    return scripts


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_every_imported_module(name: str) -> None:
    stage = STAGES[name]
    deps = _deps(stage)
    scripts = _scripts(stage)
    assert scripts, f"stage {name}: no stages/<name>.py in its cmd {stage['cmd']!r}"
    stop = PARAMS if MARKER in deps else None
    missing = []
    for script in scripts:
        if not _covered(Path(script), deps):
            missing.append(f"{script} (the stage command runs it)")
        for file, by in source_closure(script, stop).items():
            if not _covered(file, deps):
                missing.append(f"{file.as_posix()} (imported by {by})")
    assert not missing, (f"stage {name}: dvc.yaml deps lack " + "; ".join(sorted(set(missing)))
                         + " -- add them, so that a change to that code reruns the stage")


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_listed_code_dep_exists(name: str) -> None:
    """The converse, lightly: a qfair/ or stages/ dep names a file or folder that exists."""
    for dep in _deps(STAGES[name]):
        if dep.startswith(("qfair/", "stages/")):
            assert (REPO / dep).exists(), f"stage {name}: dep {dep} does not exist (moved or deleted?)"


def test_closure_follows_submodules_packages_and_lazy_imports() -> None:
    """The derivation itself, on the repository: the pieces a stage must depend on are found."""
    evaluate = {f.as_posix() for f in source_closure("stages/evaluate.py")}
    # `from qfair.scoring import distributed` (a submodule) and what it imports in turn
    assert {"qfair/scoring/distributed.py", "qfair/scoring/causal.py"} <= evaluate
    # importing qfair.corpus.store runs qfair/corpus/__init__.py, which imports the whole package
    assert {"qfair/corpus/__init__.py", "qfair/corpus/build.py"} <= evaluate
    # a docstring-only package __init__ is not a dependency
    assert "qfair/scoring/__init__.py" not in evaluate
    # qfair.stage imports qfair.runinfo inside run_stage (lazily)
    assert "qfair/runinfo.py" in {f.as_posix() for f in source_closure("qfair/stage.py")}
