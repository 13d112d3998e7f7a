"""Stage evaluate: per-language NLL and bits per byte of the model, with bootstrap CIs.

Also scores a per-language byte-unigram baseline with the same aggregation, so "the model learns"
is a measured statement. The unigram is fitted on the training split; a corpus without one
(FLORES+, paper profile) fits it on the dev split, so dev is scored in-sample and test is not.
A masked LM (mBERT, XLM-R) is scored by pseudo-log-likelihood (qfair.eval_mlm): its bits per
byte are not comparable with a causal LM's. Launched by ``torchrun``, the ranks share the batches
(qfair.distributed) and rank 0 writes the outputs, identical to one process (docs/gpu.md).
"""

from functools import partial
from pathlib import Path

from transformers import AutoTokenizer

from qfair import distributed
from qfair.analysis.resource import resource_levels
from qfair.corpus.store import read_manifest, read_split
from qfair.determinism import deterministic_cpu
from qfair.eval import bits_per_byte, score_corpus, summarize_languages, unigram_byte_nll
from qfair.eval_mlm import model_kind, pll_bits_per_byte_note, score_items_pll
from qfair.hub import preflight
from qfair.io import write_csv, write_json
from qfair.models import load_model
from qfair.params import load_params
from qfair.stage import run_stage

CORPUS = Path("data/corpus")
MODELS = Path("models")  # models/<profile>/final
OUT = Path("results/eval")


def main() -> None:
    params = load_params()
    ev = params.eval
    preflight(params, model=False, flores=False)  # eval.device: cuda on a machine without CUDA
    deterministic_cpu(params.train.threads)
    device = distributed.setup(ev.device)  # joins the torchrun group when launched by torchrun
    model_dir = MODELS / params.profile / "final"
    kind = model_kind(params)
    masked = kind == "masked_lm"
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = load_model(model_dir, dtype=ev.dtype, device=str(device), kind=kind)
    splits = {split: read_split(CORPUS, split) for split in ev.splits}
    scorer = score_items_pll if masked else partial(distributed.score_items, compile=ev.compile)
    items = score_corpus(model, tokenizer, splits, ev.batch_tokens, ev.max_tokens, scorer=scorer)
    if not distributed.is_main():  # every rank holds the full result; one writes it
        distributed.teardown()
        return
    unigram_split = "train" if any(read_split(CORPUS, "train").values()) else "dev"
    fitted_on = read_split(CORPUS, unigram_split)
    items["unigram_nll"] = 0.0
    for (split, lang), index in items.groupby(["split", "language"]).groups.items():
        texts = [splits[split][lang][i] for i in items.loc[index, "item_id"]]
        items.loc[index, "unigram_nll"] = unigram_byte_nll(list(fitted_on[lang].values()), texts)
    ci = dict(resamples=ev.bootstrap_resamples, confidence=ev.confidence, method=ev.ci_method,
              seed=ev.seed)
    summary = summarize_languages(items, **ci)
    unigram = {key: bits_per_byte(g["unigram_nll"].to_numpy(), g["n_bytes"].to_numpy())
               for key, g in items.groupby(["split", "language"])}
    summary["unigram_bits_per_byte"] = [unigram[(s, lang)] for s, lang in
                                        zip(summary["split"], summary["language"], strict=True)]
    manifest = read_manifest(CORPUS)["languages"]
    levels = resource_levels(params, manifest)
    # A language without a published pretraining share has no level: an empty cell.
    summary.insert(2, "resource_level", summary["language"].map(levels.level_or_nan))
    summary.insert(2, "script", summary["language"].map(lambda lang: manifest[lang]["script"]))
    write_csv(OUT / "items.csv", items)
    write_csv(OUT / "per_language.csv", summary, may_be_empty=["resource_level"])
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
        if params.model.source == "hub":  # what these numbers are, for a reader of this file alone
            metrics[split].update(scoring=pll_bits_per_byte_note() if masked else "causal bits per byte",
                                  unigram_fitted_on=unigram_split)
    write_json(Path("metrics/eval.json"), metrics)
    for split, m in metrics.items():
        print(f"{split}: bpb {m['min_bits_per_byte']:.3f}-{m['max_bits_per_byte']:.3f} "
              f"(unigram mean {m['mean_unigram_bits_per_byte']:.3f}); "
              f"{m['languages_below_unigram']}/{m['languages']} languages below the unigram")
    if masked:
        print(f"scores are {pll_bits_per_byte_note()}")
    if not levels.complete:
        print(f"resource level: {levels.source}; none for {levels.missing} (empty resource_level cells)")
    distributed.teardown()


if __name__ == "__main__":
    run_stage("evaluate", main)
