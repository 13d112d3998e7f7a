"""Stage activation_profile: per language and layer, block output norms, massive activations, sinks."""

from pathlib import Path

from transformers import AutoTokenizer

from qfair.analysis.activations import profile_languages
from qfair.corpus.store import read_split
from qfair.determinism import deterministic_cpu
from qfair.eval_mlm import model_kind
from qfair.hub import preflight
from qfair.io import write_csv
from qfair.models import load_model
from qfair.params import load_params
from qfair.stage import run_stage

CORPUS = Path("data/corpus")
MODELS = Path("models")  # models/<profile>/final
OUT = Path("results/activations")


def main() -> None:
    params = load_params()
    preflight(params, model=False, flores=False)  # eval.device: cuda on a machine without CUDA
    deterministic_cpu(params.train.threads)
    model_dir = MODELS / params.profile / "final"
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Eager attention returns the attention probabilities the sink measurement needs.
    model = load_model(model_dir, dtype=params.eval.dtype, device=params.eval.device,
                       attn_implementation="eager", kind=model_kind(params))
    layers, heads = profile_languages(model, tokenizer, read_split(CORPUS, "test"),
                                      params.eval.batch_tokens, params.eval.max_tokens)
    write_csv(OUT / "layers.csv", layers)
    write_csv(OUT / "sink_heads.csv", heads)
    print(layers.groupby("layer")[["attn_out_norm", "mlp_out_norm", "residual_norm", "sink_mass"]]
          .mean().to_string())


if __name__ == "__main__":
    run_stage("activation_profile", main)
