"""Stage interpretability: Track B (B-001 to B-005) on the final model
(qfair.analysis.interpretability)."""

from transformers import AutoTokenizer

from qfair import paths
from qfair.analysis.interpretability import (
    interpretability_metrics,
    run_interpretability,
)
from qfair.analysis.patching import item_set
from qfair.corpus.store import read_split
from qfair.determinism import deterministic_cpu
from qfair.io import write_csv, write_json
from qfair.models.hub import model_kind, preflight
from qfair.models.load import load_model
from qfair.params import load_params
from qfair.scoring.causal import model_device
from qfair.stage import run_stage


def main() -> None:
    params = load_params()
    preflight(params, model=False, flores=False)
    deterministic_cpu(params.train.threads)
    ip = params.interpretability
    model_dir = paths.final_model(params.profile)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Eager attention returns the attention probabilities B-001 reads.
    model = load_model(model_dir, dtype=params.eval.dtype, device=params.eval.device,
                       attn_implementation="eager", kind=model_kind(params))
    items = item_set(tokenizer, read_split(paths.CORPUS, "test"), ip.items_per_language, ip.seed,
                     params.eval.batch_tokens, params.eval.max_tokens)
    run = run_interpretability(model, items, model.config.num_attention_heads, ip,
                               params.compress.exclude_modules, params.analysis.alpha, model_device(model))
    write_csv(paths.INTERPRETABILITY / "head_specificity.csv", run.specificity)
    write_csv(paths.INTERPRETABILITY / "ablation.csv", run.ablation)
    write_csv(paths.INTERPRETABILITY / "attribution.csv", run.attribution)
    write_csv(paths.INTERPRETABILITY / "attribution_check.csv", run.attribution_check,
              may_be_empty=["spearman"])
    write_csv(paths.INTERPRETABILITY / "mediation.csv", run.mediation,
              may_be_empty=["recovered_share"])
    write_csv(paths.INTERPRETABILITY / "block_quantization.csv", run.block_quantization)
    if run.probes is not None:
        write_csv(paths.INTERPRETABILITY / "probes.csv", run.probes)
    if run.activation_mediation is not None:
        write_csv(paths.INTERPRETABILITY / "mediation_activations.csv", run.activation_mediation,
                  may_be_empty=["recovered_share"])
        write_csv(paths.INTERPRETABILITY / "block_quantization_activations.csv",
                  run.activation_block_quantization)
    write_csv(paths.INTERPRETABILITY / "languages.csv", run.languages,
              may_be_empty=["max_block_recovered_share"])
    metrics = interpretability_metrics(run)
    write_json(paths.INTERPRETABILITY_METRICS, metrics)
    print(metrics)


if __name__ == "__main__":
    run_stage("interpretability", main)
