"""The paper's generated prose: sentences whose wording follows params, verdicts and templates.

Numbers stay in :mod:`qfair.report.numbers`; these functions pick and fill the sentences around
them (paper/templates/text.yaml), so the prose cannot contradict the ledger or params.yaml.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from qfair.params import Params
from qfair.report.latex import escape, fmt_pct
from qfair.report.results import Results


def range_change(reduction: float, target: float) -> str:
    """A clause for a relative range reduction short of ``target``, worded by its sign.

    ``0.032`` -> "narrows the range by only 3.2%, less than the pre-registered 20%";
    ``-0.032`` -> "widens the range by 3.2% instead of narrowing it by the pre-registered 20%".
    """
    goal = f"the pre-registered {fmt_pct(target, 0)}"
    if reduction > 0:
        return f"narrows the range by only {fmt_pct(reduction)}, less than {goal}"
    if reduction < 0:
        return f"widens the range by {fmt_pct(-reduction)} instead of narrowing it by {goal}"
    return f"leaves the range unchanged instead of narrowing it by {goal}"


def narrative(results: Results, params: Params) -> dict[str, str]:
    """Sentences whose wording depends on verdicts, so the prose cannot contradict the ledger.

    The clipping sentence measures the per-language oracle against the baseline of the
    pre-registered LA-ACIQ rule, with that rule's own threshold.
    """
    verdicts = {row["id"]: row["verdict"] for row in results.ledger["hypotheses"]}
    mechanisms = [verdicts.get(rule) for rule in ("EXP-007", "EXP-008", "EXP-033")]
    if all(v == "SUPPORTED" for v in mechanisms):
        mechanism = "The mechanisms proposed by the earlier prototype are supported on this model"
    elif any(v == "SUPPORTED" for v in mechanisms):
        mechanism = "Only part of the mechanisms proposed by the earlier prototype is supported on this model"
    else:
        mechanism = "None of the mechanisms proposed by the earlier prototype is supported on this model"
    rows = results.disparity.set_index("config")["range"]
    rule = next((r for r in params.hypotheses if r.kind == "range_reduction"), None)
    oracle_gain = None
    if rule is not None:
        widths = results.disparity.set_index("config")["bits"]  # the sweep's table names each width
        oracle = f"oracle-w{widths.get(rule.treatment)}-ch"
        if {oracle, rule.baseline} <= set(rows.index):
            oracle_gain = 1 - rows[oracle] / rows[rule.baseline]
    if rule is not None and verdicts.get(rule.id) == "SUPPORTED":
        clipping = "language-aware clipping narrows the disparity as pre-registered"
    elif oracle_gain is not None and oracle_gain < rule.min_range_reduction:
        clipping = (
            "the per-language oracle shows why: even clipping tuned for each language alone "
            f"{range_change(oracle_gain, rule.min_range_reduction)}, "
            "so the disparity is not caused by the clipping range"
        )
    else:
        clipping = (
            "the per-language oracle narrows the range more than any shared clipping, so part of the "
            "disparity could be reached by per-language clipping that weights cannot share"
        )
    return {"text/mechanisms": mechanism, "text/clipping": clipping,
            "text/laaciq-result": _laaciq_result(rule)}


def _laaciq_result(rule) -> str:
    """EXP-031's outcome as a clause: the range reduction, its CI and the verdict."""
    if rule is None:
        return "no language-aware clipping test is pre-registered in this profile"
    return (f"language-aware clipping reduces the disparity range by \\qfnum{{hyp/{rule.id}/value-pct}} "
            f"(\\qfnum{{hyp/{rule.id}/ci-pct}}; the pre-registered target is a reduction of at least "
            f"{fmt_pct(rule.min_range_reduction)}), so its test is "
            f"\\textsc{{\\qfnum{{hyp/{rule.id}/verdict}}}}")


TEMPLATES = Path(__file__).resolve().parents[2] / "paper" / "templates" / "text.yaml"


def load_templates(path: Path | str = TEMPLATES) -> dict[str, dict[str, str]]:
    """The paper's profile-dependent sentences: ``{key: {variant: LaTeX}}`` (paper/templates)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def _trend(first: float, last: float) -> str:
    return "grows" if last > first else "falls" if last < first else "stays the same"


def profile_text(results: Results, params: Params, templates: dict[str, dict[str, str]]) -> dict[str, str]:
    """Sentences that state what the profile is (a model trained here or a published checkpoint)
    and what it measured; ``<field>`` in a template is filled from the run (hub checkpoint facts
    from metrics/train.json, the direction of the kurtosis over training)."""
    source = params.model.source
    train = results.train_metrics
    facts = (
        {field: escape(train[field]) for field in ("hub_id", "revision", "kind", "dtype")}
        if source == "hub" else {}
    )
    steps = results.checkpoints.sort_values("step")
    if steps.empty:
        kurtosis = templates["kurtosis-over-training"]["none"]
    else:
        facts["trend"] = _trend(float(steps["max_kurtosis"].iloc[0]), float(steps["max_kurtosis"].iloc[-1]))
        untestable = any(r["id"] == "EXP-027" and r["verdict"] == "NOT TESTABLE"
                         for r in results.ledger["hypotheses"])
        kurtosis = templates["kurtosis-over-training"]["not-testable" if untestable else "tested"]

    if source == "train":
        facts["allocation"] = allocation_text(params)
        facts["schedule"] = schedule_text(params)

    def fill(template: str) -> str:
        for field, value in facts.items():
            template = template.replace(f"<{field}>", value)
        return template

    corpus = "bible" if source == "train" and params.corpus.train_source == "bible" else source
    texts = {key: templates[key].get(corpus if key == "corpus-description" else source)
             for key in ("model-summary", "corpus-description", "model-description", "limitations")}
    return {f"text/{key}": fill(text) for key, text in
            {**texts, "kurtosis-over-training": kurtosis}.items()}


def allocation_text(params: Params) -> str:
    """How the profile sets resource levels, in words (params.corpus.training_share)."""
    share = params.corpus.training_share
    if share.mode == "published":
        return ("the natural (not upsampled) per-language shares of the CC100-XL pretraining "
                "mixture~\\citep{lin2022xglm}") if share.published.table == "xglm" else (
                f"the published shares of {escape(share.published.table)}")
    if share.mode == "zipf":
        return "a seeded Zipf allocation (exponent \\qfnum{set/zipf})"
    return {"uniform": "a uniform allocation", "explicit": "the shares listed in params"}[share.mode]


def schedule_text(params: Params) -> str:
    """The checkpoint schedule and stopping rule, in words (params.train)."""
    train = params.train
    if train.checkpoint_schedule == "log":
        text = f"with {train.log_checkpoints} log-spaced checkpoints from step {train.checkpoint_every}"
    else:
        text = f"with a checkpoint every {train.checkpoint_every} steps"
    if train.early_stopping_patience is not None:
        text += (f", stopped once the dev loss (measured every {train.eval_every} steps) has not "
                 f"improved for {train.early_stopping_patience} measurements, keeping the weights of "
                 "the best dev loss")
    return text


def _verdicts(results: Results) -> dict[str, str]:
    return {row["id"]: row["verdict"] for row in results.ledger["hypotheses"]}


def compared_verdicts(primary: Results, replication: Results) -> list[tuple[str, str, str]]:
    """``(id, primary verdict, replication verdict)`` of every hypothesis both ledgers test (run by
    both: NOT RUN in either is left out), in the primary ledger's order."""
    mine, theirs = _verdicts(primary), _verdicts(replication)
    return [(rule, verdict, theirs[rule]) for rule, verdict in mine.items()
            if rule in theirs and "NOT RUN" not in (verdict, theirs[rule])]


def _id_list(ids: list[str]) -> str:
    return ", ".join(ids[:-1]) + (" and " if len(ids) > 1 else "") + ids[-1] if ids else ""


def replication_text(results: Results, scale: Results | None, templates: dict[str, dict[str, str]]) -> str:
    """Where the replication (root profile) agrees with the scale profile, hypothesis by hypothesis."""
    if scale is None:
        return templates["replication"]["not-run"]
    rows = compared_verdicts(scale, results)
    agree = [rule for rule, mine, theirs in rows if mine == theirs]
    differ = [rf"{rule} (\textsc{{{escape(mine.lower())}}} at scale, \textsc{{{escape(theirs.lower())}}} "
              "in the replication)" for rule, mine, theirs in rows if mine != theirs]
    fields = {
        "agree": str(len(agree)),
        "compared": str(len(rows)),
        "agree-list": escape(_id_list(agree)) or "none",
        "differences": "; ".join(differ),
    }
    text = templates["replication"]["compared" if differ else "compared-all-agree"]
    for field, value in fields.items():
        text = text.replace(f"<{field}>", value)
    return text
