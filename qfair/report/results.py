"""Everything the report reads, loaded once from the pipeline's outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qfair.io import read_json

# Pipeline outputs the report reads (the report stage lists the same paths as DVC deps).
INPUTS = {
    "train_metrics": "metrics/train.json",
    "train_loss": "metrics/train/train_loss.csv",
    "dev_loss": "metrics/train/dev_loss.csv",
    "eval_metrics": "metrics/eval.json",
    "per_language": "results/eval/per_language.csv",
    "sweep": "results/sweep/per_language.csv",
    "disparity": "results/sweep/disparity.csv",
    "threshold_bits": "results/sweep/threshold_bits.csv",
    "census": "metrics/census.json",
    "tensors": "results/census/tensors.csv",
    "sink_heads": "results/activations/sink_heads.csv",
    "premium": "results/tokenizers/premium.csv",
    "languages": "results/analysis/languages.csv",
    "layers": "results/analysis/layers.csv",
    "checkpoints": "results/analysis/checkpoints.csv",
    "ledger": "results/hypotheses.json",
    "manifest": "data/corpus/manifest.json",
    "timings": "results/timings",
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
    return Results(**loaded)
