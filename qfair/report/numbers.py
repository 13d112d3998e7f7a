"""Every number the paper's text quotes, keyed for ``\\qfnum{key}``.

Keys are systematic (``hyp/EXP-001/value``, ``disp/rtn-w4-ch-sym/range``, ``eval/test/max``), so
the text can quote any hypothesis or config without new code. Formatting lives here, once.

Two profiles' results coexist (:func:`report_numbers`): the root pipeline's keys as they are, the
scale profile's (``scale/``, the primary evidence) under ``scale/`` (``scale/hyp/EXP-001/value``),
and ``primary/`` repeats the primary profile's keys (the scale profile's when it has run, else the
root's) for the abstract and discussion. Without scale results every ``scale/`` key reads n/a and
the generated text says that the scale profile has not been run.

A profile does not produce everything the text quotes (the paper profile has no training split,
no training losses and no UDHR; its sweep runs fewer configs). :func:`absent_numbers` defines the
keys of those families as :data:`ABSENT` ("n/a"), never a guessed value. The families are derived
from the registries (every profile's hypotheses, configs, splits and tokenizers, the report's
table configs), so a key outside every family still stops the LaTeX build.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import yaml

from qfair.analysis.ledger import REL_PREFIX
from qfair.params import Params
from qfair.quant.aciq import optimal_clip_ratio
from qfair.report.latex import ABSENT, escape, fmt, fmt_ci, fmt_int, fmt_pct, fmt_sig
from qfair.report.results import Results
from qfair.report.tables import CLIPPING_CONFIGS, HEADLINE_CONFIGS
from qfair.report.texcheck import QFNUM
from qfair.report.track_b import track_b_numbers

VERDICTS = ("SUPPORTED", "REJECTED", "INCONCLUSIVE", "NOT TESTABLE", "NOT RUN")
# Keys _hypotheses writes for a hypothesis that ran, by kind (those of absent ones become ABSENT).
HYPOTHESIS_FIELDS = {
    "correlation": ("value", "sign", "ci", "p", "p-holm", "partial-r", "partial-p", "pearson-r",
                    "permutation-p", "n", "loo"),
    "sign_test": ("value", "sign", "ci", "p", "p-holm", "n"),
    "laaciq_vs_aciq": ("value", "sign", "ci", "value-pct", "ci-pct", "mean-increase-pct"),
    "overlap": ("value", "sign", "ci", "p", "p-holm", "n"),
}
DISPARITY_FIELDS = ("range", "range-ci", "mean", "mean-ci", "worst", "worst-ci", "worst-language")
EVAL_FIELDS = ("min", "max", "mean", "unigram-mean", "below-unigram", "languages")
TOKENIZER_FIELDS = ("mean", "max", "max-language")
PROJECT_TOKENIZER = "qfair"  # the premium stage's name for a tokenizer trained here
# The GPU training record in metrics/train.json (qfair.models.train.run_record): field -> key,
# format. A CPU run records none of it (the keys read n/a).
TRAIN_RECORD = {
    "tokens_per_second": ("train/tokens-per-second", lambda v: fmt_int(round(v))),
    "mfu": ("train/mfu", fmt_pct),
    "epochs": ("train/epochs", lambda v: fmt(v, 2)),
    "epochs_at_model_step": ("train/epochs-at-model-step", lambda v: fmt(v, 2)),
    "train_dev_gap": ("train/gap", fmt),
    "model_step": ("train/model-step", lambda v: str(int(v))),
    "train_seconds": ("train/seconds", lambda v: fmt_int(round(v))),
}
# Per-language activation outliers (results/activations/input_outliers_languages.csv, when written):
# column -> key stem (``act/<stem>/max``, ``act/<stem>/max-language``).
ACTIVATION_OUTLIERS = {"act_kurtosis_max": "kurtosis", "act_max_over_median_max": "max-over-median"}
# Families only a GPU run produces: the root (CPU) profile's keys of them read n/a by design.
# (Energy too: NVML's counter exists only on a GPU, so a CPU run's joules and CO2e read n/a.)
GPU_ONLY = tuple(key for key, _ in TRAIN_RECORD.values()) + tuple(
    f"act/{stem}/{field}" for stem in ACTIVATION_OUTLIERS.values() for field in ("max", "max-language")
) + tuple(f"cost/{stem}-per-kb/{field}" for stem in ("joules", "g-co2e")
          for field in ("min", "max", "ratio", "rho-premium"))
SCALE_PREFIX = "scale/"  # the scale profile's keys (its results are in scale/, paths.SCALE)
PRIMARY_PREFIX = "primary/"  # the primary profile's keys: scale/ when it has run, else the root's
CORPUS_NAMES = {"kolibri": "Kolibri", "bible": "Bible", "flores": "FLORES+"}


def _hypotheses(results: Results) -> dict[str, str]:
    numbers: dict[str, str] = {}
    for row in results.ledger["hypotheses"]:
        key = f"hyp/{row['id']}"
        numbers[f"{key}/verdict"] = escape(row["verdict"])
        if row.get("min_p") is not None:
            numbers[f"{key}/min-p"] = fmt_sig(row["min_p"])
        if row["verdict"] == "NOT TESTABLE":
            numbers[f"{key}/reason"] = escape(row["reason"])
        if row["kind"] == "not_run" or row.get("value") is None:  # not run: no estimate
            continue
        numbers[f"{key}/value"] = fmt(row["value"])
        numbers[f"{key}/sign"] = (
            "negative" if row["value"] < 0 else "positive" if row["value"] > 0 else "zero"
        )
        if row.get("ci_low") is not None:
            numbers[f"{key}/ci"] = fmt_ci(row["ci_low"], row["ci_high"])
        for field in ("p", "p_holm", "partial_r", "partial_p", "pearson_r", "permutation_p"):
            if row.get(field) is not None:
                numbers[f"{key}/{field.replace('_', '-')}"] = fmt(row[field])
        if row.get("n") is not None:
            numbers[f"{key}/n"] = str(int(row["n"]))
        if row.get("loo_max_language"):
            numbers[f"{key}/loo"] = f"[{fmt(row['loo_min'])}, {fmt(row['loo_max'])}]"
        if row["kind"] == "laaciq_vs_aciq":
            numbers[f"{key}/value-pct"] = fmt_pct(row["value"])
            numbers[f"{key}/ci-pct"] = f"[{fmt_pct(row['ci_low'])}, {fmt_pct(row['ci_high'])}]"
            numbers[f"{key}/mean-increase-pct"] = fmt_pct(row["mean_rel_degradation_increase"])
    verdicts = [row["verdict"] for row in results.ledger["hypotheses"]]
    for verdict in VERDICTS:
        numbers[f"count/{verdict.lower().replace(' ', '-')}"] = str(verdicts.count(verdict))
    numbers["count/hypotheses"] = str(len(verdicts))
    family = [row for row in results.ledger["hypotheses"]
              if row.get("p_holm") is not None and row.get("holm_family", True)]
    numbers["count/holm-family"] = str(len(family))
    return numbers


def _disparity(results: Results) -> dict[str, str]:
    numbers: dict[str, str] = {}
    for _, row in results.disparity.iterrows():
        key = f"disp/{row['config']}"
        for column in ("range", "mean", "worst"):
            numbers[f"{key}/{column}"] = fmt_sig(row[column])
            numbers[f"{key}/{column}-ci"] = (
                f"[{fmt_sig(row[f'{column}_ci_low'])}, {fmt_sig(row[f'{column}_ci_high'])}]"
            )
        numbers[f"{key}/worst-language"] = escape(row["worst_language"])
    numbers["count/configs"] = str(len(results.disparity))
    bstar = results.threshold_bits
    for granularity, group in bstar.groupby("granularity"):
        # Every bit width of the sweep gets a count (zero included), so the text's keys always exist.
        for bits in range(2, 9):
            numbers[f"bstar/{granularity}/{bits}"] = str(int((group["b_star"] == bits).sum()))
        numbers[f"bstar/{granularity}/none"] = str(int(group["b_star"].isna().sum()))
        reached = group["b_star"].dropna()
        numbers[f"bstar/{granularity}/max"] = str(int(reached.max())) if len(reached) else ABSENT
    return numbers


def _optional(value: float | None, format_value) -> str:
    """``format_value(value)``, or :data:`ABSENT` when the pipeline recorded no value (null)."""
    return ABSENT if value is None else format_value(value)


def _corpus_and_model(results: Results) -> dict[str, str]:
    languages = results.manifest["languages"]
    train = results.train_metrics
    # Training shares exist only for a corpus with a training split (not FLORES+).
    shares = [entry["train_share"] for entry in languages.values() if "train_share" in entry]
    has_shares = len(shares) == len(languages)
    numbers = {
        "corpus/languages": str(len(languages)),
        "corpus/scripts": str(len({entry["script"] for entry in languages.values()})),
        "corpus/train-items": (fmt_int(sum(entry["train_items"] for entry in languages.values()))
                               if has_shares else ABSENT),
        "corpus/test-items": str(int(results.per_language.query("split == 'test'")["items"].iloc[0])),
        "corpus/dev-items": str(int(results.per_language.query("split == 'dev'")["items"].iloc[0])),
        "corpus/udhr-languages": (str(int(results.eval_metrics["udhr"]["languages"]))
                                  if "udhr" in results.eval_metrics else ABSENT),
        "corpus/share-min": fmt_pct(min(shares), 2) if has_shares else ABSENT,
        "corpus/share-max": fmt_pct(max(shares), 1) if has_shares else ABSENT,
        "model/parameters": fmt_int(train["parameters"]),
        "model/parameters-millions": fmt(train["parameters"] / 1e6, 1),
        "train/steps": str(train["steps"]),
        "train/final-loss": _optional(train.get("final_train_loss"), fmt),
        "train/final-dev-loss": _optional(train.get("final_dev_loss"), fmt),
    }
    for split, entry in results.eval_metrics.items():
        numbers[f"eval/{split}/min"] = fmt(entry["min_bits_per_byte"])
        numbers[f"eval/{split}/max"] = fmt(entry["max_bits_per_byte"])
        numbers[f"eval/{split}/mean"] = fmt(entry["mean_bits_per_byte"])
        numbers[f"eval/{split}/unigram-mean"] = fmt(entry["mean_unigram_bits_per_byte"])
        numbers[f"eval/{split}/below-unigram"] = str(entry["languages_below_unigram"])
        numbers[f"eval/{split}/languages"] = str(entry["languages"])
    per_language = results.per_language
    ratio = per_language["bits_per_byte"] / per_language["unigram_bits_per_byte"]
    numbers["eval/worst-unigram-ratio"] = fmt(float(ratio.max()), 2)
    for field, (key, format_value) in TRAIN_RECORD.items():
        numbers[key] = _optional(train.get(field), format_value)
    return numbers


def _activation_outliers(results: Results) -> dict[str, str]:
    """Largest per-language activation outlier statistics, and the language (n/a without the file)."""
    outliers = getattr(results, "outliers", None)
    numbers = {}
    for column, stem in ACTIVATION_OUTLIERS.items():
        values = outliers.dropna(subset=[column]) if outliers is not None and column in outliers else None
        if values is None or values.empty:
            numbers[f"act/{stem}/max"] = numbers[f"act/{stem}/max-language"] = ABSENT
            continue
        worst = values.loc[values[column].idxmax()]
        numbers[f"act/{stem}/max"] = fmt_sig(float(worst[column]))
        numbers[f"act/{stem}/max-language"] = escape(worst["language"])
    return numbers


def _cost(results: Results) -> dict[str, str]:
    """C-004: the cheapest and dearest language per kB of text, and Spearman with the token premium
    of the model's own tokenizer (n/a where the run measured no cost, or no energy on a CPU)."""
    from qfair.analysis.cost import COST_MEASURES, cost_vs_token_premium

    cost = getattr(results, "cost", None)
    numbers = {}
    measured = cost is not None and not cost.empty
    against = cost_vs_token_premium(cost, results.premium) if measured else {}
    for measure in (*COST_MEASURES, "g_co2e_per_kb"):
        stem = measure.removesuffix("_per_kb").replace("_", "-")
        values = cost[measure].dropna() if measured else pd.Series(dtype=float)
        ok = not values.empty and (values > 0).all()
        numbers[f"cost/{stem}-per-kb/min"] = fmt_sig(float(values.min())) if ok else ABSENT
        numbers[f"cost/{stem}-per-kb/max"] = fmt_sig(float(values.max())) if ok else ABSENT
        numbers[f"cost/{stem}-per-kb/ratio"] = fmt(float(values.max() / values.min()), 2) if ok else ABSENT
        if measure in COST_MEASURES:  # CO2e is joules times a constant
            rho = against.get(measure, {}).get("spearman_rho", math.nan)
            numbers[f"cost/{stem}-per-kb/rho-premium"] = fmt(rho) if math.isfinite(rho) else ABSENT
    numbers["cost/device"] = escape(str(cost["device"].iloc[0])) if measured else ABSENT
    return numbers


def corpus_source(params: Params) -> str:
    """The corpus the profile's model is trained or evaluated on, by its source's name."""
    source = getattr(params.corpus, "train_source", None) or getattr(params.corpus, "source", "")
    return CORPUS_NAMES.get(source, source)


def model_size(parameters: int) -> str:
    """``5208064`` -> ``5M``; ``1.1e9`` -> ``1.1B``."""
    return f"{parameters / 1e9:.1f}B" if parameters >= 1e9 else f"{round(parameters / 1e6)}M"


def profile_label(params: Params, results: Results | None = None) -> str:
    """``embedded profile (5M, Kolibri, CPU)``: how captions and text name a profile's results
    (model size from metrics/train.json, corpus from params, device from params)."""
    device = "GPU" if getattr(params.eval, "device", "cpu") == "cuda" else "CPU"
    size = [model_size(results.train_metrics["parameters"])] if results is not None else []
    return f"{params.profile} profile ({', '.join([*size, corpus_source(params), device])})"


def _mechanisms(results: Results) -> dict[str, str]:
    census = results.census
    numbers = {
        "census/max-kurtosis": fmt(census["max_kurtosis"], 2),
        "census/class": escape(census["class"]),
        "census/max-tensor": escape(census["max_kurtosis_tensor"]),
        "census/embed-max-kurtosis": _optional(census.get("embed_max_kurtosis"), lambda v: fmt(v, 2)),
        "census/attn-mean": fmt(census["attn_mean_kurtosis"], 2),
        "census/mlp-mean": fmt(census["mlp_mean_kurtosis"], 2),
        "census/checkpoints": str(len(census["checkpoint_max_kurtosis"])),
    }
    steps = results.checkpoints.sort_values("step")
    numbers["census/first-checkpoint-kurtosis"] = (
        fmt(float(steps["max_kurtosis"].iloc[0]), 2) if len(steps) else ABSENT
    )
    numbers["census/last-checkpoint-kurtosis"] = (
        fmt(float(steps["max_kurtosis"].iloc[-1]), 2) if len(steps) else ABSENT
    )
    sink = results.sink_heads.groupby("layer")["sink_mass"].mean()
    numbers["sink/min-layer-mean"] = fmt(float(sink.min()), 2)
    numbers["sink/max-layer-mean"] = fmt(float(sink.max()), 2)
    numbers["sink/max-head"] = fmt(
        float(results.sink_heads.groupby(["layer", "head"])["sink_mass"].mean().max()), 2
    )
    test = results.premium[results.premium["split"] == "test"]
    for tokenizer, group in test.groupby("tokenizer"):
        worst = group.loc[group["premium"].idxmax()]
        numbers[f"tok/{tokenizer}/mean"] = fmt(float(group["premium"].mean()), 2)
        numbers[f"tok/{tokenizer}/max"] = fmt(float(worst["premium"]), 2)
        numbers[f"tok/{tokenizer}/max-language"] = escape(worst["language"])
    numbers["count/tokenizers"] = str(test["tokenizer"].nunique())
    return numbers


def _method_constants() -> dict[str, str]:
    """ACIQ's optimal clipping ratios, computed by qfair's own solver (the paper quotes them)."""
    numbers = {}
    for prior in ("laplace", "gaussian"):
        for bits in (2, 3, 4):
            numbers[f"aciq/{prior}/{bits}"] = fmt(optimal_clip_ratio(prior, bits), 2)
    return numbers


def _settings(params: Params) -> dict[str, str]:
    """Settings the text states (params, not results), so the prose follows params.yaml.

    A hub model is not trained here, so the training and architecture settings (which params still
    carries for the schema) are absent; so is the Zipf exponent of a corpus without training shares.
    """
    trained = params.model.source == "train"
    zipf = getattr(getattr(params.corpus, "training_share", None), "zipf_exponent", None)
    return {
        "ci/level": fmt_pct(params.eval.confidence, 0),
        "set/profile": escape(params.profile),
        "set/steps-per-checkpoint": str(params.train.checkpoint_every) if trained else ABSENT,
        "set/hidden": str(params.model.hidden_size) if trained else ABSENT,
        "set/layers": str(params.model.n_layer) if trained else ABSENT,
        "set/heads": str(params.model.n_head) if trained else ABSENT,
        "set/vocab": fmt_int(params.tokenizer.vocab_size) if trained else ABSENT,
        "set/batch": str(params.train.batch_size) if trained else ABSENT,
        "set/context": str(params.train.context_length) if trained else ABSENT,
        "set/seed": str(params.seed),
        "set/sweep-items": str(params.compress.items_per_language),
        "set/calibration-items": str(params.compress.calibration_items),
        "set/tau": fmt_pct(params.compress.threshold_tau, 0),
        "set/bootstrap": fmt_int(params.compress.bootstrap_resamples),
        "set/permutations": fmt_int(params.analysis.permutation_resamples),
        "set/alpha": fmt(params.analysis.alpha, 2),
        "set/outlier-k": str(params.analysis.outlier_layers_k),
        "set/zipf": _optional(zipf, lambda value: fmt(value, 1)),
        "set/int8-threshold": fmt(params.compress.bnb_int8_threshold, 1),
        "set/ci-method": escape(params.eval.ci_method),
        "set/grid": fmt_int(round(params.eval.cost.grid_g_co2e_per_kwh)),
    }


def _rules(params: Params) -> dict[str, str]:
    """Pre-registered thresholds of the hypotheses (params), quoted by the method section."""
    numbers = {}
    for rule in params.hypotheses:
        if rule.kind == "laaciq_vs_aciq":
            numbers[f"rule/{rule.id}/min-range-reduction"] = fmt_pct(rule.min_range_reduction, 0)
            numbers[f"rule/{rule.id}/max-mean-increase"] = fmt_pct(rule.max_mean_rel_degradation_increase, 0)
        elif rule.kind == "correlation":
            numbers[f"rule/{rule.id}/threshold"] = fmt(rule.threshold, 2)
            numbers[f"rule/{rule.id}/direction"] = "positive" if rule.direction == "greater" else "negative"
    return numbers


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


def _narrative(results: Results, params: Params) -> dict[str, str]:
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
    rule = next((r for r in params.hypotheses if r.kind == "laaciq_vs_aciq"), None)
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


def _profile_text(results: Results, params: Params, templates: dict[str, dict[str, str]]) -> dict[str, str]:
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


def _hypothesis_kinds(profiles: Iterable[Params]) -> dict[str, str]:
    """Hypothesis id -> the kind of test some profile runs it as (ids no profile tests are left out)."""
    kinds: dict[str, str] = {}
    for profile in profiles:
        for rule in profile.hypotheses:
            if rule.kind in HYPOTHESIS_FIELDS:
                kinds.setdefault(rule.id, rule.kind)
    return kinds


def _named_configs(profiles: Iterable[Params]) -> set[str]:
    """Configs the report's tables, every profile's sweep and every profile's hypotheses name."""
    configs = set(HEADLINE_CONFIGS) | set(CLIPPING_CONFIGS)
    for profile in profiles:
        configs |= set(profile.compress.configs)
        for rule in profile.hypotheses:
            for name in (getattr(rule, "x", None), getattr(rule, "y", None)):
                if isinstance(name, str) and name.startswith(REL_PREFIX):
                    configs.add(name.removeprefix(REL_PREFIX))
            configs |= {getattr(rule, "treatment", None), getattr(rule, "baseline", None)} - {None}
    return configs


def absent_numbers(
    numbers: dict[str, str], results: Results, params: Params, profiles: Sequence[Params]
) -> dict[str, str]:
    """:data:`ABSENT` for every key of a family the text may quote whose data this run lacks.

    ``profiles`` are all profiles of the project (plus ``params``): a hypothesis one of them tests,
    a config one of them sweeps, a split one of them evaluates or a tokenizer one of them compares
    is a known family; a key outside every family stays undefined.
    """
    profiles = [params, *profiles]
    absent: dict[str, str] = {}
    ledger = {row["id"]: row for row in results.ledger["hypotheses"]}
    for rule_id, kind in _hypothesis_kinds(profiles).items():
        if rule_id not in ledger:  # not in this profile's ledger at all
            absent[f"hyp/{rule_id}/verdict"] = ABSENT
        row = ledger.get(rule_id, {})
        # not run here (no estimate), or not testable (an estimate, but no CI or p-values)
        if row.get("value") is None or row.get("verdict") == "NOT TESTABLE":
            absent.update({f"hyp/{rule_id}/{field}": ABSENT for field in HYPOTHESIS_FIELDS[kind]})
    swept = set(results.disparity["config"])
    for config in sorted(_named_configs(profiles) - swept):
        absent.update({f"disp/{config}/{field}": ABSENT for field in DISPARITY_FIELDS})
    for split in {split for profile in profiles for split in profile.eval.splits} - set(results.eval_metrics):
        absent.update({f"eval/{split}/{field}": ABSENT for field in EVAL_FIELDS})
    tokenizers = {PROJECT_TOKENIZER} | {t.name for profile in profiles for t in profile.tokenizers}
    for tokenizer in tokenizers - set(results.premium["tokenizer"]):
        absent.update({f"tok/{tokenizer}/{field}": ABSENT for field in TOKENIZER_FIELDS})
    return {key: value for key, value in absent.items() if key not in numbers}


def collect_numbers(
    results: Results, params: Params, profiles: Sequence[Params] = ()
) -> dict[str, str]:
    """All ``\\qfnum`` keys and their typeset values; ``profiles`` widen the families of absent keys."""
    numbers: dict[str, str] = {}
    for part in (
        _settings(params),
        _rules(params),
        _hypotheses(results),
        _narrative(results, params),
        _profile_text(results, params, load_templates()),
        _disparity(results),
        _corpus_and_model(results),
        _mechanisms(results),
        _activation_outliers(results),
        _cost(results),
        track_b_numbers(results, params),
        {"label/profile": escape(profile_label(params, results))},
        _method_constants(),
    ):
        overlap = set(numbers) & set(part)
        if overlap:
            raise ValueError(f"number keys defined twice: {sorted(overlap)}")
        numbers.update(part)
    numbers.update(absent_numbers(numbers, results, params, profiles))
    return numbers


def prefixed(numbers: dict[str, str], prefix: str) -> dict[str, str]:
    """``numbers`` under ``prefix``, with the keys their values quote (generated sentences) too."""
    def quote(match) -> str:
        return rf"\qfnum{{{prefix}{match.group(1)}}}"

    return {prefix + key: QFNUM.sub(quote, value) for key, value in numbers.items()}


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


def _replication_text(results: Results, scale: Results | None, templates: dict[str, dict[str, str]]) -> str:
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


def report_numbers(
    results: Results,
    params: Params,
    scale: tuple[Results, Params] | None,
    profiles: Sequence[Params] = (),
) -> dict[str, str]:
    """Every key of the paper: the root profile's, the scale profile's under ``scale/`` (n/a where
    it has not run or lacks a key the root has) and the primary profile's under ``primary/``."""
    templates = load_templates()
    root = collect_numbers(results, params, profiles)
    own = {key: ABSENT for key in root}
    if scale is not None:
        own.update(collect_numbers(*scale, profiles))
    numbers = {**root, **prefixed(own, SCALE_PREFIX), **prefixed(own if scale else root, PRIMARY_PREFIX)}
    numbers["text/scale-status"] = templates["scale-status"]["run" if scale else "not-run"]
    numbers["text/replication"] = _replication_text(results, scale[0] if scale else None, templates)
    return numbers
