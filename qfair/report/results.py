"""Everything the report reads, loaded once from one profile's pipeline outputs.

The root pipeline writes them below the repository root, the scale profile below ``scale/`` in the
same layout (qfair.scale), so one loader reads either: ``load_results(root)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qfair import paths
from qfair.io import read_json

# Pipeline outputs the report reads (the report stage lists the same paths as DVC deps).
INPUTS = {
    "train_metrics": paths.TRAIN_METRICS,
    "train_loss": paths.TRAIN_CURVES / "train_loss.csv",
    "dev_loss": paths.TRAIN_CURVES / "dev_loss.csv",
    "eval_metrics": paths.EVAL_METRICS,
    "per_language": paths.EVAL / "per_language.csv",
    "sweep": paths.SWEEP / "per_language.csv",
    "disparity": paths.SWEEP / "disparity.csv",
    "threshold_bits": paths.SWEEP / "threshold_bits.csv",
    "census": paths.CENSUS_METRICS,
    "tensors": paths.CENSUS / "tensors.csv",
    "sink_heads": paths.ACTIVATIONS / "sink_heads.csv",
    "premium": paths.TOKENIZERS / "premium.csv",
    "languages": paths.ANALYSIS / "languages.csv",
    "layers": paths.ANALYSIS / "layers.csv",
    "checkpoints": paths.ANALYSIS / "checkpoints.csv",
    "ledger": paths.HYPOTHESES,
    "manifest": paths.CORPUS_MANIFEST,
    "timings": paths.TIMINGS,
}
# Inputs only some runs write (the GPU run's activation outliers): None where absent.
OPTIONAL = {
    "outliers": paths.INPUT_OUTLIERS_LANGUAGES,
    "cost": paths.EVAL / "cost.csv",  # C-004 (evaluate, eval.cost.enabled)
    # Track B (the interpretability stage), absent from a scale run that predates it
    "specificity": paths.INTERPRETABILITY / "head_specificity.csv",
    "mediation": paths.INTERPRETABILITY / "mediation.csv",
    "block_quantization": paths.INTERPRETABILITY / "block_quantization.csv",
    "attribution_check": paths.INTERPRETABILITY / "attribution_check.csv",
    "interpretability_languages": paths.INTERPRETABILITY / "languages.csv",
    "probes": paths.INTERPRETABILITY / "probes.csv",  # B-002, where the profile runs it
    # B-005 for interpretability.activation_config, where the profile sets one
    "activation_mediation": paths.INTERPRETABILITY / "mediation_activations.csv",
    "activation_block_quantization": paths.INTERPRETABILITY / "block_quantization_activations.csv",
}


@dataclass
class Results:
    train_metrics: dict
    train_loss: pd.DataFrame
    dev_loss: pd.DataFrame
    eval_metrics: dict
    per_language: pd.DataFrame
    sweep: pd.DataFrame
    disparity: pd.DataFrame
    threshold_bits: pd.DataFrame
    census: dict
    tensors: pd.DataFrame
    sink_heads: pd.DataFrame
    premium: pd.DataFrame
    languages: pd.DataFrame
    layers: pd.DataFrame
    checkpoints: pd.DataFrame
    ledger: dict
    manifest: dict
    timings: dict[str, dict]
    outliers: pd.DataFrame | None = None
    cost: pd.DataFrame | None = None
    specificity: pd.DataFrame | None = None
    mediation: pd.DataFrame | None = None
    block_quantization: pd.DataFrame | None = None
    attribution_check: pd.DataFrame | None = None
    interpretability_languages: pd.DataFrame | None = None
    probes: pd.DataFrame | None = None
    activation_mediation: pd.DataFrame | None = None
    activation_block_quantization: pd.DataFrame | None = None

    def hypothesis(self, rule_id: str) -> dict:
        for row in self.ledger["hypotheses"]:
            if row["id"] == rule_id:
                return row
        raise KeyError(f"hypothesis {rule_id!r} is not in results/hypotheses.json")


def load_results(root: Path | str = ".") -> Results:
    """Read every report input below ``root``; a missing file is named in the error."""
    root = Path(root)
    loaded: dict[str, object] = {}
    for field, relative in INPUTS.items():
        path = root / relative
        if field == "timings":
            loaded[field] = (
                {p.stem: read_json(p) for p in sorted(path.glob("*.json"))} if path.is_dir() else {}
            )
            continue
        if not path.is_file():
            raise FileNotFoundError(f"report input {relative} is missing; run the stage that writes it")
        loaded[field] = read_json(path) if path.suffix == ".json" else pd.read_csv(path)
    for field, relative in OPTIONAL.items():
        loaded[field] = pd.read_csv(root / relative) if (root / relative).is_file() else None
    return Results(**loaded)


def has_results(root: Path | str) -> bool:
    """Whether a profile has run below ``root``: any report input exists (then all must)."""
    return any((Path(root) / relative).is_file() for field, relative in INPUTS.items() if field != "timings")
