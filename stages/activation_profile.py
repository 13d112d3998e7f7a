"""Stage activation_profile: per language and layer, block output norms, massive activations, sinks."""

from transformers import AutoTokenizer

from qfair import paths
from qfair.analysis.activations import profile_languages
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
    layers, heads = profile_languages(model, tokenizer, read_split(paths.CORPUS, "test"),
                                      params.eval.batch_tokens, params.eval.max_tokens)
    write_csv(paths.ACTIVATIONS / "layers.csv", layers)
    write_csv(paths.ACTIVATIONS / "sink_heads.csv", heads)
    print(layers.groupby("layer")[["attn_out_norm", "mlp_out_norm", "residual_norm", "sink_mass"]]
          .mean().to_string())


if __name__ == "__main__":
    run_stage("activation_profile", main)
