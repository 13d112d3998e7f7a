"""Stage snapshot: results/SNAPSHOT.md, the README's results snapshot."""

import pandas as pd

from qfair import paths
from qfair.analysis.resource import resource_levels
from qfair.io import read_json, write_text
from qfair.params import load_params
from qfair.report.snapshot import snapshot_markdown
from qfair.stage import run_stage


def share_column(params, manifest: dict) -> dict:
    """A hub model's per-language table shows its published pretraining shares (in percent)."""
    if params.model.source != "hub":
        return {}
    levels = resource_levels(params, manifest)
    return {"shares": {lang: 100 * share for lang, share in levels.share.items()},
            "share_label": "published pretraining share (%)", "share_format": ".3g"}


def main() -> None:
    params = load_params()
    manifest = read_json(paths.CORPUS_MANIFEST)["languages"]
    markdown = snapshot_markdown(
        train=read_json(paths.TRAIN_METRICS),
        eval_metrics=read_json(paths.EVAL_METRICS),
        per_language=pd.read_csv(paths.EVAL / "per_language.csv"),
        manifest=manifest,
        disparity=pd.read_csv(paths.SWEEP / "disparity.csv"),
        per_language_sweep=pd.read_csv(paths.SWEEP / "per_language.csv"),
        parameters=read_json(paths.TRAIN_METRICS)["parameters"],
        ledger=read_json(paths.HYPOTHESES),
        census=read_json(paths.CENSUS_METRICS),
        confidence=params.eval.confidence,
        profile=params.profile,
        **share_column(params, manifest),
    )
    write_text(paths.SNAPSHOT, markdown)


if __name__ == "__main__":
    run_stage("snapshot", main, timed=False)
