"""The validate_params stage: an invalid params.yaml stops the pipeline before any stage works.

Issue 10: a params error used to surface inside a stage script, after DVC had already deleted that
stage's outputs (uncached ones such as metrics/train.json are then gone for good), and a key no
stage reads (``foo: 1``) was accepted silently because no stage's params changed. validate_params
depends on the whole params.yaml, and every other stage depends on its output, so DVC runs it
first. The DVC test is marked slow: it runs `dvc repro` four times in a small project.
"""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qfair.params import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
STAGE = "stages/validate_params.py"
MARKER = "results/params_validated.txt"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _params(**changes: object) -> str:
    """The embedded params.yaml as text with top-level/dotted ``changes`` (``train__steps``)."""
    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = value
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("QFAIR_DEBUG", None)
    env.pop("VIRTUAL_ENV", None)
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(root),
               DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(root.parent / "dvc-site-cache"),
               GIT_CONFIG_NOSYSTEM="1", **extra)
    return env


# --- dvc.yaml ------------------------------------------------------------------------------------

def test_validate_params_is_the_first_stage_of_every_other() -> None:
    stage = STAGES["validate_params"]
    assert stage["cmd"] == f"python -m qfair.stage {STAGE}"
    assert {"params.yaml", "qfair/params.py", STAGE, "qfair/stage.py", "qfair/determinism.py",
            "qfair/errors.py"} <= set(stage["deps"])
    assert stage["outs"] == [{MARKER: {"cache": False}}]
    missing = [name for name, other in STAGES.items()
               if name != "validate_params" and MARKER not in other.get("deps", [])]
    assert missing == []


def test_marker_does_not_depend_on_the_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid params change must not change the marker, or every stage would rerun."""
    monkeypatch.chdir(tmp_path)
    main = runpy.run_path(str(REPO / STAGE), run_name="validate_params_test")["main"]
    written = []
    for text in (_params(), _params(train__steps=12, eval__seed=5)):
        (tmp_path / "params.yaml").write_text(text, encoding="utf-8")
        main()
        written.append((tmp_path / MARKER).read_text(encoding="utf-8"))
    assert written[0] == written[1] and f"schema {SCHEMA_VERSION}" in written[0]


# --- the stage as DVC runs it: one line, exit 2, traceback only with QFAIR_DEBUG=1 --------------

def _run_stage(root: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qfair.stage", STAGE], cwd=root,
                          env=_env(REPO, **extra), capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.fixture
def bad_project(tmp_path: Path) -> Path:
    (tmp_path / "stages").mkdir()
    shutil.copy2(REPO / STAGE, tmp_path / STAGE)
    (tmp_path / "params.yaml").write_text(_params(corpus__languages=["en", "fr_FR"]), encoding="utf-8")
    return tmp_path


def test_stage_error_is_one_line_naming_the_key(bad_project: Path) -> None:
    result = _run_stage(bad_project)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("qfair validate_params: error: params.yaml: invalid parameters: "
                               "corpus.languages: "), result.stderr
    assert "at least 4" in lines[0]  # the fix
    assert lines[1:] == ["  (QFAIR_DEBUG=1 shows the traceback)"]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (bad_project / MARKER).exists()


def test_stage_traceback_with_qfair_debug(bad_project: Path) -> None:
    result = _run_stage(bad_project, QFAIR_DEBUG="1")
    assert result.returncode not in (0, 2)
    assert "Traceback" in result.stderr and "ParamsError" in result.stderr
    assert "corpus.languages" in result.stderr


# --- dvc repro: an invalid params.yaml loses no output -------------------------------------------

# Stands in for train_model: reads the params it depends on and writes uncached outputs, as the real
# stages do, so if DVC ran it with a bad params.yaml its outputs would be deleted and not rewritten.
CONSUMER = """\
from pathlib import Path
from qfair.params import load_params
from qfair.stage import run_stage

def main() -> None:
    steps = load_params().train.steps
    for path in ("metrics/train.json", "results/sweep/per_language.csv"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(f"steps {steps}\\n")

if __name__ == "__main__":
    run_stage("consumer", main, timed=False)
"""


@pytest.mark.slow
def test_invalid_params_stop_dvc_repro_before_any_output_is_deleted(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "qfair", root / "qfair", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "stages").mkdir()
    shutil.copy2(REPO / STAGE, root / STAGE)
    (root / "stages/consumer.py").write_text(CONSUMER, encoding="utf-8")
    (root / "params.yaml").write_text(_params(), encoding="utf-8")
    consumer = {"cmd": "python -m qfair.stage stages/consumer.py",
                "deps": [MARKER, "qfair/stage.py", "stages/consumer.py"], "params": ["train"],
                "outs": [{"metrics/train.json": {"cache": False}},
                         {"results/sweep/per_language.csv": {"cache": False}}]}
    dvc_yaml = {"stages": {"validate_params": STAGES["validate_params"], "consumer": consumer}}
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False), encoding="utf-8")
    env = _env(root)

    def repro() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True,
                              timeout=600, check=False)

    subprocess.run(["git", "init", "-q"], cwd=root, env=env, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=root, env=env, check=True)
    first = repro()
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.findall(r"Running stage '([^']+)'", first.stdout) == ["validate_params", "consumer"]
    outputs = ("metrics/train.json", "results/sweep/per_language.csv", MARKER, "dvc.lock")
    before = {path: (root / path).read_bytes() for path in outputs}

    # a bad value of a key the consumer reads (DVC would rerun it), then a key no stage reads
    for text, key in ((_params(train__steps="ten"), "train.steps"), (_params(foo=1), "foo")):
        (root / "params.yaml").write_text(text, encoding="utf-8")
        result = repro()
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert f"invalid parameters: {key}: " in output, output
        assert "Running stage 'consumer'" not in output and "Traceback" not in output, output
        for path in outputs[:2]:
            assert (root / path).read_bytes() == before[path], path

    # fixed again: only the (cheap) marker is rewritten, identical, so the consumer stays up to date
    (root / "params.yaml").write_text(_params(eval__seed=99), encoding="utf-8")
    fixed = repro()
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert re.findall(r"Running stage '([^']+)'", fixed.stdout) == ["validate_params"]
    assert {path: (root / path).read_bytes() for path in outputs[:3]} == \
           {path: before[path] for path in outputs[:3]}
