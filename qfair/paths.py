"""Every pipeline path, relative to the repository root (where ``dvc repro`` runs the stages).

dvc.yaml names the same paths as each stage's deps and outs; a stage or library function takes
its paths from here instead of spelling them out.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
CORPUS = DATA / "corpus"  # prepare_corpus: splits, manifest.json
CORPUS_MANIFEST = CORPUS / "manifest.json"

MODELS = Path("models")
TOKENIZER = MODELS / "tokenizer"  # train_tokenizer


def model_dir(profile: str) -> Path:
    """``models/<profile>``: the profile's model (``final``) and its training checkpoints."""
    return MODELS / profile


def final_model(profile: str) -> Path:
    """``models/<profile>/final``: the model every evaluation stage reads."""
    return model_dir(profile) / "final"


def checkpoints(profile: str) -> Path:
    """``models/<profile>/checkpoints``: ``step_NNNNNN`` folders (trained here or from the hub)."""
    return model_dir(profile) / "checkpoints"


RESULTS = Path("results")
PARAMS_VALIDATED = RESULTS / "params_validated.txt"
TIMINGS = RESULTS / "timings"
EVAL = RESULTS / "eval"
COST = EVAL / "cost.csv"  # C-004: measured time and energy per language (differs on every run)
SWEEP = RESULTS / "sweep"
SWEEP_COMPARISONS = SWEEP / "comparisons.csv"  # pre-registered config comparisons (EXP-031)
SWEEP_PARTIAL = SWEEP / "partial"  # per-config rows of an interrupted sweep; removed at the end
CENSUS = RESULTS / "census"
ACTIVATIONS = RESULTS / "activations"
INPUT_OUTLIERS = ACTIVATIONS / "input_outliers.csv"  # per language and linear layer: input outliers
INPUT_OUTLIERS_LANGUAGES = ACTIVATIONS / "input_outliers_languages.csv"  # summarised per language
TOKENIZERS = RESULTS / "tokenizers"
INTERPRETABILITY = RESULTS / "interpretability"  # Track B: heads, ablation, attribution, mediation
ANALYSIS = RESULTS / "analysis"
HYPOTHESES = RESULTS / "hypotheses.json"
SNAPSHOT = RESULTS / "SNAPSHOT.md"
PLOTS_TEMPLATE = RESULTS / "plots" / "offline.html"

METRICS = Path("metrics")
TRAIN_CURVES = METRICS / "train"  # train_loss.csv, dev_loss.csv
TRAIN_METRICS = METRICS / "train.json"
EVAL_METRICS = METRICS / "eval.json"
COST_METRICS = METRICS / "cost.json"
SWEEP_METRICS = METRICS / "sweep.json"
CENSUS_METRICS = METRICS / "census.json"
TOKENIZERS_METRICS = METRICS / "tokenizers.json"
HYPOTHESES_METRICS = METRICS / "hypotheses.json"
INTERPRETABILITY_METRICS = METRICS / "interpretability.json"

# The scale profile's working folder (qfair.scale): the same layout as the root below it, so
# ``SCALE / RESULTS`` is its results folder and ``SCALE / "params.yaml"`` its params.
SCALE = Path("scale")

PAPER = Path("paper")
PAPER_GENERATED = PAPER / "generated"
PAPER_PDF = PAPER / "build" / "main.pdf"
PAPER_FIRST_PAGE = PAPER / "build" / "page1.png"
