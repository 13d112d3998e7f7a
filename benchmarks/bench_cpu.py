"""CPU benchmarks for the embedded profile, measured side by side in one run (ratios, not times).

1. Batched, length-sorted evaluation vs scoring one item at a time (target: >= 3x).
2. Sweep cost per config (quantize in place from an in-memory snapshot, evaluate) vs a naive
   loop that reloads the model from disk for every config.

Run after `dvc repro` (it uses models/embedded/final and data/corpus):
    python benchmarks/bench_cpu.py [--items 20] [--configs 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from qfair.corpus.store import read_split
from qfair.models.linears import target_linears
from qfair.models.load import load_model
from qfair.params import load_params
from qfair.quant.configs import parse_config
from qfair.quant.methods import WeightSnapshot
from qfair.scoring.causal import score_items, score_items_one_by_one

MODEL = Path("models/embedded/final")
CONFIGS = ["rtn-w4-ch-sym", "aciq-laplace-w4-ch", "rtn-w3-g128-sym", "prune-magnitude-tensor-50"]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20, help="test items per language")
    parser.add_argument("--configs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="1,256,512,1024,4096", help="batch token budgets")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch_tokens = load_params().eval.batch_tokens
    tokenizer = AutoTokenizer.from_pretrained(str(MODEL))
    model = load_model(MODEL)
    test = read_split("data/corpus", "test")
    texts = [t for items in test.values() for t in list(items.values())[: args.items]]
    print(f"{len(texts)} items ({args.items} per language x {len(test)} languages), "
          f"{args.threads} threads")

    score_items(model, tokenizer, texts[:50], batch_tokens, 1024)  # warm-up
    batched, t_batched = timed(lambda: score_items(model, tokenizer, texts, batch_tokens, 1024))
    single, t_single = timed(lambda: score_items_one_by_one(model, tokenizer, texts, 1024))
    max_diff = float(abs(batched.nll - single.nll).max())
    print(f"[eval] batched (eval.batch_tokens={batch_tokens}) {t_batched:.2f} s, one-by-one "
          f"{t_single:.2f} s: speed-up {t_single / t_batched:.2f}x "
          f"(max |NLL difference| {max_diff:.2e} nats)")
    sizes = [int(size) for size in args.sizes.split(",")]
    times = {size: timed(lambda s=size: score_items(model, tokenizer, texts, s, 1024))[1]
             for size in sizes}
    print("[eval] seconds by batch token budget: "
          + ", ".join(f"{size}: {seconds:.2f}" for size, seconds in times.items()))

    configs = [parse_config(name) for name in CONFIGS[: args.configs]]
    snapshot = WeightSnapshot(target_linears(model, ["lm_head"]))

    def in_memory():
        for config in configs:
            config.apply(snapshot)
            score_items(model, tokenizer, texts, batch_tokens, 1024)
            snapshot.restore()

    def naive():
        for config in configs:
            fresh = load_model(MODEL)
            linears = target_linears(fresh, ["lm_head"])
            config.apply(WeightSnapshot(linears))
            score_items(fresh, tokenizer, texts, batch_tokens, 1024)

    # Warm-up (first-call costs of the quantizers and of loading) outside both timings.
    configs[0].apply(snapshot)
    snapshot.restore()
    load_model(MODEL)
    _, t_memory = timed(in_memory)
    _, t_naive = timed(naive)
    print(f"[sweep] per config: in-memory {t_memory / len(configs):.2f} s, reload-quantize-"
          f"evaluate {t_naive / len(configs):.2f} s: ratio {t_naive / t_memory:.2f}x")


if __name__ == "__main__":
    main()
