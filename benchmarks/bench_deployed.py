"""The deployed quantizers' cost on one model, side by side in one run (issue 13's targets).

Times, on the profile's model shape (random weights: cost does not depend on training) and its
calibration text: the calibration pass (every language, with GPTQ's covariances), each config's
compression (``apply``; an oracle once per language), and scoring one language's test items. Then
the reuse target: calibrating once and compressing with every calibrated config, against
calibrating again for each of them (the ratio of the two, measured on ``--recompute`` configs).

    python benchmarks/bench_deployed.py --profile profiles/scale.yaml --corpus scale/data/corpus \
        --tokenizer scale/models/tokenizer [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from qfair.corpus.store import read_split
from qfair.models.linears import target_linears
from qfair.models.load import build_bloom
from qfair.params import load_params
from qfair.quant.configs import parse_config
from qfair.quant.methods import MethodSettings, WeightSnapshot
from qfair.quant.sweep_runner import SweepSettings, _score, calibrate, seeded_subset

OLD_FAMILIES = ("rtn", "aciq", "mse", "laaciq", "oracle", "bnb", "prune")  # measured before issue 13


def synced(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, default=Path("profiles/scale.yaml"))
    parser.add_argument("--corpus", type=Path, default=Path("scale/data/corpus"))
    parser.add_argument("--tokenizer", type=Path, default=Path("scale/models/tokenizer"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--recompute", type=int, default=3, help="configs timed with their own calibration")
    args = parser.parse_args()
    params = load_params(args.profile)
    device = torch.device(args.device)
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[params.eval.dtype]
    tokenizer = AutoTokenizer.from_pretrained(str(args.tokenizer))
    m = params.model
    model = build_bloom(len(tokenizer), hidden_size=m.hidden_size, n_layer=m.n_layer, n_head=m.n_head,
                        dropout=0.0, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, seed=0).eval().to(device=device, dtype=dtype)
    cp = params.compress
    settings = SweepSettings(cp.exclude_modules, cp.laaciq_prior, cp.bnb_int8_threshold,
                             params.eval.batch_tokens, params.eval.max_tokens,
                             params.corpus.reference_language)
    calibration_texts = seeded_subset(read_split(args.corpus, "dev"), cp.calibration_items, cp.seed)
    languages = sorted(calibration_texts)
    share = {lang: 1 / len(languages) for lang in languages}
    configs = [parse_config(name) for name in cp.configs if not name.startswith(OLD_FAMILIES)]
    print(f"{len(configs)} configs of issue 13, {len(languages)} languages, {cp.calibration_items} "
          f"calibration items each, hidden {m.hidden_size} x {m.n_layer} layers, {dtype} on {device}")

    with torch.no_grad():
        start = synced(device)
        calibration = calibrate(model, tokenizer, calibration_texts, settings, covariances=True)
        calibrate_seconds = synced(device) - start
        print(f"calibration, every statistic of every language: {calibrate_seconds:.1f} s")
        snapshot = WeightSnapshot(target_linears(model, cp.exclude_modules))
        method_settings = MethodSettings(cp.laaciq_prior, settings.reference_language, share)
        apply_seconds = {}
        for config in configs:
            start = synced(device)
            per_language = getattr(config, "calibration_set", None) == "oracle"
            for lang in languages if per_language else [None]:
                subset = calibration.subset([lang]) if lang else calibration
                config.apply(snapshot, subset, method_settings)
            apply_seconds[config.name] = synced(device) - start
            snapshot.restore()
            print(f"  {config.name:32s} compress {apply_seconds[config.name]:7.2f} s"
                  + (f" ({len(languages)} models)" if per_language else ""))
        test = seeded_subset(read_split(args.corpus, "test"), cp.items_per_language, cp.seed)
        start = synced(device)
        _score(model, tokenizer, test, languages[:1], settings, "fp")
        score_seconds = synced(device) - start
        print(f"scoring one language's {len(test[languages[0]])} test items: {score_seconds:.2f} s "
              f"(x {len(languages)} languages = {score_seconds * len(languages):.1f} s per config)")

        recompute = [c for c in configs if getattr(c, "calibration_set", None) != "oracle"][: args.recompute]
        start = synced(device)
        for config in recompute:  # as if each method measured its own statistics
            own = calibrate(model, tokenizer, calibration_texts, settings,
                            covariances=config.needs_covariances)
            config.apply(snapshot, own, method_settings)
            snapshot.restore()
        separate = synced(device) - start
    shared = calibrate_seconds + sum(apply_seconds[c.name] for c in recompute)
    print(f"reuse, {len(recompute)} configs: one shared calibration {shared:.1f} s, one each "
          f"{separate:.1f} s ({separate / shared:.2f}x)")
    total = calibrate_seconds + sum(apply_seconds.values()) + score_seconds * len(languages) * len(configs)
    print(f"issue 13's configs in the sweep: ~{total / 60:.1f} min (calibration + compression + scoring)")


if __name__ == "__main__":
    main()
