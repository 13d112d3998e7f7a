"""The README's results snapshot: a Markdown page built only from pipeline outputs."""

from __future__ import annotations

import pandas as pd

from qfair.report.tables import HEADLINE_CONFIGS


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _optional(value: float | None) -> str:
    return "n/a" if value is None else _fmt(value, 2)


def _model_line(train: dict, parameters: int, eval_metrics: dict) -> str:
    """What the model is: trained here (BLOOM, with its losses) or a published hub checkpoint."""
    if train.get("source") != "hub":
        return (f"- Model: BLOOM architecture, {parameters:,} parameters, {train['steps']} training steps; "
                f"final training loss {_fmt(train['final_train_loss'])}, dev loss "
                f"{_fmt(train['final_dev_loss']) if train['final_dev_loss'] is not None else 'n/a'} "
                "nats/token.")
    line = (f"- Model: `{train['hub_id']}` at revision `{train['revision']}` ({train['kind']}, "
            f"{train['dtype']}), {parameters:,} parameters; a published checkpoint, not trained here.")
    scoring = eval_metrics.get("test", {}).get("scoring")
    if scoring and scoring != "causal bits per byte":
        line += f" Bits per byte below are {scoring}."
    return line


def _share_order(languages, shares: dict[str, float]) -> list[str]:
    """Largest share first; languages without one last, alphabetically."""
    return sorted(languages, key=lambda lang: (lang not in shares, -shares.get(lang, 0.0), lang))


def snapshot_markdown(train: dict, eval_metrics: dict, per_language: pd.DataFrame,
                      manifest: dict, disparity: pd.DataFrame, per_language_sweep: pd.DataFrame,
                      parameters: int, ledger: dict, census: dict, confidence: float,
                      profile: str = "embedded", shares: dict[str, float] | None = None,
                      share_label: str = "train share", share_format: str = ".3f") -> str:
    """The snapshot page. ``shares`` (language -> share of training data) defaults to the
    manifest's ``train_share``; a hub model passes its published pretraining shares (a language
    without one shows n/a)."""
    test = per_language[per_language["split"] == "test"].set_index("language")
    dev = per_language[per_language["split"] == "dev"].set_index("language")
    rel4 = per_language_sweep[per_language_sweep["config"] == "rtn-w4-ch-sym"].set_index("language")
    if shares is None:
        shares = {lang: entry["train_share"] for lang, entry in manifest.items()}
    lines = [
        f"# Results snapshot ({profile} profile)",
        "",
        "Written by the `snapshot` stage from the pipeline's outputs; do not edit by hand.",
        "",
        _model_line(train, parameters, eval_metrics),
        f"- Test bits per byte: {_fmt(eval_metrics['test']['min_bits_per_byte'])} to "
        f"{_fmt(eval_metrics['test']['max_bits_per_byte'])} across "
        f"{eval_metrics['test']['languages']} languages; dev: "
        f"{_fmt(eval_metrics['dev']['min_bits_per_byte'])} to "
        f"{_fmt(eval_metrics['dev']['max_bits_per_byte'])}, "
        f"{eval_metrics['dev']['languages_below_unigram']}/{eval_metrics['dev']['languages']} "
        "languages below their byte-unigram baseline"
        + (" (fitted on dev itself: no training split)."
           if eval_metrics["dev"].get("unigram_fitted_on") == "dev" else "."),
    ]
    level = f"{confidence:.0%} CI"
    for row in (r for r in ledger["hypotheses"] if r["kind"] == "range_reduction"):
        if "value" not in row:  # NOT RUN: say why
            lines.append(f"- {row['id']}: **{row['verdict']}**: {row.get('reason', '')}.")
            continue
        lines.append(f"- {row['id']}: **{row['verdict']}**; disparity-range reduction "
                     f"{_fmt(row['value'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}], "
                     "relative change of the mean relative degradation "
                     f"{_fmt(row['mean_rel_degradation_increase'])}.")
    lines.append(f"- Weight census: class {census['class']}, largest excess kurtosis "
                 f"{_fmt(census['max_kurtosis'], 2)} (`{census['max_kurtosis_tensor']}`) among the "
                 "quantized weight matrices; embeddings "
                 f"{_optional(census.get('embed_max_kurtosis'))}; outlier "
                 f"layer(s) chosen from weights: {ledger['outlier_layers']}.")
    lines += ["", "## Hypothesis ledger (pre-registered in params.yaml; verdicts computed)", "",
              f"| id | statement | statistic [{level}] | Holm p | verdict |", "|---|---|---|---|---|"]
    for row in ledger["hypotheses"]:
        if row["verdict"] == "NOT TESTABLE":  # a descriptive estimate at most, and why it is untested
            value = f"{row.get('statistic', '')} {_fmt(row['value'])}, untested; " if "value" in row else ""
            stat = value + row["reason"]
        elif "value" in row:
            stat = (f"{row.get('statistic', '')} {_fmt(row['value'])} "
                    f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]")
        else:
            stat = row.get("reason", "")
        if "value" in row and row.get("left_out"):  # units without this test's metrics (no resource level)
            stat += f" (n={row['n']}; without {', '.join(row['left_out'])})"
        p_holm = _fmt(row["p_holm"]) if "p_holm" in row else ""
        lines.append(f"| {row['id']} | {row['statement']} | {stat} | {p_holm} | **{row['verdict']}** |")
    lines += ["", f"## Disparity of selected configs (relative degradation: NLL increase, {level})", "",
              "| config | mean rel. degradation | range | range CI | worst language |",
              "|---|---|---|---|---|"]
    for _, row in disparity[disparity["config"].isin(HEADLINE_CONFIGS)].iterrows():
        lines.append(f"| `{row['config']}` | {_fmt(row['mean'], 5)} | {_fmt(row['range'], 5)} | "
                     f"[{_fmt(row['range_ci_low'], 5)}, {_fmt(row['range_ci_high'], 5)}] | "
                     f"{row['worst_language']} |")
    lines += ["", "## Per language", "",
              f"| locale | script | {share_label} | test bpb [{level}] | dev bpb | dev unigram bpb | "
              "rel. degradation at rtn-w4-ch-sym |", "|---|---|---|---|---|---|---|"]
    for lang in _share_order(test.index, shares):
        row = test.loc[lang]
        share = format(shares[lang], share_format) if lang in shares else "n/a"
        lines.append(
            f"| {lang} | {manifest[lang]['script']} | {share} | "
            f"{_fmt(row['bits_per_byte'])} [{_fmt(row['bpb_ci_low'])}, {_fmt(row['bpb_ci_high'])}] | "
            f"{_fmt(dev.loc[lang, 'bits_per_byte'])} | {_fmt(dev.loc[lang, 'unigram_bits_per_byte'])} | "
            f"{_fmt(rel4.loc[lang, 'rel_degradation'], 5) if lang in rel4.index else 'n/a'} |")
    return "\n".join(lines) + "\n"
