"""Stage tokenizer_premium: tokens per byte and premium vs English, per tokenizer (C-001b).

Compares the model's own tokenizer (named ``qfair`` when trained here, else by model.name) with
the external ones of params.tokenizers on every comparison split the corpus has: test and UDHR
(embedded), or test only (FLORES+ devtest; the paper profile has no UDHR split).
"""

from qfair import paths
from qfair.analysis.tokenization import load_token_counter, premium_table, tokenizers_counter
from qfair.corpus.store import read_manifest, read_split
from qfair.io import write_csv, write_json
from qfair.models.tokenizer import load_tokenizer
from qfair.params import load_params
from qfair.stage import run_stage

SPLITS = ("test", "udhr")  # the parallel comparison splits, where the corpus has them


def main() -> None:
    params = load_params()
    own = "qfair" if params.model.source == "train" else params.model.name
    tokenizers = {own: tokenizers_counter(load_tokenizer(paths.TOKENIZER))}
    for index, spec in enumerate(params.tokenizers):
        tokenizers[spec.name] = load_token_counter(**spec.model_dump(exclude={"name"}),
                                                   param=f"tokenizers[{index}] ({spec.name})")
    available = read_manifest(paths.CORPUS)["splits"]
    splits = {split: read_split(paths.CORPUS, split) for split in SPLITS if split in available}
    table = premium_table(tokenizers, splits, params.corpus.reference_language)
    write_csv(paths.TOKENIZERS / "premium.csv", table)
    test = table[table["split"] == "test"]
    summary = {name: {"max_premium": float(g["premium"].max()),
                      "max_premium_language": str(g.loc[g["premium"].idxmax(), "language"]),
                      "mean_premium": float(g["premium"].mean())}
               for name, g in test.groupby("tokenizer")}
    write_json(paths.TOKENIZERS_METRICS, summary)
    for name, entry in summary.items():
        print(f"{name:8s} mean premium {entry['mean_premium']:.2f}, max {entry['max_premium']:.2f} "
              f"({entry['max_premium_language']})")


if __name__ == "__main__":
    run_stage("tokenizer_premium", main)
