"""Stage snapshot: results/SNAPSHOT.md, the README's results snapshot."""


import pandas as pd

from qfair.io import read_json, write_text
from qfair.params import load_params
from qfair.report.snapshot import snapshot_markdown


def main() -> None:
    markdown = snapshot_markdown(
        train=read_json("metrics/train.json"),
        eval_metrics=read_json("metrics/eval.json"),
        per_language=pd.read_csv("results/eval/per_language.csv"),
        manifest=read_json("data/corpus/manifest.json")["languages"],
        disparity=pd.read_csv("results/sweep/disparity.csv"),
        per_language_sweep=pd.read_csv("results/sweep/per_language.csv"),
        parameters=read_json("metrics/train.json")["parameters"],
        ledger=read_json("results/hypotheses.json"),
        census=read_json("metrics/census.json"),
        confidence=load_params().eval.confidence,
    )
    write_text("results/SNAPSHOT.md", markdown)


if __name__ == "__main__":
    main()
