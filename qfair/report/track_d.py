"""The paper's Track D artifacts, from the track_d stage's outputs (results/track_d, the root
pipeline's profile): the ledger, the probe summary and the tokenizer-boundary tables, and the
``td/`` numbers. Where the stage has not run, the tables say so and the section is switched off.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qfair.io import read_json
from qfair.report.latex import ABSENT, booktabs, escape, fmt_pct, fmt_sig

FOLDER = Path("results/track_d")
METRICS = Path("metrics/track_d.json")
TABLES = ("track_d_ledger", "track_d_probes", "track_d_boundaries")
LANGUAGE_NAMES = {"he": "Hebrew", "tr": "Turkish"}
# The locale of each treebank source of corpus.treebanks (qfair/corpus/treebanks.py; a test checks
# that they agree). Not imported from there: the report stage does not depend on the corpus code.
SOURCE_LOCALES = {"htb": "he", "twt": "tr"}


def load(folder: Path = FOLDER, metrics: Path = METRICS) -> dict | None:
    """The stage's tables and metrics, or None where it has not run (or ran without treebanks)."""
    if not (folder / "ledger.csv").is_file() or not metrics.is_file() or not read_json(metrics).get("run"):
        return None
    return {name: pd.read_csv(folder / f"{name}.csv")
            for name in ("ledger", "features", "structural", "boundaries", "words", "heads")} | {
        "metrics": read_json(metrics)}


def _name(language: str) -> str:
    return LANGUAGE_NAMES.get(language, "all languages" if language == "all" else language)


def _estimate(row) -> str:
    if pd.isna(row.value):
        return "undefined"
    return f"{fmt_sig(row.value)} [{fmt_sig(row.ci_low)}, {fmt_sig(row.ci_high)}]"


def _p(value: float) -> str:
    return "--" if pd.isna(value) else fmt_sig(value, 2)


def ledger_table(data: dict) -> str:
    """Each hypothesis per language: estimate with its 95% CI, Holm-adjusted p, verdict."""
    rows = [[escape(r.id), r"\parbox[t]{0.36\linewidth}{\raggedright " + escape(r.statement) + "}",
             escape(_name(r.language)), _estimate(r), _p(r.p_holm), escape(r.verdict)]
            for r in data["ledger"].itertuples()]
    return booktabs(["ID", "Hypothesis", "Language", "Estimate [95\\% CI]", "$p_\\mathrm{Holm}$", "Verdict"],
                    rows, "llllrl", size=r"\scriptsize")


def _summary(data: dict) -> pd.DataFrame:
    """Per language and condition: mean probe accuracy over features and block layers (with the
    stage's pooling), majority baseline, best block layer's UUAS."""
    pooling = data["metrics"]["pooling"]
    features = data["features"]
    features = features[(features["pooling"] == pooling) & (features["layer"] >= 1)]
    structural = data["structural"][data["structural"]["layer"] >= 1]
    keys = ["language", "condition", "config"]
    probes = features.groupby(keys, as_index=False).agg(accuracy=("accuracy", "mean"),
                                                         majority=("majority_accuracy", "mean"))
    uuas = structural.groupby(keys, as_index=False)["uuas"].max()
    return probes.merge(uuas, on=keys, how="outer")


def probes_table(data: dict) -> str:
    order = {"full_precision": 0, "quantized": 1, "transfer": 2}
    summary = _summary(data)
    summary = summary.assign(rank=summary["condition"].map(order)).sort_values(["language", "config", "rank"])
    rows, groups = [], []
    for language, part in summary.groupby("language", sort=True):
        groups.append(len(rows))
        for r in part.itertuples():
            condition = r.condition.replace("_", " ") + ("" if r.config == "none" else f" ({r.config})")
            rows.append([escape(_name(language)), escape(condition), fmt_pct(r.accuracy), fmt_pct(r.majority),
                         fmt_pct(r.uuas)])
    return booktabs(["Language", "Condition", "Probe accuracy", "Majority", "UUAS (best layer)"], rows,
                    "llrrr", size=r"\scriptsize", groups=groups)


def boundaries_table(data: dict) -> str:
    rows = [[escape(_name(r.language)), escape(r.tokenizer), fmt_pct(r.precision),
             fmt_pct(r.recall), fmt_pct(r.f1), f"{int(r.words):,}"]
            for r in data["boundaries"].sort_values(["language", "f1"], ascending=[True, False]).itertuples()]
    return booktabs(["Language", "Tokenizer", "Precision", "Recall", "F1", "Words"], rows, "llrrrr",
                    size=r"\scriptsize")


TABLE_MAKERS = {"track_d_ledger": ledger_table, "track_d_probes": probes_table,
                "track_d_boundaries": boundaries_table}


def numbers(data: dict) -> dict[str, str]:
    """The ``td/`` keys the text quotes."""
    out = {"td/hypothesis-config": escape(data["metrics"]["hypothesis_config"]),
           "td/pooling": escape(data["metrics"]["pooling"])}
    for r in data["ledger"].itertuples():
        key = f"td/hyp/{r.id}/{r.language}"
        out[key + "/verdict"] = escape(r.verdict)
        out[key + "/estimate"] = _estimate(r)
    chosen = data["metrics"]["hypothesis_config"]
    for r in _summary(data).itertuples():
        # the hypotheses' config reads without its name (the text quotes it through td/hypothesis-config)
        key = f"td/{r.language}/{r.condition}" + ("" if r.config in ("none", chosen) else f"/{r.config}")
        out[key + "/accuracy"] = fmt_pct(r.accuracy)
        out[key + "/uuas"] = fmt_pct(r.uuas)
        if r.condition == "full_precision":
            out[f"td/{r.language}/majority"] = fmt_pct(r.majority)
    for r in data["boundaries"].itertuples():
        out[f"td/{r.language}/f1/{r.tokenizer}"] = fmt_pct(r.f1)
    words = data["words"]
    for language, part in words.groupby("language"):
        out[f"td/{language}/crossing-share"] = fmt_pct(part["crossing"].mean())
        out[f"td/{language}/multi-morpheme-words"] = f"{len(part):,}"
    heads = data["heads"]
    out["td/heads"] = str(len(heads))
    out["td/critical-heads"] = ", ".join(f"L{int(r.layer)}.h{int(r.head)}"
                                         for r in heads[heads["critical"]].itertuples())
    return out


def expected_keys(params) -> set[str]:
    """The ``td/`` keys a profile's Track D would define, known from its params alone (its
    treebank languages, configs, tokenizers and hypotheses), so that a profile whose track_d did
    not run still defines every key the text quotes (as ``n/a``)."""
    td, treebanks = params.track_d, getattr(params.corpus, "treebanks", None)
    if td is None or treebanks is None:
        return set()
    keys = {"td/hypothesis-config", "td/pooling", "td/heads", "td/critical-heads"}
    for locale in (SOURCE_LOCALES[name] for name in treebanks.pinned()):
        keys |= {f"td/{locale}/{name}" for name in ("majority", "crossing-share", "multi-morpheme-words")}
        keys |= {f"td/{locale}/f1/{name}" for name in ("qfair", *(t.name for t in params.tokenizers))}
        for config in td.configs:
            tail = "" if config == td.hypothesis_config else f"/{config}"
            for condition in ("full_precision", "quantized", "transfer"):
                prefix = f"td/{locale}/{condition}" + ("" if condition == "full_precision" else tail)
                keys |= {f"{prefix}/accuracy", f"{prefix}/uuas"}
        for rule in td.hypotheses:
            where = "all" if rule.estimate.endswith("_overlap") else locale
            keys |= {f"td/hyp/{rule.id}/{where}/verdict", f"td/hyp/{rule.id}/{where}/estimate"}
    return keys


def absent_numbers(profiles) -> dict[str, str]:
    """Every profile's ``td/`` keys as ``n/a``: what the text reads where Track D has not run."""
    return {key: ABSENT for params in profiles for key in expected_keys(params)}
