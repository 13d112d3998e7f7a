"""Stage controlled_analysis: the controlled family's tables and verdicts (EXP-001c, EXP-023,
EXP-025; docs/controlled.md), from the runs' committed results in controlled/runs (CPU).

The runs themselves are frozen stages of controlled/dvc.yaml, trained on a GPU; this stage only
reads what they committed, so it runs in every `dvc repro`.
"""

import json
from pathlib import Path

from qfair.controlled.analysis import (
    complete_seeds,
    dropout_effects,
    gather,
    ledger,
    seed_spread,
    share_slopes,
    size_slopes,
)
from qfair.controlled.design import load_spec, run_plans
from qfair.io import write_csv, write_json
from qfair.stage import run_stage

FAMILY = Path("controlled")
OUT = Path("results/controlled")
METRICS = Path("metrics/controlled.json")


def main() -> None:
    spec = load_spec(FAMILY / "params.yaml")
    runs, languages = gather(spec, FAMILY / "runs")
    slopes = share_slopes(spec, languages)
    dropout = dropout_effects(runs, spec.confidence)
    sizes = size_slopes(runs, spec.confidence)
    spread = seed_spread(runs)
    hypotheses = ledger(spec, slopes, dropout, sizes)
    write_csv(OUT / "runs.csv", runs, may_be_empty=["rotation"])
    write_csv(OUT / "languages.csv", languages, may_be_empty=["rotation"])
    write_csv(OUT / "slopes.csv", slopes, may_be_empty=["seed_sd"])  # pooled rows have no seed SD
    write_csv(OUT / "dropout.csv", dropout, may_be_empty=["ci_low", "ci_high"])  # one pair: no CI
    write_csv(OUT / "sizes.csv", sizes, may_be_empty=["ci_low", "ci_high"])  # two runs: no CI
    write_csv(OUT / "seed_spread.csv", spread)
    write_json(OUT / "hypotheses.json", {"hypotheses": hypotheses})
    designed = [plan.name for plan in run_plans(spec)]
    write_json(METRICS, {
        "runs_designed": len(designed), "runs_committed": len(spec.runs),
        "pending_runs": [name for name in designed if name not in spec.runs],
        "share_seeds_complete": complete_seeds(spec, languages),
        "share_levels": spec.shares.levels, "target_languages": spec.shares.targets,
        "share_seeds": spec.shares.seeds, "configs": spec.configs,
        "verdicts": {h["id"]: h["verdict"] for h in hypotheses},
    })
    for h in hypotheses:
        value = h.get("value", h.get("interim_value"))
        shown = "no estimate yet" if value is None else f"{h['estimate']} = {value:.3g}"
        print(f"{h['id']}: {h['verdict']} ({shown})"
              + (f"; pending {len(h['pending_runs'])} runs" if "pending_runs" in h else ""))
    print(json.dumps({"runs": len(spec.runs), "of": len(designed)}))


if __name__ == "__main__":
    run_stage("controlled_analysis", main)
