"""Stage track_d: Track D (D-001 to D-005) on the held-out treebank sentences (qfair.treebank.run)."""

import pandas as pd
from transformers import AutoTokenizer

from qfair import paths
from qfair.determinism import deterministic_cpu
from qfair.io import write_csv, write_json
from qfair.models.hub import model_kind, preflight
from qfair.models.load import load_model
from qfair.params import load_params
from qfair.scoring.causal import model_device
from qfair.stage import run_stage
from qfair.treebank.boundaries import external_splitters, fast_tokenizer_splitter
from qfair.treebank.heads import outlier_flags, sensitive_heads
from qfair.treebank.run import run_track_d, track_d_metrics

OUT = paths.RESULTS / "track_d"
METRICS = paths.METRICS / "track_d.json"


def main() -> None:
    params = load_params()
    td = params.track_d
    if td is None or not (paths.CORPUS / "treebank").is_dir():
        reason = "this profile has no track_d params or no treebanks (corpus.treebanks)"
        write_json(OUT / "not_run.json", {"reason": reason})
        write_json(METRICS, {"run": False, "reason": reason})
        return
    preflight(params, model=False, flores=False)
    deterministic_cpu(params.train.threads)
    model_dir = paths.final_model(params.profile)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Eager attention: the head hooks of D-005 see every head's value (as in Track B).
    model = load_model(model_dir, dtype=params.eval.dtype, device=params.eval.device,
                       attn_implementation="eager", kind=model_kind(params))
    splitters = {"qfair": fast_tokenizer_splitter(tokenizer), **external_splitters(params.tokenizers)}
    census_heads = pd.read_csv(paths.CENSUS / "attention_heads.csv")
    mediation = pd.read_csv(paths.INTERPRETABILITY / "mediation.csv")
    flags = {"outlier_heavy": outlier_flags(census_heads, td.head_fraction),
             "quantization_sensitive": sensitive_heads(mediation, td.head_fraction)}
    run = run_track_d(model, tokenizer, paths.CORPUS, td, params.compress.exclude_modules, splitters, flags,
                      params.analysis.alpha, params.eval.confidence, model_device(model))
    # an undefined estimate (no aligned word, no predicted boundary) is NaN on purpose: INCONCLUSIVE
    undefined = {"ledger": ["value", "ci_low", "ci_high", "p", "p_holm"],
                 "boundaries": ["precision", "recall", "f1"]}
    for name in ("features", "structural", "boundaries", "words", "head_drops", "heads", "ledger"):
        write_csv(OUT / f"{name}.csv", getattr(run, name), may_be_empty=undefined.get(name, []))
    metrics = track_d_metrics(run, td)
    write_json(METRICS, metrics)
    print(run.ledger[["id", "language", "value", "ci_low", "ci_high", "p_holm", "verdict"]].to_string())


if __name__ == "__main__":
    run_stage("track_d", main)
