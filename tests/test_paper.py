"""The paper states results only through generated macros, tables and figures.

These tests read the hand-written LaTeX in paper/ and dvc.yaml; they need no TeX installation and
no pipeline outputs beyond the generated files committed with the repository (paper/generated is
a git-tracked output of the report stage).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from qfair.io import NonFiniteResultError
from qfair.report import controlled, track_d
from qfair.report.build import CROSS_TABLES, FIGURES, TABLES, all_profiles, generated_names
from qfair.report.latex import booktabs, escape, fmt, fmt_sig, numbers_tex
from qfair.report.numbers import ABSENT, GPU_ONLY, PRIMARY_PREFIX, SCALE_PREFIX, absent_numbers
from qfair.report.pdf import TexMissingError, check_tex, undefined_items
from qfair.report.plots import offline_template
from qfair.report.texcheck import (
    defined_keys,
    hand_written_sources,
    input_targets,
    literal_numbers,
    missing_keys,
    quoted_keys,
)

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "paper"
GENERATED_FIXED = {"generated/numbers", "generated/appendix", "generated/tables/checklist"}


def _stage_outputs() -> dict[str, str]:
    """Output path -> the stage that writes it, from dvc.yaml."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    owners = {}
    for name, stage in stages.items():
        for out in stage.get("outs", []):
            owners[next(iter(out)) if isinstance(out, dict) else out] = name
    return owners


def test_no_result_is_typed_into_the_latex() -> None:
    sources = hand_written_sources(PAPER)
    assert PAPER / "main.tex" in sources and len(sources) > 3
    typed = {str(p.relative_to(REPO)): literal_numbers(p.read_text(encoding="utf-8")) for p in sources}
    assert not {path: numbers for path, numbers in typed.items() if numbers}, typed


@pytest.mark.parametrize("tex", [
    "The range is 0.37 across languages.",
    r"Spearman $\rho_s = -0.56$.",
    "We trained 5208064 parameters.",
    r"a gain of 12\% at 4-bit",
    r"\caption{Range 0.004 (95\% CI)}",
    r"accuracy of 3 languages",
])
def test_typed_numbers_are_found(tex: str) -> None:
    assert literal_numbers(tex)


@pytest.mark.parametrize("tex", [
    r"The range is \qfnum{disp/rtn-w4-ch-sym/range} (EXP-001, B-003, EXP-007/008).",
    r"\includegraphics[width=0.9\linewidth]{exp007_scatter} \label{fig:exp007_scatter}",
    r"a 4-bit model, int8 and nf4, \texttt{rtn-w4-ch-sym}, UTF-8, SHA-256 % 0.37 in a comment",
    r"\texttt{w8a8} and \texttt{smoothquant-a0.5-w4a8-tensor} are config names",
    r"rounding noise $\frac{a^2}{3 \cdot 4^M}$ \citep{banner2019aciq}",
])
def test_allowed_digits_are_not_results(tex: str) -> None:
    assert literal_numbers(tex) == []


def test_every_input_is_prose_or_a_report_output() -> None:
    owners = _stage_outputs()
    assert owners.get("paper/generated") == "report", "paper/generated must be an output of the report stage"
    paper_deps = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["paper"]["deps"])
    tables = {f"generated/tables/{name}"
              for name in generated_names(TABLES) | set(CROSS_TABLES) | set(controlled.TABLES)
              | set(track_d.TABLES)}
    # the root profile's and the scale profile's (scale/<name>), the controlled family's and Track D's
    figures = generated_names(FIGURES) | set(controlled.FIGURES)
    problems = []
    for source in hand_written_sources(PAPER):
        for command, target in input_targets(source.read_text(encoding="utf-8")):
            if command == "includegraphics":
                ok = target in figures
            elif command == "bibliography":
                ok = (PAPER / f"{target}.bib").is_file() and f"paper/{target}.bib" in paper_deps
            elif target.startswith("generated/"):
                ok = target in tables or target in GENERATED_FIXED
            else:  # hand-written prose: exists, is checked above and is a dependency of the paper stage
                ok = (PAPER / f"{target}.tex").is_file() and (
                    f"paper/{target}.tex" in paper_deps or f"paper/{Path(target).parent}" in paper_deps)
            if not ok:
                problems.append(f"{source.name}: \\{command}{{{target}}}")
    assert not problems, problems


def test_every_quoted_number_is_generated() -> None:
    numbers = PAPER / "generated" / "numbers.tex"
    if not numbers.is_file():
        pytest.skip("paper/generated/numbers.tex is written by `dvc repro report`")
    assert missing_keys(PAPER) == {}
    used = {key for p in hand_written_sources(PAPER) for key in quoted_keys(p.read_text(encoding="utf-8"))}
    assert len(used) > 50 and used <= defined_keys(numbers.read_text(encoding="utf-8"))


def test_missing_key_is_reported(tmp_path: Path) -> None:
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated" / "numbers.tex").write_text(numbers_tex({"a/b": "1"}), encoding="utf-8")
    (tmp_path / "main.tex").write_text(r"\qfnum{a/b} and \qfnum{c/d}", encoding="utf-8")
    assert missing_keys(tmp_path) == {str(tmp_path / "main.tex"): ["c/d"]}


def test_numbers_file_defines_escaped_keys_and_refuses_nan() -> None:
    text = numbers_tex({"eval/test/max": fmt(3.90876), "census/tensor": escape("word_embeddings")})
    assert defined_keys(text) == {"eval/test/max", "census/tensor"}
    assert r"{3.909}" in text and r"word\_embeddings" in text
    with pytest.raises(ValueError, match="number key"):
        numbers_tex({"bad key": "1"})
    with pytest.raises(NonFiniteResultError):
        fmt(math.nan)
    assert fmt(-0.0001) == "0.000" and fmt_sig(0.000406123) == "0.000406" and fmt_sig(12.34) == "12.3"


def test_booktabs_checks_its_shape() -> None:
    table = booktabs(["a", "b"], [["1", "2"]], r"lp{3cm}")
    assert r"\toprule" in table and r"\bottomrule" in table and "1 & 2" in table
    with pytest.raises(ValueError, match="columns"):
        booktabs(["a", "b"], [["1", "2"]], "l")
    with pytest.raises(ValueError, match="row 0"):
        booktabs(["a", "b"], [["1"]], "ll")


def test_undefined_references_are_found_in_a_log() -> None:
    log = ("LaTeX Warning: Reference `fig:missing' on page 3 undefined on input line 9.\n"
           "LaTeX Warning: Citation `nobody2020' on page 4 undefined on input line 2.\n")
    assert undefined_items(log) == ["fig:missing", "nobody2020"]
    assert undefined_items("LaTeX Warning: There were undefined references.") != []
    assert undefined_items("Output written on main.pdf (9 pages).") == []


def test_missing_tex_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TexMissingError, match="latexmk"):
        check_tex()


def test_offline_plots_template_inlines_scripts_and_keeps_dvc_placeholder() -> None:
    page = offline_template(["var a = '</script>';", "var b = 2;"])
    assert "{plot_divs}" in page and "http" not in page
    assert page.count("<script>") == 2 and "<\\/script>" in page
    config = (REPO / ".dvc" / "config").read_text(encoding="utf-8")
    assert "html_template = ../results/plots/offline.html" in config
    assert _stage_outputs()["results/plots/offline.html"] == "plots_template"


def test_absent_numbers_cover_the_known_families_only() -> None:
    """A profile's missing data reads n/a within known families; any other key stays undefined."""
    profiles = all_profiles()
    paper = next(profile for profile in profiles if profile.profile == "paper")
    results = SimpleNamespace(
        ledger={"hypotheses": [
            {"id": "EXP-001", "kind": "correlation", "verdict": "NOT RUN"},
            {"id": "EXP-007", "kind": "correlation", "verdict": "REJECTED", "value": 0.1},
        ]},
        disparity=pd.DataFrame({"config": ["rtn-w4-ch-sym"]}),
        eval_metrics={"dev": {}, "test": {}},
        premium=pd.DataFrame({"tokenizer": ["bloom-560m"]}),
    )
    absent = absent_numbers({"hyp/EXP-001/verdict": "NOT RUN"}, results, paper, profiles)
    assert set(absent.values()) == {ABSENT}
    assert absent["hyp/EXP-001/value"] == ABSENT and "hyp/EXP-001/verdict" not in absent  # kept
    assert not any(key.startswith("hyp/EXP-007/") for key in absent)  # it ran: its keys are its own
    assert absent["hyp/EXP-027/verdict"] == absent["hyp/EXP-027/p-holm"] == ABSENT  # not in this ledger
    assert not any(key.startswith(("hyp/EXP-023/", "hyp/EXP-999/")) for key in absent)  # untested
    assert absent["disp/rtn-w4-tensor-sym/range-ci"] == ABSENT and "disp/rtn-w4-ch-sym/range" not in absent
    assert "disp/rtn-w7-ch-sym/range" not in absent  # a config no registry names
    assert absent["eval/udhr/languages"] == ABSENT and not any(k.startswith("eval/test/") for k in absent)
    assert absent["tok/qfair/mean"] == ABSENT and "tok/bloom-560m/mean" not in absent
    # EXP-037's rule is pre-registered by the embedded profile; the paper profile does not run it
    assert absent["rule/EXP-037/min-range-reduction"] == ABSENT
    assert "rule/EXP-999/threshold" not in absent


def _zipf_allocation() -> bool:
    from qfair.params import load_params

    return load_params(PAPER.parent / "params.yaml").corpus.training_share.mode == "zipf"


def test_the_embedded_numbers_have_no_absent_values() -> None:
    numbers = PAPER / "generated" / "numbers.tex"
    if not numbers.is_file():
        pytest.skip("paper/generated/numbers.tex is written by `dvc repro report`")
    # Only a NOT TESTABLE hypothesis lacks values by design (no CI, no p-values at its n), and the
    # GPU training record and activation outliers a CPU run does not produce. The scale profile's
    # keys (scale/, and primary/ once it has run) are its own.
    ledger = json.loads((PAPER.parent / "results" / "hypotheses.json").read_text(encoding="utf-8"))
    untestable = {r["id"] for r in ledger["hypotheses"] if r["verdict"] == "NOT TESTABLE"}
    absent = re.findall(r"\\@namedef\{qf@num@([^}]*)\}\{n/a\}", numbers.read_text(encoding="utf-8"))
    root = [key for key in absent if not key.startswith((SCALE_PREFIX, PRIMARY_PREFIX))]
    # set/zipf is the Zipf exponent, unset unless corpus.training_share.mode is zipf
    unset = set() if _zipf_allocation() else {"set/zipf"}
    # a config only another profile sweeps (the scale profile's extra activation configs) has its
    # disp/ keys defined as n/a here
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    swept = set(params["compress"]["configs"])
    elsewhere = {key for key in root if key.startswith("disp/") and key.split("/")[1] not in swept}
    assert [key for key in root if not (key.startswith("hyp/") and key.split("/")[1] in untestable)
            and key not in GPU_ONLY and key not in unset and key not in elsewhere] == []
