"""The paper's controlled-experiments artifacts, from the controlled_analysis stage's outputs.

Built once (the family is one, not one per profile): the figure of rho against training share
per target language (:data:`FIGURES`), the family's ledger and seed-spread tables (:data:`TABLES`)
and the ``ctl/`` numbers. Where a hypothesis' runs are pending, the ledger says so and shows the
interim estimate as interim; nothing reads as a verdict that was not reached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qfair.io import read_json
from qfair.report.latex import booktabs, escape, fmt_int, fmt_sig

FOLDER = Path("results/controlled")
METRICS = Path("metrics/controlled.json")
FIGURES = ("controlled_share",)
TABLES = ("controlled_ledger", "controlled_spread")
FIGURE_CONFIG = "rtn-w4-ch-sym"  # the figure's rho (EXP-001c's primary config)


def load(folder: Path = FOLDER, metrics: Path = METRICS) -> dict | None:
    """The stage's tables, ledger and metrics, or None where it has not run."""
    if not (folder / "hypotheses.json").is_file():
        return None
    return {"languages": pd.read_csv(folder / "languages.csv"),
            "slopes": pd.read_csv(folder / "slopes.csv"),
            "spread": pd.read_csv(folder / "seed_spread.csv"), "runs": pd.read_csv(folder / "runs.csv"),
            "ledger": read_json(folder / "hypotheses.json")["hypotheses"], "metrics": read_json(metrics)}


def share_figure(data: dict, config: str = FIGURE_CONFIG) -> Figure:
    """Per target language: rho of every share run against its training share (log axis), and
    the mean seed slope's line (the seeds with every rotation committed)."""
    rows = data["languages"]
    rows = rows[(rows["kind"] == "share") & rows["target"] & (rows["config"] == config)]
    slopes = data["slopes"]
    languages = sorted(rows["language"].unique())
    figure = Figure(figsize=(7.0, 4.4), layout="constrained")
    axes = figure.subplots(2, (len(languages) + 1) // 2, sharex=True, squeeze=False).ravel()
    levels = sorted(rows["train_share"].round(4).unique())
    for index, (ax, lang) in enumerate(zip(axes, languages, strict=False)):
        own = rows[rows["language"] == lang]
        for seed, g in own.groupby("seed"):
            ax.plot(g["train_share"], 1e3 * g["rho"], "o", ms=3.5, alpha=0.8, label=f"seed {seed}")
        fit = slopes[(slopes["outcome"] == f"rho:{config}") & (slopes["language"] == lang)]
        title = lang
        if len(fit):
            x = np.log(own["train_share"].to_numpy())
            grid = np.linspace(x.min(), x.max(), 20)
            centre = own["rho"].mean() + fit["slope"].iloc[0] * (grid - x.mean())
            ax.plot(np.exp(grid), 1e3 * centre, "-", color="black", lw=1)
            title += f" (slope {1e3 * fit['slope'].iloc[0]:.2g})"
        ax.set_xscale("log")
        ax.set_xticks(levels, [f"{100 * level:g}%" for level in levels])
        ax.minorticks_off()
        ax.set_title(title, fontsize=8)
        ax.axhline(0, color="grey", lw=0.5)
        ax.tick_params(labelsize=7)
        if index == 0:
            ax.legend(fontsize=6, loc="best")
    for ax in axes[len(languages):]:
        ax.set_visible(False)
    figure.supxlabel("training share of the run's bytes", fontsize=9)
    figure.supylabel(f"relative degradation x 1000 ({config}); slope per ln share", fontsize=8)
    return figure


def _estimate_cell(row: dict) -> str:
    if "value" in row:
        return f"{fmt_sig(row['value'])} [{fmt_sig(row['ci_low'])}, {fmt_sig(row['ci_high'])}]"
    if "interim_value" in row:
        return (f"interim {fmt_sig(row['interim_value'])} "
                f"[{fmt_sig(row['interim_ci_low'])}, {fmt_sig(row['interim_ci_high'])}]")
    return "--"


def ledger_table(data: dict) -> str:
    """The family's hypotheses: estimate (interim where runs are pending), CI, verdict."""
    body = [[escape(row["id"]),
             r"\parbox[t]{0.40\linewidth}{\raggedright " + escape(row["statement"]) + "}",
             escape(row["estimate"]).replace(r"\_", " "), _estimate_cell(row),
             escape(row["verdict"]) + (f" ({len(row['pending_runs'])} runs pending)"
                                       if row.get("pending_runs") else "")]
            for row in data["ledger"]]
    return booktabs(["ID", "Hypothesis", "Estimate", "Value [95\\% CI]", "Verdict"], body,
                    "llp{0.18\\linewidth}ll", size=r"\scriptsize")


def spread_table(data: dict) -> str:
    """Each run-level number's seed-to-seed SD over replicate runs, beside its mean."""
    body = [[escape(r.metric).replace(r"\_", " "), fmt_sig(r.mean), fmt_sig(r.seed_sd), fmt_sig(r.seed_cv),
             str(int(r.replicate_runs))]
            for r in data["spread"].itertuples()]
    return booktabs(["Number (per run)", "Mean", "Seed SD", "SD / |mean|", "Runs"], body, "lrrrr",
                    size=r"\scriptsize")


def numbers(data: dict) -> dict[str, str]:
    """The ``ctl/`` keys the text quotes."""
    metrics = data["metrics"]
    out = {"ctl/runs-committed": str(metrics["runs_committed"]),
           "ctl/runs-designed": str(metrics["runs_designed"]),
           "ctl/runs-pending": str(len(metrics["pending_runs"])),
           "ctl/seeds-complete": str(len(metrics["share_seeds_complete"]))}
    for row in data["ledger"]:
        out[f"ctl/hyp/{row['id']}/verdict"] = escape(row["verdict"])
        out[f"ctl/hyp/{row['id']}/estimate"] = _estimate_cell(row)
    for r in data["slopes"][data["slopes"]["language"] == "pooled"].itertuples():
        key = f"ctl/slope/{r.outcome.replace('|', '-given-')}"
        out[key] = fmt_sig(r.slope)
        out[key + "/ci"] = f"[{fmt_sig(r.ci_low)}, {fmt_sig(r.ci_high)}]"
    for r in data["spread"].itertuples():
        out[f"ctl/spread/{r.metric}/sd"] = fmt_sig(r.seed_sd)
        out[f"ctl/spread/{r.metric}/mean"] = fmt_sig(r.mean)
    out["ctl/levels"] = ", ".join(fmt_sig(100 * level, 2) + r"\%" for level in metrics["share_levels"])
    out["ctl/targets"] = ", ".join(escape(lang) for lang in metrics["target_languages"])
    out["ctl/seeds"] = str(len(metrics["share_seeds"]))
    runs = data["runs"]
    share_runs = runs[runs["kind"] == "share"]
    out["ctl/share/parameters"] = fmt_int(int(share_runs["parameters"].iloc[0]))
    out["ctl/share/tokens"] = fmt_int(int(share_runs["tokens_seen"].iloc[0]))
    out["ctl/share/epochs"] = fmt_sig(float(share_runs["epochs"].mean()), 2)
    out["ctl/share/max-weight-kurtosis"] = fmt_sig(share_runs["max_weight_kurtosis"].max())
    out["ctl/share/dev-loss"] = fmt_sig(share_runs["dev_loss"].mean())
    return out
