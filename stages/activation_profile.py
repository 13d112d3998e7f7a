"""Stage activation_profile: per language and layer, block output norms, massive activations, sinks;
per language and compressed Linear layer, input outlier statistics (EXP-035)."""

from transformers import AutoTokenizer

from qfair import paths
from qfair.analysis.activations import (
    RATIO_COLUMNS,
    outlier_stats_languages,
    outlier_summary,
    profile_languages,
)
from qfair.corpus.store import read_split
from qfair.determinism import deterministic_cpu
from qfair.io import write_csv
from qfair.models.hub import model_kind, preflight
from qfair.models.load import load_model
from qfair.params import load_params
from qfair.stage import run_stage


def main() -> None:
    params = load_params()
    preflight(params, model=False, flores=False)  # eval.device: cuda on a machine without CUDA
    deterministic_cpu(params.train.threads)
    model_dir = paths.final_model(params.profile)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Eager attention returns the attention probabilities the sink measurement needs.
    model = load_model(model_dir, dtype=params.eval.dtype, device=params.eval.device,
                       attn_implementation="eager", kind=model_kind(params))
    texts = read_split(paths.CORPUS, "test")
    layers, heads = profile_languages(model, tokenizer, texts, params.eval.batch_tokens,
                                      params.eval.max_tokens)
    write_csv(paths.ACTIVATIONS / "layers.csv", layers)
    write_csv(paths.ACTIVATIONS / "sink_heads.csv", heads)
    # A second pass (no attention probabilities): inputs of the Linear layers the quantizers compress.
    outliers = outlier_stats_languages(model, tokenizer, texts, params.compress.exclude_modules,
                                       params.eval.batch_tokens, params.eval.max_tokens)
    summary = outlier_summary(outliers)
    write_csv(paths.INPUT_OUTLIERS, outliers, may_be_empty=RATIO_COLUMNS)
    write_csv(paths.INPUT_OUTLIERS_LANGUAGES, summary,
              may_be_empty=[c for c in summary.columns if "over_median" in c])
    print(layers.groupby("layer")[["attn_out_norm", "mlp_out_norm", "residual_norm", "sink_mass"]]
          .mean().to_string())
    print(summary.to_string(index=False))


if __name__ == "__main__":
    run_stage("activation_profile", main)
