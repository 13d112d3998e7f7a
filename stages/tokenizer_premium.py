"""Stage tokenizer_premium: tokens per byte and premium vs English, per tokenizer (C-001b)."""

from pathlib import Path

from qfair.analysis.tokenization import load_token_counter, premium_table, tokenizers_counter
from qfair.corpus.store import read_split
from qfair.io import write_csv, write_json
from qfair.params import load_params
from qfair.tokenizer import load_tokenizer

CORPUS = Path("data/corpus")


def main() -> None:
    params = load_params()
    tokenizers = {"qfair": tokenizers_counter(load_tokenizer(Path("models/tokenizer")))}
    for index, spec in enumerate(params.tokenizers):
        tokenizers[spec.name] = load_token_counter(**spec.model_dump(exclude={"name"}),
                                                   param=f"tokenizers[{index}] ({spec.name})")
    splits = {split: read_split(CORPUS, split) for split in ("test", "udhr")}
    table = premium_table(tokenizers, splits, params.corpus.reference_language)
    write_csv(Path("results/tokenizers/premium.csv"), table)
    test = table[table["split"] == "test"]
    summary = {name: {"max_premium": float(g["premium"].max()),
                      "max_premium_language": str(g.loc[g["premium"].idxmax(), "language"]),
                      "mean_premium": float(g["premium"].mean())}
               for name, g in test.groupby("tokenizer")}
    write_json(Path("metrics/tokenizers.json"), summary)
    for name, entry in summary.items():
        print(f"{name:8s} mean premium {entry['mean_premium']:.2f}, max {entry['max_premium']:.2f} "
              f"({entry['max_premium_language']})")


if __name__ == "__main__":
    main()
