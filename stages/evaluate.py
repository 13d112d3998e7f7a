"""Stage evaluate: per-language NLL and bits per byte of the model, with bootstrap CIs.

Also scores a per-language byte-unigram baseline with the same aggregation, so "the model learns"
is a measured statement (qfair.scoring.summary says where it is fitted). A masked LM is scored by
pseudo-log-likelihood (qfair.scoring.mlm). Launched by ``torchrun``, the ranks share the batches
(qfair.scoring.distributed) and rank 0 writes the outputs, identical to one process (docs/gpu.md).

With ``eval.cost.enabled``, rank 0 then times (and on a GPU meters) a separate scoring pass of each
language's test split on its own device (C-004, qfair.scoring.cost): results/eval/cost.csv and
metrics/cost.json, which record the run, not the result; the outputs above do not depend on it.
"""

from functools import partial

import pandas as pd
from transformers import AutoTokenizer

from qfair import paths, process_group
from qfair.analysis.resource import resource_levels
from qfair.corpus.store import read_manifest, read_split
from qfair.determinism import deterministic_cpu
from qfair.io import write_csv, write_json
from qfair.models.hub import model_kind, preflight
from qfair.models.load import load_model
from qfair.params import load_params
from qfair.scoring import causal
from qfair.scoring.cost import COST_COLUMNS, ENERGY_COLUMNS, cost_metrics, measure_cost
from qfair.scoring.mlm import pll_bits_per_byte_note, score_items_pll
from qfair.scoring.summary import add_unigram_nll, eval_metrics, language_summary, score_splits, unigram_split
from qfair.stage import run_stage


def main() -> None:
    params = load_params()
    ev = params.eval
    preflight(params, model=False, flores=False)  # eval.device: cuda on a machine without CUDA
    deterministic_cpu(params.train.threads)
    device = process_group.setup(ev.device)  # joins the torchrun group when launched by torchrun
    model_dir = paths.final_model(params.profile)
    kind = model_kind(params)
    masked = kind == "masked_lm"
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = load_model(model_dir, dtype=ev.dtype, device=str(device), kind=kind)
    splits = {split: read_split(paths.CORPUS, split) for split in ev.splits}
    items = score_splits(model, tokenizer, splits, masked, ev.batch_tokens, ev.max_tokens, ev.compile)
    if not process_group.is_main():  # every rank holds the full result; one writes it
        process_group.teardown()
        return
    fitted_split = unigram_split(read_split(paths.CORPUS, "train"))
    add_unigram_nll(items, splits, read_split(paths.CORPUS, fitted_split))
    manifest = read_manifest(paths.CORPUS)["languages"]
    levels = resource_levels(params, manifest)
    summary = language_summary(items, manifest, levels, ev.bootstrap_resamples, ev.confidence,
                               ev.ci_method, ev.seed)
    write_csv(paths.EVAL / "items.csv", items)
    write_csv(paths.EVAL / "per_language.csv", summary, may_be_empty=["resource_level"])
    test = summary[summary["split"] == "test"]
    write_csv(paths.EVAL / "plots/test_bits_per_byte.csv", test[["language", "bits_per_byte"]])
    metrics = eval_metrics(summary, params.model.source == "hub", masked, fitted_split)
    write_json(paths.EVAL_METRICS, metrics)
    for split, m in metrics.items():
        print(f"{split}: bpb {m['min_bits_per_byte']:.3f}-{m['max_bits_per_byte']:.3f} "
              f"(unigram mean {m['mean_unigram_bits_per_byte']:.3f}); "
              f"{m['languages_below_unigram']}/{m['languages']} languages below the unigram")
    if masked:
        print(f"scores are {pll_bits_per_byte_note()}")
    if not levels.complete:
        print(f"resource level: {levels.source}; none for {levels.missing} (empty resource_level cells)")
    measure_and_write_cost(model, tokenizer, splits, ev, masked, device)
    process_group.teardown()


def measure_and_write_cost(model, tokenizer, splits, ev, masked: bool, device) -> None:
    """C-004: one timed pass per language over the test split, after the evaluation's outputs."""
    cost_params = ev.cost
    cost = pd.DataFrame(columns=COST_COLUMNS)  # disabled: a header-only table, metrics say so
    if cost_params.enabled:
        test = splits["test"] if "test" in splits else read_split(paths.CORPUS, "test")
        scorer = (partial(score_items_pll, model, tokenizer, batch_tokens=ev.batch_tokens,
                          max_tokens=ev.max_tokens) if masked else
                  partial(causal.score_items, model, tokenizer, batch_tokens=ev.batch_tokens,
                          max_tokens=ev.max_tokens, compile=ev.compile))
        cost = measure_cost(scorer, test, device, cost_params.repeats, cost_params.grid_g_co2e_per_kwh)
    write_csv(paths.COST, cost, may_be_empty=ENERGY_COLUMNS)
    metrics = cost_metrics(cost, cost_params.grid_g_co2e_per_kwh, cost_params.repeats)
    write_json(paths.COST_METRICS, metrics)
    if metrics["enabled"]:
        print(f"cost: {metrics['min_seconds_per_kb']:.4f}-{metrics['max_seconds_per_kb']:.4f} s/kB "
              f"on {metrics['device']}; energy {metrics['energy_source']}")


if __name__ == "__main__":
    run_stage("evaluate", main)
