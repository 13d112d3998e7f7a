"""Stage activation_profile: per language and layer, block output norms, massive activations, sinks."""

from pathlib import Path

from transformers import AutoTokenizer

from qfair.analysis.activations import profile_languages
from qfair.corpus.store import read_split
from qfair.determinism import deterministic_cpu
from qfair.io import write_csv
from qfair.models import load_model
from qfair.params import load_params

CORPUS = Path("data/corpus")
MODEL = Path("models/embedded/final")
OUT = Path("results/activations")


def main() -> None:
    params = load_params()
    deterministic_cpu(params.train.threads)
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
    # Eager attention returns the attention probabilities the sink measurement needs.
    model = load_model(MODEL, attn_implementation="eager")
    layers, heads = profile_languages(model, tokenizer, read_split(CORPUS, "test"),
                                      params.eval.batch_tokens, params.eval.max_tokens)
    write_csv(OUT / "layers.csv", layers)
    write_csv(OUT / "sink_heads.csv", heads)
    print(layers.groupby("layer")[["attn_out_norm", "mlp_out_norm", "residual_norm", "sink_mass"]]
          .mean().to_string())


if __name__ == "__main__":
    main()
