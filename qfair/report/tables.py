"""The paper's tables as booktabs LaTeX, built from pipeline tables (no number typed here)."""

from __future__ import annotations

import pandas as pd

from qfair.report.latex import ABSENT, REL, booktabs, escape, fmt, fmt_ci, fmt_int, fmt_pct, fmt_sig
from qfair.report.results import Results

HEADLINE = "rtn-w4-ch-sym"  # EXP-001's config: the per-language figure, scatter and table show it
HEADLINE_CONFIGS = [
    "rtn-w8-ch-sym",
    "rtn-w4-tensor-sym",
    "rtn-w4-ch-sym",
    "rtn-w4-g128-sym",
    "rtn-w3-ch-sym",
    "rtn-w2-ch-sym",
    "bnb-int8",
    "bnb-nf4",
    "bnb-fp4",
    "prune-magnitude-tensor-50",
    "prune-wanda-50",
]
CLIPPING_CONFIGS = [
    f"{method}-w{bits}-ch{suffix}"
    for bits in (4, 3)
    for method, suffix in (
        ("rtn", "-sym"),
        ("mse", ""),
        ("aciq-laplace", ""),
        ("aciq-gaussian", ""),
        ("aciq-mix", ""),
        ("laaciq-uniform", ""),
        ("laaciq-resource", ""),
        ("laaciq-minimax", ""),
        ("laaciq-reference", ""),
        ("oracle", ""),
    )
]


def _ci_cell(row: pd.Series, column: str) -> str:
    return f"{fmt_sig(row[column])} [{fmt_sig(row[f'{column}_ci_low'])}, {fmt_sig(row[f'{column}_ci_high'])}]"


def disparity_table(disparity: pd.DataFrame, configs: list[str], groups: tuple[int, ...] = ()) -> str:
    """Range, worst language and mean relative degradation (with CIs) of the listed configs in the sweep;
    ``groups``: row indices a rule separates from the rows above (:func:`qfair.report.latex.booktabs`)."""
    rows = disparity.set_index("config")
    body = [
        [
            r"\texttt{" + escape(name) + "}",
            _ci_cell(rows.loc[name], "range"),
            escape(rows.loc[name, "worst_language"]),
            _ci_cell(rows.loc[name], "mean"),
        ]
        for name in configs
        if name in rows.index
    ]
    return booktabs(
        ["config", f"range of ${REL}$", "worst", f"mean ${REL}$"], body, "llll", size=r"\footnotesize",
        groups=groups,
    )


def clipping_table(disparity: pd.DataFrame) -> str:
    present = [name for name in CLIPPING_CONFIGS if name in set(disparity["config"])]
    four = sum(name.endswith(("w4-ch", "w4-ch-sym")) for name in present)
    return disparity_table(disparity, present, groups=(four,))  # a rule between the bit widths


def _estimate(row: dict) -> str:
    if row["verdict"] == "NOT TESTABLE":  # the appendix gives the reason in full
        value = f"{fmt(row['value'])}; " if row.get("value") is not None else ""
        if "min_p" not in row:  # a constant metric: no test exists at any n
            return rf"{value}$n$ = {int(row['n'])}: constant"
        return rf"{value}$n$ = {int(row['n'])}: min.\ $p$ = {fmt_sig(row['min_p'])}"
    if row["kind"] == "not_run" or row.get("value") is None:  # not run: no estimate
        return "--"
    value = fmt(row["value"])
    if row.get("ci_low") is not None:
        value += " " + fmt_ci(row["ci_low"], row["ci_high"])
    return value


def ledger_table(ledger: dict) -> str:
    """Every pre-registered hypothesis: statistic, estimate with CI, Holm p, verdict."""
    body = []
    for row in ledger["hypotheses"]:
        statistic = escape(row.get("statistic", "--")).replace(r"\_", " ")
        p_holm = fmt(row["p_holm"]) if row.get("p_holm") is not None else "--"
        body.append(
            [
                escape(row["id"]),
                r"\parbox[t]{0.36\linewidth}{\raggedright " + escape(row["statement"]) + "}",
                statistic,
                _estimate(row),
                p_holm,
                r"\textsc{" + escape(row["verdict"].lower()) + "}",
            ]
        )
    return booktabs(
        ["id", "hypothesis", "statistic", "estimate [CI]", "Holm $p$", "verdict"],
        body,
        "llllll",
        size=r"\scriptsize",
    )


def per_language_table(results: Results, shares: dict[str, float], published: bool = False) -> str:
    """Per language: script, training share, test bits per byte [CI], unigram, 4-bit relative
    degradation [CI], B*.

    ``shares`` (language -> fraction, qfair.analysis.resource) are the corpus's training shares or,
    ``published``, a hub model's published pretraining shares, shown as "pretraining share" with
    ``n/a`` for a language without one (listed last).
    """
    test = results.per_language[results.per_language["split"] == "test"].set_index("language")
    rel = results.sweep[results.sweep["config"] == HEADLINE].set_index("language")
    bstar = results.threshold_bits[results.threshold_bits["granularity"] == "channel"].set_index("language")
    manifest = results.manifest["languages"]
    body = []
    for language in sorted(test.index, key=lambda lang: (lang not in shares, -shares.get(lang, 0.0))):
        row = test.loc[language]
        if language not in shares:
            share = ABSENT
        elif published:  # published shares span orders of magnitude
            share = fmt_sig(100 * shares[language], 2) + r"\%"
        else:
            share = fmt_pct(shares[language], 2)
        cells = [
            escape(language),
            escape(manifest[language]["name"]),
            escape(row["script"]),
            share,
            f"{fmt(row['bits_per_byte'])} {fmt_ci(row['bpb_ci_low'], row['bpb_ci_high'])}",
            fmt(row["unigram_bits_per_byte"]),
        ]
        if language in rel.index:
            r = rel.loc[language]
            cells.append(
                f"{fmt_sig(r['rel_degradation'], 2)} [{fmt_sig(r['rel_degradation_ci_low'], 2)}, "
                f"{fmt_sig(r['rel_degradation_ci_high'], 2)}]"
            )
        else:
            cells.append("--")
        cells.append(
            str(int(bstar.loc[language, "b_star"]))
            if language in bstar.index and pd.notna(bstar.loc[language, "b_star"])
            else "--"
        )
        body.append(cells)
    header = [
        "code",
        "language",
        "script",
        "pretraining share" if published else "train share",
        "test bits/byte [CI]",
        "unigram",
        f"${REL}$ RTN W4 [CI]",
        r"$B^*$",
    ]
    return booktabs(header, body, "lllrlrlr", size=r"\scriptsize")


def tokenizer_table(premium: pd.DataFrame) -> str:
    rows = []
    for (tokenizer, split), group in premium.groupby(["tokenizer", "split"]):
        worst = group.loc[group["premium"].idxmax()]
        rows.append(
            (
                float(group["premium"].mean()),
                [
                    escape(tokenizer),
                    escape(split),
                    fmt(float(group["premium"].mean()), 2),
                    fmt(float(worst["premium"]), 2),
                    escape(worst["language"]),
                    fmt(float(group["tokens_per_byte"].mean()), 3),
                ],
            )
        )
    body = [cells for _, cells in sorted(rows, key=lambda item: (item[1][1], item[0]))]
    return booktabs(
        ["tokenizer", "split", "mean premium", "max premium", "worst", "tokens/byte"],
        body,
        "llrrlr",
        size=r"\footnotesize",
    )


def census_table(tensors: pd.DataFrame) -> str:
    """Excess kurtosis by component, per model (final model and checkpoints)."""
    weights = tensors[tensors["kind"] == "weight"]
    body = []
    for (model, component), group in weights.groupby(["model", "component"], sort=True):
        body.append(
            [
                escape(model),
                escape(component),
                str(len(group)),
                fmt(float(group["excess_kurtosis"].mean()), 2),
                fmt(float(group["excess_kurtosis"].max()), 2),
                fmt(float(group["max_abs_over_std"].max()), 1),
            ]
        )
    return booktabs(
        ["model", "component", "tensors", "mean kurtosis", "max kurtosis", r"max $|w|/\sigma$"],
        body,
        "llrrrr",
        size=r"\scriptsize",
    )


def checklist_table(facts: list[tuple[str, str]]) -> str:
    return booktabs(
        ["item", "value"], [[escape(k), v] for k, v in facts], r"lp{0.62\linewidth}", size=r"\footnotesize"
    )


TRAINING_ROWS = (  # metrics/train.json field, label, format; a field the run did not record is left out
    ("parameters", "parameters", lambda v: fmt_int(v)),
    ("steps", "steps run", lambda v: str(int(v))),
    ("model_step", "model step (best dev loss)", lambda v: str(int(v))),
    ("stopped_early", "stopped early", lambda v: "yes" if v else "no"),
    ("tokens_seen", "tokens seen", lambda v: fmt_int(v)),
    ("epochs", "epochs", lambda v: fmt(v, 2)),
    ("epochs_at_model_step", "epochs at the model step", lambda v: fmt(v, 2)),
    ("final_train_loss", "final train loss (nats/token)", fmt),
    ("final_dev_loss", "final dev loss (nats/token)", fmt),
    ("train_loss_at_model_step", "train loss at the model step", fmt),
    ("dev_loss_at_model_step", "dev loss at the model step", fmt),
    ("train_dev_gap", "dev $-$ train gap", fmt),
    ("tokens_per_second", "tokens/s", lambda v: fmt_int(round(v))),
    ("mfu", "MFU (of the measured peak)", fmt_pct),
    ("train_seconds", "training time (s)", lambda v: fmt_int(round(v))),
    ("device", "device", escape),
    ("precision", "precision", escape),
)


def training_table(train: dict) -> str:
    """The training record (metrics/train.json): steps, losses and, of a GPU run, throughput and MFU."""
    body = [[label, format_value(train[field])] for field, label, format_value in TRAINING_ROWS
            if train.get(field) is not None]
    return booktabs(["training", "value"], body, "lr", size=r"\footnotesize")


def outliers_table(outliers: pd.DataFrame | None, profile: str) -> str:
    """Per-language activation outlier statistics (every ``act_*`` column), or a note without them."""
    if outliers is None:
        return not_run_note(f"Activation outliers per language are not produced by the {profile} profile.")
    columns = [c for c in outliers.columns if c.startswith("act_")]
    body = [[escape(row["language"]), *(fmt_sig(row[c]) if pd.notna(row[c]) else "--" for c in columns)]
            for _, row in outliers.sort_values("language").iterrows()]
    header = ["language", *(escape(c.removeprefix("act_").replace("_", " ")) for c in columns)]
    return booktabs(header, body, "l" + "r" * len(columns), size=r"\scriptsize")


def replication_table(rows: list[tuple[str, str, str]]) -> str:
    """Verdicts of the scale profile and of the replication, hypothesis by hypothesis."""
    body = [[escape(rule), *(r"\textsc{" + escape(v.lower()) + "}" for v in (mine, theirs)),
             "yes" if mine == theirs else "no"] for rule, mine, theirs in rows]
    return booktabs(["id", "scale", "replication", "agree"], body, "lllc", size=r"\footnotesize")


def not_run_note(text: str) -> str:
    """What a table file holds when its data does not exist (a profile that has not run)."""
    return r"\emph{" + escape(text) + "}\n"
