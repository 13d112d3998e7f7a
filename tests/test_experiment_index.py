"""The experiment index: every catalogue entry resolves, and docs/experiments.md is current."""

from pathlib import Path

import pytest
import yaml

from qfair.report.experiments import CATALOGUE, appendix_tex
from qfair.report.index import (
    function_file,
    index_markdown,
    paper_labels,
    registered_hypotheses,
    resolve_function,
)

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
HYPOTHESES = registered_hypotheses(ROOT / "params.yaml", ROOT / "controlled" / "params.yaml")
LABELS = paper_labels(ROOT / "paper")
BUILT = [e for e in CATALOGUE if not e.not_run]


def _outs(stage: str) -> list[str]:
    return [next(iter(o)) if isinstance(o, dict) else o
            for key in ("outs", "metrics", "plots") for o in STAGES[stage].get(key, [])]


def test_ids_are_unique():
    ids = [e.id for e in CATALOGUE]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("experiment", BUILT, ids=lambda e: e.id)
def test_built_experiment_resolves(experiment):
    assert experiment.stages and experiment.functions and experiment.outputs, experiment.id
    for stage in experiment.stages:
        assert stage in STAGES, f"{experiment.id}: no DVC stage {stage!r}"
        assert (ROOT / "stages" / f"{stage}.py").is_file(), f"{experiment.id}: no stages/{stage}.py"
    for dotted in experiment.functions:
        assert callable(resolve_function(dotted)), f"{experiment.id}: {dotted} is not callable"
        assert (ROOT / function_file(dotted)).is_file()
    declared = [o for stage in experiment.stages for o in _outs(stage)]
    for output in experiment.outputs:
        assert any(output == d or output.startswith(d.rstrip("/") + "/") for d in declared), (
            f"{experiment.id}: {output} is not an output of {experiment.stages}")
    for figure in experiment.figures:
        assert f"fig:{figure}" in LABELS, f"{experiment.id}: no paper label fig:{figure}"


def test_every_hypothesis_has_an_experiment():
    listed = {h for e in CATALOGUE for h in e.hypotheses}
    assert {h["id"] for h in HYPOTHESES} <= listed


def test_appendix_labels_every_experiment():
    tex = appendix_tex({"hypotheses": []}, set(), set(), "embedded")
    for experiment in CATALOGUE:
        assert rf"\label{{{experiment.label}}}" in tex


def test_unresolvable_function_fails():
    with pytest.raises((ImportError, AttributeError)):
        resolve_function("qfair.quant.rtn.no_such_function")


def test_docs_index_is_current():
    expected = index_markdown(HYPOTHESES, LABELS)
    committed = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    assert committed == expected, "docs/experiments.md is stale: run `qfair index`"
