"""The appendix: one section per experiment of the catalogue (docs/definitions.md), generated.

Each experiment names the figures, tables and hypotheses that answer it. The section shows them
when the current profile produced them and says so in one generated line when it did not, with
the reason the ledger or the catalogue gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from qfair.report.latex import escape


@dataclass(frozen=True)
class Experiment:
    id: str
    title: str
    question: str
    figures: tuple[str, ...] = ()  # keys of qfair.report.build.FIGURES (referenced by label)
    tables: tuple[str, ...] = ()  # keys of qfair.report.build.TABLES (input here)
    hypotheses: tuple[str, ...] = ()
    not_run: str = ""  # why the embedded profile cannot run it (empty: it runs)
    # The one hop from an ID to its code: DVC stages that compute it, the library functions
    # (dotted paths) that do the work, and the files it writes. tests/test_experiment_index.py
    # resolves every entry, so a rename that forgets the catalogue fails CI.
    stages: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The appendix subsection's LaTeX label."""
        return "app:" + self.id.lower().replace("/", "-")


CATALOGUE: tuple[Experiment, ...] = (
    Experiment(
        "EXP-001",
        "Does quantization hurt some languages more?",
        "Relative NLL increase per language for every compression config; Spearman correlation of "
        "resource level and degradation at 4 bits.",
        figures=("degradation_by_language",),
        tables=("per_language",),
        hypotheses=("EXP-001", "EXP-001b"),
        stages=("compress_sweep", "mechanisms"),
        functions=(
            "qfair.quant.sweep_runner.compress_sweep",
            "qfair.analysis.disparity.language_rel_degradation_ci",
            "qfair.analysis.stats.correlation_battery",
            "qfair.analysis.ledger.evaluate_ledger",
        ),
        outputs=(
            "results/sweep/items.csv",
            "results/sweep/per_language.csv",
            "results/analysis/languages.csv",
            "results/hypotheses.json",
        ),
    ),
    Experiment(
        "EXP-007/008",
        "Does use of outlier-heavy layers predict degradation?",
        "Outlier layers chosen from weights alone; per language, the share of block-output norm in "
        "them and the effective kurtosis, against degradation.",
        figures=("exp007_scatter",),
        hypotheses=("EXP-007", "EXP-008"),
        stages=("activation_profile", "weight_census", "mechanisms"),
        functions=(
            "qfair.analysis.activations.profile_languages",
            "qfair.analysis.mechanisms.outlier_layers",
            "qfair.analysis.mechanisms.language_table",
        ),
        outputs=(
            "results/activations/layers.csv",
            "results/analysis/languages.csv",
            "results/analysis/layers.csv",
        ),
    ),
    Experiment(
        "EXP-020",
        "Kurtosis census across models",
        "Per-tensor statistics for every model of the profile and a class per model.",
        figures=("kurtosis_heatmap",),
        tables=("census",),
        stages=("weight_census",),
        functions=(
            "qfair.analysis.census.census_safetensors",
            "qfair.analysis.census.summarize_census",
        ),
        outputs=(
            "results/census/tensors.csv",
            "results/census/summary.json",
        ),
    ),
    Experiment(
        "EXP-022/026",
        "Attention versus MLP",
        "Kurtosis by component; sign test across layers.",
        hypotheses=("EXP-022",),
        stages=("weight_census", "mechanisms"),
        functions=(
            "qfair.analysis.mechanisms.component_table",
            "qfair.analysis.ledger.evaluate_ledger",
        ),
        outputs=(
            "results/analysis/components.csv",
            "results/hypotheses.json",
        ),
    ),
    Experiment(
        "EXP-001c",
        "Is the resource effect causal? The training share manipulated",
        "A family of training runs identical except the training share of a set of target languages "
        "(a Latin square over the share levels, several seeds): per language, the slope of rho and of "
        "full-precision bits per byte on log share, and rho's slope holding bits per byte fixed. The "
        "runs are GPU stages of controlled/dvc.yaml; the hypotheses live in controlled/params.yaml.",
        figures=("controlled_share",),
        hypotheses=("EXP-001c", "EXP-001c-3bit", "EXP-001c-gptq", "EXP-001c-adjusted"),
        stages=("controlled_analysis",),
        functions=(
            "qfair.controlled.family.run_family",
            "qfair.controlled.design.latin_square_shares",
            "qfair.controlled.slopes.pooled_slope",
            "qfair.controlled.slopes.adjusted_slope",
            "qfair.controlled.analysis.share_slopes",
            "qfair.controlled.analysis.ledger",
        ),
        outputs=(
            "results/controlled/slopes.csv",
            "results/controlled/languages.csv",
            "results/controlled/hypotheses.json",
        ),
    ),
    Experiment(
        "EXP-024/025",
        "Layer position and size scaling",
        "Layer of maximal kurtosis; Spearman correlation of model size and maximal kurtosis within a family.",
        figures=("kurtosis_heatmap",),
        hypotheses=("EXP-025",),
        stages=("weight_census", "mechanisms", "controlled_analysis"),
        functions=(
            "qfair.analysis.mechanisms.layer_kurtosis",
            "qfair.controlled.analysis.size_slopes",
        ),
        outputs=(
            "results/analysis/layers.csv",
            "results/census/summary.json",
            "results/controlled/sizes.csv",
        ),
    ),
    Experiment(
        "EXP-023/027",
        "Dropout and growth during training",
        "Kurtosis per checkpoint; dropout twins of the controlled family (controlled/params.yaml).",
        figures=("kurtosis_over_training",),
        hypotheses=("EXP-027", "EXP-023"),
        stages=("train_model", "weight_census", "mechanisms", "controlled_analysis"),
        functions=(
            "qfair.analysis.census.summarize_census",
            "qfair.analysis.mechanisms.checkpoint_table",
            "qfair.controlled.analysis.dropout_effects",
        ),
        outputs=(
            "results/analysis/checkpoints.csv",
            "results/hypotheses.json",
            "results/controlled/dropout.csv",
        ),
    ),
    Experiment(
        "EXP-030",
        "Attention sinks versus outliers",
        "Per layer, attention mass on position 0 against the layer's maximal kurtosis.",
        figures=("sink_mass",),
        hypotheses=("EXP-030",),
        stages=("activation_profile", "mechanisms"),
        functions=(
            "qfair.analysis.activations.profile_languages",
            "qfair.analysis.mechanisms.layer_table",
        ),
        outputs=(
            "results/activations/sink_heads.csv",
            "results/analysis/layers.csv",
        ),
    ),
    Experiment(
        "EXP-033",
        "Does tokenization predict degradation?",
        "Tokens per byte and the premium over the reference language against degradation.",
        figures=("tokenizer_premium",),
        hypotheses=("EXP-033",),
        stages=("tokenizer_premium", "mechanisms"),
        functions=(
            "qfair.analysis.tokenization.premium_table",
            "qfair.analysis.ledger.evaluate_ledger",
        ),
        outputs=(
            "results/tokenizers/premium.csv",
            "results/hypotheses.json",
        ),
    ),
    Experiment(
        "EXP-034",
        "Language-specific heads versus outliers",
        "Overlap of language-specific heads with outlier-heavy heads.",
        figures=("head_specificity",),
        hypotheses=("EXP-034",),
        stages=("interpretability", "weight_census", "mechanisms"),
        functions=(
            "qfair.analysis.heads.outlier_heads",
            "qfair.analysis.heads.overlap_test",
            "qfair.analysis.ledger.evaluate_ledger",
        ),
        outputs=("results/interpretability/head_specificity.csv", "results/census/attention_heads.csv",
                 "results/hypotheses.json"),
    ),
    Experiment(
        "EXP-009",
        "Bit-width sweep",
        "Round-to-nearest at every bit width, granularity and symmetry, plus bitsandbytes; threshold bits.",
        figures=("disparity_vs_bits",),
        tables=("sweep_all",),
        stages=("compress_sweep",),
        functions=(
            "qfair.quant.rtn.quantize_rtn",
            "qfair.analysis.sweep.disparity_table",
            "qfair.analysis.sweep.threshold_table",
        ),
        outputs=(
            "results/sweep/disparity.csv",
            "results/sweep/threshold_bits.csv",
        ),
    ),
    Experiment(
        "EXP-031",
        "Language-aware clipping (LA-ACIQ)",
        "Disparity and mean degradation of LA-ACIQ against ACIQ, MSE clipping and the oracle.",
        figures=("clipping",),
        tables=("clipping",),
        hypotheses=("EXP-031",),
        stages=("compress_sweep", "compare_configs", "mechanisms"),
        functions=(
            "qfair.quant.laaciq.laaciq_clip",
            "qfair.analysis.sweep.comparison_table",
            "qfair.analysis.ledger.range_reduction_verdict",
        ),
        outputs=(
            "results/sweep/comparisons.csv",
            "results/hypotheses.json",
        ),
    ),
    Experiment(
        "EXP-035",
        "Activation quantization",
        "Weights and layer inputs quantized together (W8A8, W4A8, W4A4, A-only; static per tensor or "
        "dynamic per token) against each language's input heavy-tailedness.",
        figures=("deployed_methods",),
        tables=("deployed",),
        hypotheses=("EXP-035",),
        stages=("compress_sweep", "activation_profile", "mechanisms"),
        functions=(
            "qfair.quant.methods.activations.ActivationQuant",
            "qfair.quant.activations.fake_quantize_inputs",
            "qfair.analysis.activations.outlier_summary",
        ),
        outputs=("results/sweep/disparity.csv", "results/activations/input_outliers_languages.csv",
                 "results/hypotheses.json"),
    ),
    Experiment(
        "EXP-036",
        "Calibration language",
        "GPTQ and AWQ calibrated on English, the uniform multilingual set, the training mix, and each "
        "language alone (oracle), with the same calibration items per language.",
        figures=("calibration_language",),
        tables=("deployed",),
        hypotheses=("EXP-036",),
        stages=("compress_sweep", "compare_configs", "mechanisms"),
        functions=(
            "qfair.quant.methods.gptq.Gptq",
            "qfair.quant.methods.awq.Awq",
            "qfair.quant.methods.base.calibration_weights",
        ),
        outputs=("results/sweep/comparisons.csv", "results/hypotheses.json"),
    ),
    Experiment(
        "EXP-037",
        "Language-aware GPTQ (LA-GPTQ)",
        "GPTQ whose Hessian weighs every language's input covariance equally or by minimax reweighting.",
        figures=("calibration_language",),
        tables=("deployed",),
        hypotheses=("EXP-037",),
        stages=("compress_sweep", "compare_configs", "mechanisms"),
        functions=(
            "qfair.quant.methods.gptq.LanguageAwareGptq",
            "qfair.quant.methods.gptq.minimax_gptq",
            "qfair.quant.gptq.gptq_quantize",
        ),
        outputs=("results/sweep/comparisons.csv", "results/hypotheses.json"),
    ),
    Experiment(
        "EXP-038",
        "Outlier removal before activation quantization",
        "SmoothQuant (alpha grid) and a block-diagonal Hadamard rotation of the layer inputs, exact in "
        "full precision, before W4A8 and W4A4.",
        figures=("deployed_methods",),
        tables=("deployed",),
        hypotheses=("EXP-038", "EXP-038b"),
        stages=("compress_sweep", "compare_configs", "mechanisms"),
        functions=(
            "qfair.quant.methods.activations.SmoothQuant",
            "qfair.quant.methods.activations.HadamardRotation",
            "qfair.quant.activations.hadamard_rotation",
        ),
        outputs=("results/sweep/comparisons.csv", "results/hypotheses.json"),
    ),
    Experiment(
        "REAL-001",
        "End to end with a real quantization library",
        "bitsandbytes-loaded models evaluated per language and compared with fake quantization.",
        tables=("headline",),
        hypotheses=("REAL-001",),
        stages=("compress_sweep", "mechanisms"),
        functions=(
            "qfair.quant.methods.bitsandbytes.load_bitsandbytes",
            "qfair.analysis.ledger.evaluate_ledger",
        ),
        outputs=(
            "results/sweep/per_language.csv",
            "results/hypotheses.json",
        ),
    ),
    Experiment(
        "B-001",
        "Are some heads language-specific?",
        "Head specificity: between- over within-language variance of attention entropy, distance and "
        "sink mass, against a label-shuffle null; specific, mixed and universal heads.",
        figures=("head_specificity",),
        stages=("interpretability",),
        functions=("qfair.analysis.patching.head_features", "qfair.analysis.heads.head_specificity"),
        outputs=("results/interpretability/head_specificity.csv",),
    ),
    Experiment(
        "B-002",
        "Does quantization damage what probes read?",
        "Language-ID logistic probes per layer on each item's mean hidden state, cross-validated in "
        "folds of whole parallel items: full precision, quantized (retrained) and full-precision "
        "probes on quantized states; do lower-resource languages lose more accuracy?",
        figures=("language_probes",),
        hypotheses=("B-002",),
        stages=("interpretability", "mechanisms"),
        functions=("qfair.analysis.patching.pooled_hidden_states",
                   "qfair.analysis.probes.language_id_probes", "qfair.analysis.probes.probe_accuracy_drop"),
        outputs=("results/interpretability/probes.csv", "results/interpretability/languages.csv"),
    ),
    Experiment(
        "B-003",
        "Ablation by language",
        "Mean-ablation of every head and every layer's attention and MLP block; relative NLL change "
        "per language; are lower-resource languages more sensitive?",
        hypotheses=("B-003",),
        stages=("interpretability", "mechanisms"),
        functions=("qfair.models.hooks.ComponentHooks", "qfair.analysis.patching.ablation"),
        outputs=("results/interpretability/ablation.csv", "results/interpretability/languages.csv"),
    ),
    Experiment(
        "B-004",
        "Gradient attribution",
        "Attribution patching (activation x gradient) per component and language, checked against "
        "B-003's measured ablations by rank correlation.",
        stages=("interpretability",),
        functions=("qfair.analysis.patching.attribution",
                   "qfair.analysis.interpretability.attribution_agreement"),
        outputs=("results/interpretability/attribution.csv",
                 "results/interpretability/attribution_check.csv"),
    ),
    Experiment(
        "B-005",
        "Causal mediation",
        "Activation patching: the quantized model with one component restored from the "
        "full-precision model; share of each language's degradation recovered; and the converse, "
        "one block quantized at a time; for 4-bit weights and for 4-bit per-token inputs.",
        figures=("mediation", "mediation_activations"),
        stages=("interpretability",),
        functions=("qfair.analysis.interpretability.mediate_quantization",
                   "qfair.analysis.patching.mediation", "qfair.analysis.patching.block_quantization"),
        outputs=("results/interpretability/mediation.csv",
                 "results/interpretability/block_quantization.csv",
                 "results/interpretability/mediation_activations.csv",
                 "results/interpretability/block_quantization_activations.csv"),
    ),
    Experiment(
        "C-001b",
        "Tokenizer efficiency gap",
        "Tokens per byte and premium per tokenizer on the parallel test set and the UDHR.",
        figures=("tokenizer_premium",),
        tables=("tokenizers",),
        stages=("tokenizer_premium",),
        functions=(
            "qfair.analysis.tokenization.premium_table",
        ),
        outputs=(
            "results/tokenizers/premium.csv",
        ),
    ),
    Experiment(
        "C-002",
        "Quantization fairness",
        "A view of EXP-001.",
        figures=("degradation_by_language",),
        stages=("compress_sweep",),
        functions=("qfair.analysis.disparity.disparity",),
        outputs=("results/sweep/disparity.csv",),
    ),
    Experiment(
        "C-003",
        "Pruning",
        "Magnitude (per tensor and global) and Wanda unstructured pruning; per-language degradation.",
        tables=("pruning",),
        stages=("compress_sweep",),
        functions=(
            "qfair.quant.prune.prune_magnitude",
            "qfair.quant.prune.prune_magnitude_global",
            "qfair.quant.prune.prune_wanda",
        ),
        outputs=(
            "results/sweep/per_language.csv",
        ),
    ),
    Experiment(
        "C-004",
        "Cost per language",
        "Time (and, on a GPU, energy and grams CO2e under a stated grid intensity) to score each "
        "language's test split, per kB of text, against the tokenizer's token premium.",
        stages=("evaluate", "report"),
        functions=("qfair.scoring.cost.measure_cost", "qfair.analysis.cost.cost_vs_token_premium"),
        outputs=("results/eval/cost.csv", "metrics/cost.json"),
    ),
    Experiment(
        "D-001",
        "Morphological disambiguation under quantization",
        "Logistic probes for UD features (Gender, Number, Person, Case, Definite, Tense, ...) on pooled "
        "word states of the held-out Hebrew and Turkish treebank sentences, per layer: full-precision "
        "against quantized accuracy (probes fitted on dev, scored on test).",
        tables=("track_d_probes", "track_d_ledger"),
        hypotheses=("D-001",),
        stages=("prepare_corpus", "track_d"),
        functions=("qfair.corpus.treebanks.join_treebanks", "qfair.treebank.words.word_states",
                   "qfair.treebank.run.feature_probes", "qfair.treebank.run.language_estimates"),
        outputs=("results/track_d/features.csv", "results/track_d/ledger.csv", "metrics/track_d.json"),
    ),
    Experiment(
        "D-002",
        "Parsing degradation",
        "A structural distance probe (Hewitt and Manning) per layer; UUAS of the minimum spanning tree "
        "at full precision against quantized.",
        tables=("track_d_probes", "track_d_ledger"),
        hypotheses=("D-002",),
        stages=("track_d",),
        functions=("qfair.treebank.probes.fit_structural_probe", "qfair.treebank.probes.edge_counts",
                   "qfair.treebank.run.structural_probes"),
        outputs=("results/track_d/structural.csv", "results/track_d/ledger.csv"),
    ),
    Experiment(
        "D-003",
        "Subword-morpheme alignment",
        "Boundary precision, recall and F1 of the project's and the external tokenizers against gold "
        "morpheme boundaries; per-word degradation of words whose split crosses a gold boundary "
        "against words whose split aligns.",
        tables=("track_d_boundaries", "track_d_ledger"),
        hypotheses=("D-003",),
        stages=("track_d",),
        functions=("qfair.treebank.segments.multiword_segmentations",
                   "qfair.treebank.segments.inflectional_group_segmentations",
                   "qfair.treebank.boundaries.boundary_scores", "qfair.treebank.run.word_degradation"),
        outputs=("results/track_d/boundaries.csv", "results/track_d/words.csv", "results/track_d/ledger.csv"),
    ),
    Experiment(
        "D-004",
        "Joint versus pipeline robustness",
        "The full-precision probe applied to quantized states against a probe retrained on them: the "
        "part of the accuracy loss that a reader could recover.",
        tables=("track_d_probes", "track_d_ledger"),
        hypotheses=("D-004",),
        stages=("track_d",),
        functions=("qfair.treebank.run.feature_probes", "qfair.treebank.run.language_estimates"),
        outputs=("results/track_d/features.csv", "results/track_d/ledger.csv"),
    ),
    Experiment(
        "D-005",
        "Morphological feature circuits",
        "Heads whose mean ablation most lowers the top-layer feature probes' accuracy; their overlap "
        "with outlier-heavy heads (EXP-034) and quantization-sensitive heads (B-005).",
        tables=("track_d_ledger",),
        hypotheses=("D-005a", "D-005b"),
        stages=("track_d",),
        functions=("qfair.treebank.heads.ablation_drops", "qfair.treebank.heads.head_overlaps",
                   "qfair.analysis.heads.overlap_test"),
        outputs=("results/track_d/head_drops.csv", "results/track_d/heads.csv", "results/track_d/ledger.csv"),
    ),
)


def _hypothesis_line(row: dict, profile: str) -> str:
    head = rf"\item {escape(row['id'])} ({escape(row['statement'])})"
    if row["verdict"] == "NOT RUN":
        return f"{head}: not run in the {escape(profile)} profile; {escape(row['reason'])}."
    if row["verdict"] == "NOT TESTABLE":  # the estimate is descriptive only
        estimate = (rf" (estimate \qfnum{{hyp/{row['id']}/value}}, untested)"
                    if row.get("value") is not None else "")
        return (rf"{head}: \textsc{{not testable}} in the {escape(profile)} profile{estimate}; "
                rf"{escape(row['reason'])}.")
    return (
        rf"{head}: \textsc{{{escape(row['verdict'].lower())}}};"
        rf" estimate \qfnum{{hyp/{row['id']}/value}}"
        + (rf" {{\qfnum{{hyp/{row['id']}/ci}}}}" if row.get("ci_low") is not None else "")
        + (
            rf", Holm-adjusted $p$ = \qfnum{{hyp/{row['id']}/p-holm}}"
            if row.get("p_holm") is not None
            else ""
        )
        + "."
    )


def _code(name: str) -> str:
    # Dotted paths are long: allow a line break after every dot and slash.
    return r"\texttt{" + escape(name).replace(".", r".\allowbreak{}").replace("/", r"/\allowbreak{}") + "}"


def _code_line(experiment: Experiment) -> str:
    """Where the experiment is computed: stages, library functions, output files."""
    return (
        r"\par\emph{Computed by} stage " + ", ".join(_code(s) for s in experiment.stages)
        + r"; \emph{library:} " + ", ".join(_code(f) for f in experiment.functions)
        + r"; \emph{writes:} " + ", ".join(_code(o) for o in experiment.outputs) + "."
    )


def appendix_tex(ledger: dict, figures: set[str], tables: set[str], profile: str) -> str:
    """The appendix sections; ``figures``/``tables`` are the artifacts this run produced."""
    by_id = {row["id"]: row for row in ledger["hypotheses"]}
    lines = ["% Generated by the report stage (qfair/report/experiments.py); do not edit."]
    for experiment in CATALOGUE:
        lines += [
            rf"\subsection{{{escape(experiment.id)}: {escape(experiment.title)}}}",
            rf"\label{{{experiment.label}}}",
            escape(experiment.question),
        ]
        if experiment.stages:
            lines.append(_code_line(experiment))
        shown_figures = [name for name in experiment.figures if name in figures]
        shown_tables = [name for name in experiment.tables if name in tables]
        rows = [by_id[h] for h in experiment.hypotheses if h in by_id]
        ran = shown_figures or shown_tables or any(row["verdict"] != "NOT RUN" for row in rows)
        if not ran:
            reason = (
                experiment.not_run
                or next((row.get("reason", "") for row in rows), "")
                or "its inputs are not produced by this profile"
            )
            lines.append(
                rf"\par\emph{{The {escape(profile)} profile does not run {escape(experiment.id)}: "
                rf"{escape(reason)}.}}"
            )
            continue
        if shown_figures:
            refs = ", ".join(rf"Figure~\ref{{fig:{name}}}" for name in shown_figures)
            lines.append(rf"\par Results: {refs}.")
        for name in shown_tables:
            lines += [r"\begin{center}", rf"\input{{generated/tables/{name}}}", r"\end{center}"]
        if rows:
            lines += [r"\begin{itemize}", *(_hypothesis_line(row, profile) for row in rows), r"\end{itemize}"]
    return "\n".join(lines) + "\n"
