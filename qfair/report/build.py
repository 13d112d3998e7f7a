"""Build ``paper/generated/``: the numbers file, tables, figures, appendix and checklist.

:data:`FIGURES` and :data:`TABLES` are the registry of artifacts the paper may input; the test
for hand-typed numbers checks every ``\\input``/``\\includegraphics`` of the paper against them.
Each is built once per profile whose results coexist in the repository: the root pipeline's as
``figures/<name>``, ``tables/<name>.tex``, the scale profile's (``scale/``) as
``figures/scale/<name>``, ``tables/scale/<name>.tex`` (a note saying it has not run when its results
are absent); :data:`CROSS_TABLES` compare the two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from matplotlib.figure import Figure

from qfair import paths
from qfair.analysis.resource import resource_levels
from qfair.determinism import GLIBC_HWCAPS_OFF, PORTABLE_ENV
from qfair.io import atomic_dir, write_json, write_text
from qfair.params import Params, load_params
from qfair.profile import PROFILES, available
from qfair.report import controlled as ctl
from qfair.report import deployed, track_b
from qfair.report import figures as fig
from qfair.report import tables as tab
from qfair.report import track_d as trd
from qfair.report.experiments import appendix_tex
from qfair.report.latex import REL, escape, numbers_tex
from qfair.report.numbers import SCALE_PREFIX, report_numbers
from qfair.report.prose import compared_verdicts
from qfair.report.results import Results, has_results, load_results
from qfair.report.style import save_figure

FIGURES: dict[str, Callable[[Results, Params], Figure]] = {
    "training_curves": lambda r, p: fig.training_curves(r.train_loss, r.dev_loss, p.profile),
    "kurtosis_heatmap": lambda r, p: fig.kurtosis_heatmap(r.tensors),
    "kurtosis_over_training": lambda r, p: fig.kurtosis_over_training(r.checkpoints, p.profile),
    "degradation_by_language": lambda r, p: fig.degradation_by_language(
        r.sweep, tab.HEADLINE, p.eval.confidence, p.profile
    ),
    "disparity_vs_bits": lambda r, p: fig.disparity_vs_bits(r.disparity, p.eval.confidence),
    "exp007_scatter": lambda r, p: fig.correlation_scatter(
        r.languages,
        "outlier_layer_share",
        f"rel_degradation:{tab.HEADLINE}",
        "share of block output in outlier layers",
        f"${REL}$ under {tab.HEADLINE}",
        p.eval.confidence,
        profile=p.profile,
    ),
    "clipping": lambda r, p: fig.clipping_comparison(r.disparity, tab.CLIPPING_CONFIGS, p.eval.confidence),
    "deployed_methods": lambda r, p: deployed.disparity_by_family(r.disparity, p.eval.confidence, p.profile),
    "calibration_language": lambda r, p: deployed.calibration_language(r.disparity, p.eval.confidence,
                                                                       p.profile),
    "sink_mass": lambda r, p: fig.sink_mass(r.sink_heads),
    "tokenizer_premium": lambda r, p: fig.tokenizer_premium(r.premium),
    "head_specificity": lambda r, p: (
        track_b.head_specificity_figure(r.specificity) if r.specificity is not None
        else fig.not_produced("head specificity (B-001)", p.profile, "interpretability stage not run")),
    "language_probes": lambda r, p: (
        track_b.probe_figure(r.probes, p.interpretability.config) if r.probes is not None
        else fig.not_produced("language-ID probes (B-002)", p.profile, "probes not run in this profile")),
    "mediation": lambda r, p: (
        track_b.mediation_heatmaps(r.mediation, r.block_quantization, p.interpretability.config)
        if r.mediation is not None
        else fig.not_produced("causal mediation (B-005)", p.profile, "interpretability stage not run")),
    "mediation_activations": lambda r, p: (
        track_b.mediation_heatmaps(r.activation_mediation, r.activation_block_quantization,
                                   p.interpretability.activation_config)
        if r.activation_mediation is not None
        else fig.not_produced("causal mediation of activation quantization (B-005)", p.profile,
                              "no interpretability.activation_config")),
}

TABLES: dict[str, Callable[[Results, Params], str]] = {
    "ledger": lambda r, p: tab.ledger_table(r.ledger),
    "headline": lambda r, p: tab.disparity_table(r.disparity, tab.HEADLINE_CONFIGS),
    "clipping": lambda r, p: tab.clipping_table(r.disparity),
    "deployed": lambda r, p: deployed.methods_table(r.disparity),
    "sweep_all": lambda r, p: tab.disparity_table(r.disparity, list(r.disparity["config"])),
    "pruning": lambda r, p: tab.disparity_table(
        r.disparity, [c for c in r.disparity["config"] if c.startswith("prune")]
    ),
    "per_language": lambda r, p: tab.per_language_table(
        r, resource_levels(p, r.manifest["languages"]).share, published=p.model.source == "hub"
    ),
    "tokenizers": lambda r, p: tab.tokenizer_table(r.premium),
    "census": lambda r, p: tab.census_table(r.tensors),
    "training": lambda r, p: tab.training_table(r.train_metrics),
    "outliers": lambda r, p: tab.outliers_table(r.outliers, p.profile),
}
CROSS_TABLES = ("replication",)  # verdicts of both profiles side by side
PREFIXES = ("", SCALE_PREFIX)  # the root profile's artifacts, the scale profile's
NOT_RUN = "The scale profile has not been run in this checkout (scale/ holds no results)."
CONTROLLED_NOT_RUN = ("The controlled family has not been analysed in this checkout "
                      "(results/controlled is absent).")
TRACK_D_NOT_RUN = "Track D has not run in this profile (no treebanks, or results/track_d is absent)."

STAGE_ORDER = ("prepare_corpus", "train_tokenizer", "train_model", "evaluate", "compress_sweep",
               "weight_census", "activation_profile", "interpretability", "tokenizer_premium", "mechanisms",
               "track_d")
PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "accelerate",
    "bitsandbytes",
    "safetensors",
    "dvc",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
)


def all_profiles(folder: Path = PROFILES) -> list[Params]:
    """Every profile of the project (profiles/*.yaml): the registries of what the text may quote."""
    return [load_params(folder / f"{name}.yaml") for name in available(folder)]


def generated_names(names: Sequence[str]) -> set[str]:
    """Every profile's file names of the registered ``names`` (``headline``, ``scale/headline``)."""
    return {prefix + name for prefix in PREFIXES for name in names}


def load_scale(folder: Path | str = paths.SCALE) -> tuple[Results, Params] | None:
    """The scale profile's results and params (``scale/``), or None where it has not run."""
    folder = Path(folder)
    if not has_results(folder):
        return None
    return load_results(folder), load_params(folder / "params.yaml")


def checklist_facts(results: Results, params: Params, packages: bool = True) -> list[tuple[str, str]]:
    """The reproducibility checklist, from params, the manifest, package metadata (``packages``:
    of this machine, where the report builds) and stage timings."""
    split = getattr(params.corpus, "split", None)  # FLORES+ comes split; no split seed
    seeds = {
        "global": params.seed,
        **({"split": split.seed} if split is not None else {}),
        "eval": params.eval.seed,
        "compress": params.compress.seed,
        "analysis": params.analysis.seed,
    }
    facts = [
        ("profile", escape(params.profile)),
        ("seeds", ", ".join(f"{k} {v}" for k, v in seeds.items())),
        ("CPU numerics", escape("portable kernels (qfair.determinism): "
                                + ", ".join(f"{k}={v}" for k, v in PORTABLE_ENV.items())
                                + ", GLIBC_TUNABLES=glibc.cpu.hwcaps=" + ",".join(GLIBC_HWCAPS_OFF)
                                + "; torch deterministic algorithms")),
    ]
    for split, source in results.manifest["sources"].items():
        if "sha256" in source:  # a pinned package
            pin = f"{source['source']} {source['version']}", f"sha256 {source['sha256']}"
        else:  # a dataset at a revision, or a local copy of one
            pin = source["source"], " ".join(
                f"{field} {source[field]}" for field in ("revision", "path") if field in source
            )
        facts.append(
            (
                f"data: {split}",
                escape(pin[0]) + r" \newline \texttt{\scriptsize " + escape(pin[1]) + "}",
            )
        )
    for tokenizer in params.tokenizers:
        facts.append(
            (
                f"tokenizer: {tokenizer.name}",
                escape(f"{tokenizer.source} {tokenizer.package} {tokenizer.version}")
                + r" \newline \texttt{\scriptsize sha256 "
                + escape(tokenizer.sha256)
                + "}",
            )
        )
    versions = []
    for package in PACKAGES if packages else ():
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (absent)")
    if versions:
        facts.append(("packages", escape(", ".join(versions))))
    train = results.train_metrics
    if train.get("device"):  # a GPU run's training record
        compiled = ", torch.compile" if train.get("compile") else ""
        peak = (f"; measured peak {train['peak_flops_measured'] / 1e12:.0f} TFLOP/s"
                if train.get("peak_flops_measured") else "")
        device = f"{train['device']}, {train.get('precision', '')}{compiled}{peak}"
        facts.append(("training device", escape(device)))
    if results.timings:
        # the training stage's machine where it was timed (the GPU of a scale run)
        machine = results.timings.get("train_model") or next(iter(results.timings.values()))
        facts.append(
            (
                "hardware",
                escape(
                    f"{machine['machine']}, {machine['cpus']} CPUs, "
                    f"{machine['torch_threads']} torch threads, GPU: {machine['cuda'] or 'none'}; "
                    f"{machine['os']}, Python {machine['python']}"
                ),
            )
        )
        order = {name: index for index, name in enumerate(STAGE_ORDER)}
        timed = sorted(results.timings.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
        times = ", ".join(f"{name} {entry['seconds']:.0f}" for name, entry in timed)
        facts.append(("stage wall times (s)", escape(times)
                      + " (a stage that resumed from a checkpoint or DVC's run cache shows that run's time)"))
    else:
        facts.append(("stage times", "not recorded"))
    return facts


def build_report(
    results: Results,
    params: Params,
    out: Path | str,
    profiles: Sequence[Params] | None = None,
    scale: tuple[Results, Params] | None = None,
    controlled: dict | None = None,
    track_d: dict | None = None,
) -> list[str]:
    """Write every generated file of the paper into ``out`` (replaced as a whole); return their paths.

    ``results``/``params`` are the root pipeline's, ``scale`` the scale profile's (:func:`load_scale`;
    None: not run, and the paper says so), ``controlled`` the controlled family's
    (:func:`qfair.report.controlled.load`; None: its figure and tables say it has not run), and
    ``track_d`` the root profile's Track D results (:func:`qfair.report.track_d.load`; None: likewise).
    ``profiles`` (default: every profile in profiles/) define which absent numbers read ``n/a``.
    """
    out = Path(out)
    profiles = all_profiles() if profiles is None else profiles
    runs = {"": (results, params), SCALE_PREFIX: scale}
    with atomic_dir(out) as staging:
        for prefix, run in runs.items():
            for name, make in FIGURES.items():
                figure = make(*run) if run else fig.not_produced(name.replace("_", " "), "scale", "not run")
                save_figure(figure, staging / "figures" / f"{prefix}{name}")
            for name, make in TABLES.items():
                write_text(staging / "tables" / f"{prefix}{name}.tex",
                           make(*run) if run else tab.not_run_note(NOT_RUN))
        write_text(staging / "tables" / "replication.tex",
                   tab.replication_table(compared_verdicts(scale[0], results)) if scale
                   else tab.not_run_note(NOT_RUN))
        for name in ctl.FIGURES:
            save_figure(ctl.share_figure(controlled) if controlled
                        else fig.not_produced("controlled family", "controlled", "not run"),
                        staging / "figures" / name)
        for name, make in (("controlled_ledger", ctl.ledger_table), ("controlled_spread", ctl.spread_table)):
            write_text(staging / "tables" / f"{name}.tex",
                       make(controlled) if controlled else tab.not_run_note(CONTROLLED_NOT_RUN))
        for name, make in trd.TABLE_MAKERS.items():
            write_text(staging / "tables" / f"{name}.tex",
                       make(track_d) if track_d else tab.not_run_note(TRACK_D_NOT_RUN))
        facts = checklist_facts(results, params)
        if scale:
            facts += [(f"scale: {item}", value) for item, value in checklist_facts(*scale, packages=False)]
        else:
            facts.append(("scale profile", escape(NOT_RUN)))
        write_text(staging / "tables" / "checklist.tex", tab.checklist_table(facts))
        numbers = report_numbers(results, params, scale, profiles)
        numbers |= ctl.numbers(controlled) if controlled else {}
        numbers |= trd.numbers(track_d) if track_d else trd.absent_numbers(profiles)
        write_text(staging / "numbers.tex", numbers_tex(numbers, {"qfscale": scale is not None,
                                                                  "qfcontrolled": controlled is not None,
                                                                  "qftrackd": track_d is not None}))
        write_text(
            staging / "appendix.tex",
            appendix_tex(results.ledger, set(FIGURES) | (set(ctl.FIGURES) if controlled else set()),
                         set(TABLES) | (set(trd.TABLES) if track_d else set()), params.profile)
        )
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        write_json(staging / "manifest.json", {"files": files})
    return files
