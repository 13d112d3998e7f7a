"""Stage snapshot: results/SNAPSHOT.md, the README's results snapshot."""


import pandas as pd

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
    manifest = read_json("data/corpus/manifest.json")["languages"]
    markdown = snapshot_markdown(
        train=read_json("metrics/train.json"),
        eval_metrics=read_json("metrics/eval.json"),
        per_language=pd.read_csv("results/eval/per_language.csv"),
        manifest=manifest,
        disparity=pd.read_csv("results/sweep/disparity.csv"),
        per_language_sweep=pd.read_csv("results/sweep/per_language.csv"),
        parameters=read_json("metrics/train.json")["parameters"],
        ledger=read_json("results/hypotheses.json"),
        census=read_json("metrics/census.json"),
        confidence=params.eval.confidence,
        profile=params.profile,
        **share_column(params, manifest),
    )
    write_text("results/SNAPSHOT.md", markdown)


if __name__ == "__main__":
    run_stage("snapshot", main, timed=False)
