"""What each part of Track B costs, side by side in one run on the same model and item set.

Times the interpretability stage's parts as :func:`qfair.analysis.interpretability.run_interpretability`
runs them (B-001 features and null, the full-precision pass and cache, B-003, B-004, B-005 for
``interpretability.config`` and for ``interpretability.activation_config``, B-002's pooled states and
probes) and prints each as seconds and as a share of the whole, so the share of the parts added
later (B-002, the activation mediation) can be read on a noisy machine.

    python -m qfair.stage benchmarks/bench_track_b.py [--items 16]   # pinned numerics, as a stage
"""

from __future__ import annotations

import argparse
import time

from transformers import AutoTokenizer

from qfair import paths
from qfair.analysis.heads import head_specificity
from qfair.analysis.interpretability import mediate_quantization
from qfair.analysis.patching import (
    ablation,
    attribution,
    cache_values,
    cached_means,
    head_features,
    item_nll,
    item_set,
    pooled_hidden_states,
)
from qfair.analysis.probes import language_id_probes
from qfair.corpus.store import read_split
from qfair.determinism import deterministic_cpu
from qfair.models.hooks import ComponentHooks
from qfair.models.linears import target_linears
from qfair.models.load import load_model
from qfair.params import load_params
from qfair.quant.configs import parse_config
from qfair.scoring.causal import model_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=None, help="items per language (default: params)")
    args = parser.parse_args()
    params = load_params()
    deterministic_cpu(params.train.threads)
    ip = params.interpretability
    model_dir = paths.final_model(params.profile)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = load_model(model_dir, dtype=params.eval.dtype, device=params.eval.device,
                       attn_implementation="eager")
    device = model_device(model)
    items = item_set(tokenizer, read_split(paths.CORPUS, "test"), args.items or ip.items_per_language,
                     ip.seed, params.eval.batch_tokens, params.eval.max_tokens)
    hooks = ComponentHooks(model, model.config.num_attention_heads)
    blocks, components = hooks.blocks(), hooks.blocks() + hooks.heads()
    linears = target_linears(model, params.compress.exclude_modules)
    seconds: dict[str, float] = {}

    def timed(name: str, work):
        start = time.perf_counter()
        result = work()
        seconds[name] = time.perf_counter() - start
        return result

    timed("B-001 features + null", lambda: head_specificity(
        head_features(model, items, device), ip.specific_min, ip.universal_max, params.analysis.alpha,
        ip.null_resamples, ip.seed))
    full_precision = timed("full-precision NLL", lambda: item_nll(model, items, device))
    cache = timed("full-precision cache", lambda: cache_values(model, hooks, items, components, device))
    means = cached_means(items, cache, device)
    timed("B-003 ablation", lambda: ablation(model, hooks, items, components, means, full_precision, device))
    timed("B-004 attribution", lambda: attribution(model, hooks, items, components, means, full_precision,
                                                    device))
    states = timed("B-002 full-precision states", lambda: pooled_hidden_states(model, items, device))
    main_run = timed(f"B-005 {ip.config}", lambda: mediate_quantization(
        model, hooks, items, linears, parse_config(ip.config), components, blocks, cache, full_precision,
        device, hidden_states=True))
    if ip.activation_config:
        timed(f"B-005 {ip.activation_config}", lambda: mediate_quantization(
            model, hooks, items, linears, parse_config(ip.activation_config), components, blocks, cache,
            full_precision, device))
    if ip.probes:
        timed("B-002 probes (scikit-learn)", lambda: language_id_probes(
            states, main_run.states, items.languages, items.keys, ip.probe_folds, ip.probe_regularization,
            ip.seed))
    total = sum(seconds.values())
    print(f"{len(items.tokens)} items, {len(components)} components, {params.train.threads} threads")
    for name, value in seconds.items():
        print(f"{name:40s} {value:8.1f} s  {value / total:6.1%}")
    print(f"{'total':40s} {total:8.1f} s")


if __name__ == "__main__":
    main()
