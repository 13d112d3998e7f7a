"""Stage evaluate: per-language NLL and bits per byte of the trained model, with bootstrap CIs.

Also scores a per-language byte-unigram baseline with the same aggregation, so "the model learns"
is a measured statement.
"""

from pathlib import Path

from transformers import AutoTokenizer

from qfair.corpus.store import read_manifest, read_split
from qfair.determinism import deterministic_cpu
from qfair.eval import bits_per_byte, score_corpus, summarize_languages, unigram_byte_nll
from qfair.io import write_csv, write_json
from qfair.models import load_model
from qfair.params import load_params

CORPUS = Path("data/corpus")
MODEL = Path("models/embedded/final")
OUT = Path("results/eval")


def main() -> None:
    params = load_params()
    ev = params.eval
    deterministic_cpu(params.train.threads)
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
    model = load_model(MODEL)
    splits = {split: read_split(CORPUS, split) for split in ev.splits}
    items = score_corpus(model, tokenizer, splits, ev.batch_tokens, ev.max_tokens)
    train = read_split(CORPUS, "train")
    items["unigram_nll"] = 0.0
    for (split, lang), index in items.groupby(["split", "language"]).groups.items():
        texts = [splits[split][lang][i] for i in items.loc[index, "item_id"]]
        items.loc[index, "unigram_nll"] = unigram_byte_nll(list(train[lang].values()), texts)
    ci = dict(resamples=ev.bootstrap_resamples, confidence=ev.confidence, method=ev.ci_method,
              seed=ev.seed)
    summary = summarize_languages(items, **ci)
    unigram = {key: bits_per_byte(g["unigram_nll"].to_numpy(), g["n_bytes"].to_numpy())
               for key, g in items.groupby(["split", "language"])}
    summary["unigram_bits_per_byte"] = [unigram[(s, lang)] for s, lang in
                                        zip(summary["split"], summary["language"], strict=True)]
    manifest = read_manifest(CORPUS)["languages"]
    summary.insert(2, "resource_level", summary["language"].map(
        lambda lang: manifest[lang]["resource_level"]))
    summary.insert(2, "script", summary["language"].map(lambda lang: manifest[lang]["script"]))
    write_csv(OUT / "items.csv", items)
    write_csv(OUT / "per_language.csv", summary)
    test = summary[summary["split"] == "test"]
    write_csv(OUT / "plots/test_bits_per_byte.csv", test[["language", "bits_per_byte"]])
    metrics = {}
    for split, group in summary.groupby("split"):
        metrics[split] = {
            "mean_bits_per_byte": float(group["bits_per_byte"].mean()),
            "min_bits_per_byte": float(group["bits_per_byte"].min()),
            "max_bits_per_byte": float(group["bits_per_byte"].max()),
            "mean_unigram_bits_per_byte": float(group["unigram_bits_per_byte"].mean()),
            "languages_below_unigram": int((group["bits_per_byte"]
                                            < group["unigram_bits_per_byte"]).sum()),
            "languages": len(group),
            "bits_per_byte": dict(zip(group["language"], group["bits_per_byte"].round(6), strict=True)),
        }
    write_json(Path("metrics/eval.json"), metrics)
    for split, m in metrics.items():
        print(f"{split}: bpb {m['min_bits_per_byte']:.3f}-{m['max_bits_per_byte']:.3f} "
              f"(unigram mean {m['mean_unigram_bits_per_byte']:.3f}); "
              f"{m['languages_below_unigram']}/{m['languages']} languages below the unigram")


if __name__ == "__main__":
    main()
