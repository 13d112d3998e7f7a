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

import pandas as pd

from qfair.analysis.ledger import REL_PREFIX
from qfair.params import Params
from qfair.quant.aciq import optimal_clip_ratio
from qfair.report.deployed import deployed_numbers
from qfair.report.latex import ABSENT, escape, fmt, fmt_ci, fmt_int, fmt_pct, fmt_sig
from qfair.report.prose import load_templates, narrative, profile_text, replication_text
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
    "range_reduction": ("value", "sign", "ci", "value-pct", "ci-pct", "mean-increase-pct"),
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
        if row["kind"] == "range_reduction":
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
        if rule.kind == "range_reduction":
            numbers[f"rule/{rule.id}/min-range-reduction"] = fmt_pct(rule.min_range_reduction, 0)
            numbers[f"rule/{rule.id}/max-mean-increase"] = fmt_pct(rule.max_mean_rel_degradation_increase, 0)
        elif rule.kind == "correlation":
            numbers[f"rule/{rule.id}/threshold"] = fmt(rule.threshold, 2)
            numbers[f"rule/{rule.id}/direction"] = "positive" if rule.direction == "greater" else "negative"
    return numbers


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
    for profile in profiles:  # a rule another profile pre-registers; this one does not run it
        absent.update(dict.fromkeys(_rules(profile), ABSENT))
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
        narrative(results, params),
        profile_text(results, params, load_templates()),
        _disparity(results),
        _corpus_and_model(results),
        _mechanisms(results),
        _activation_outliers(results),
        _cost(results),
        track_b_numbers(results, params),
        deployed_numbers(results),
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
    numbers["text/replication"] = replication_text(results, scale[0] if scale else None, templates)
    return numbers
