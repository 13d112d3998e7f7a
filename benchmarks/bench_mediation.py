"""B-005's mediation with cached full-precision values against recomputing them, side by side.

The interpretability stage records every component's full-precision value once (one pass) and then
runs the quantized model once per component. Without the cache each component needs the
full-precision value of every batch again: swap the full-precision weights in, run, record, swap the
quantized weights back, run patched. This script times both on the same model and item set and
checks that they give the same NLLs.

    python benchmarks/bench_mediation.py --model models/embedded/final [--device cpu] [--items 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from transformers import AutoTokenizer

from qfair import paths
from qfair.analysis.patching import cache_values, item_nll, item_set, mediation, recovered_share
from qfair.corpus.store import read_split
from qfair.models.hooks import ComponentHooks
from qfair.models.linears import target_linears
from qfair.models.load import load_model
from qfair.quant.configs import parse_config
from qfair.quant.methods.base import WeightSnapshot


def recomputed(model, hooks, items, components, snapshot, quantized_weights, device) -> np.ndarray:
    """Per component and batch: the full-precision value recomputed (weights swapped in and out),
    then the quantized model run with it restored."""
    out = []
    for component in components:
        def restore(index: int, component=component):
            input_ids, mask = items.padded(index, device)
            snapshot.restore()  # full-precision weights
            with hooks.record([component]) as values:
                model(input_ids=input_ids, attention_mask=mask, use_cache=False)
            _load(snapshot, quantized_weights)
            saved = values[component]
            return hooks.replace({component: lambda value: saved.to(value.dtype)})
        out.append(item_nll(model, items, device, restore))
    return np.stack(out)


def _load(snapshot: WeightSnapshot, weights: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, lin in snapshot.linears.items():
            lin.weight.copy_(weights[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(paths.final_model("embedded")))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--items", type=int, default=16, help="test items per language")
    parser.add_argument("--config", default="rtn-w4-ch-sym")
    args = parser.parse_args()
    device = torch.device(args.device)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    dtype = "float32" if device.type == "cpu" else "bfloat16"
    model = load_model(args.model, dtype=dtype, device=args.device, attn_implementation="eager",
                       kind="causal_lm")
    items = item_set(tokenizer, read_split(paths.CORPUS, "test"), args.items, 0, 4096, 4096)
    hooks = ComponentHooks(model, model.config.num_attention_heads)
    components = hooks.blocks()
    snapshot = WeightSnapshot(target_linears(model, ["lm_head"]))
    full_precision = item_nll(model, items, device)

    start = time.perf_counter()
    cache = cache_values(model, hooks, items, components, device)
    parse_config(args.config).apply(snapshot)
    quantized = item_nll(model, items, device)
    cached = mediation(model, hooks, items, components, cache, quantized, full_precision, device)
    seconds_cached = time.perf_counter() - start

    quantized_weights = {name: lin.weight.detach().clone() for name, lin in snapshot.linears.items()}
    start = time.perf_counter()
    again = recomputed(model, hooks, items, components, snapshot, quantized_weights, device)
    seconds_recomputed = time.perf_counter() - start
    snapshot.restore()

    shares = cached.pivot(index="component", columns="language", values="recovered_share")
    other = np.stack([recovered_share(items, nll, quantized, full_precision).to_numpy() for nll in again])
    order = [c.name for c in components]
    difference = np.abs(shares.loc[order].to_numpy() - other)
    print(f"{len(components)} blocks, {len(items.tokens)} items, {len(items.batches)} batches on {device}")
    print(f"cached full-precision values: {seconds_cached:.1f} s; recomputed per component: "
          f"{seconds_recomputed:.1f} s; ratio {seconds_recomputed / seconds_cached:.2f}x")
    print(f"recovered shares of the two methods: max |diff| {np.nanmax(difference):.1e}")


if __name__ == "__main__":
    main()
