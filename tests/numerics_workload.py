"""A miniature of the pipeline for tests/test_determinism.py: run as a script, prints JSON.

Trains a tiny BLOOM a few steps (qfair.models.train), scores per-"language" items
(qfair.scoring.causal), applies one quantization config (qfair.quant), and runs the statistics
(scipy bootstrap, a correlation battery, numpy exp/log), then prints the SHA-256 of every
result's exact bytes. Under portable numerics it re-executes itself first, as every stage does.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

from qfair.determinism import portable_numerics

portable_numerics()  # before torch loads, as `python -m qfair.stage` does

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from qfair.analysis.probes import logistic_probe  # noqa: E402
from qfair.analysis.stats import correlation_battery  # noqa: E402
from qfair.controlled.slopes import adjusted_slope, pooled_slope  # noqa: E402
from qfair.determinism import deterministic_cpu  # noqa: E402
from qfair.models.linears import target_linears  # noqa: E402
from qfair.models.load import build_bloom  # noqa: E402
from qfair.models.train import TrainConfig, train  # noqa: E402
from qfair.quant.configs import parse_config  # noqa: E402
from qfair.quant.methods import WeightSnapshot  # noqa: E402
from qfair.scoring.causal import TokenItems, bits_per_byte_ci, length_sorted_batches, score_token_batches  # noqa: E402
from qfair.treebank.probes import ParsedSentence, fit_structural_probe, graph_distances  # noqa: E402

VOCAB, LANGUAGES, ITEMS = 256, ["a", "b", "c", "d", "e"], 24


def digest(*arrays: np.ndarray | torch.Tensor) -> str:
    h = hashlib.sha256()
    for array in arrays:
        h.update((array.detach().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)).tobytes())
    return h.hexdigest()


def language_items(rng: np.random.Generator, exponent: float) -> list[list[int]]:
    """Zipf-like token sequences; each "language" has its own exponent and vocabulary order."""
    order = rng.permutation(VOCAB - 3) + 3
    p = 1.0 / np.arange(1, VOCAB - 2) ** exponent
    return [list(rng.choice(order, size=int(rng.integers(8, 40)), p=p / p.sum())) for _ in range(ITEMS)]


def main() -> None:
    deterministic_cpu(2)
    rng = np.random.default_rng(0)
    items = {lang: language_items(rng, 0.8 + 0.15 * i) for i, lang in enumerate(LANGUAGES)}
    stream = torch.tensor([t for lang in LANGUAGES for ids in items[lang] for t in ids], dtype=torch.long)
    model = build_bloom(VOCAB, 64, 2, 4, 0.0, 1, 2, 0, seed=3)
    config = TrainConfig(steps=12, batch_size=4, context_length=32, learning_rate=3e-3, warmup_steps=2,
                         min_lr_ratio=0.1, weight_decay=0.1, grad_clip=1.0, checkpoint_every=100, seed=5)
    with tempfile.TemporaryDirectory() as folder:
        train(model, stream, config, Path(folder), progress=False)
    model.eval()
    out = {"weights": digest(*[v for _, v in sorted(model.state_dict().items())])}

    def score() -> dict[str, np.ndarray]:
        scores = {}
        for lang in LANGUAGES:
            tokens = TokenItems.from_lists(items[lang])
            scores[lang] = score_token_batches(model, tokens, length_sorted_batches(tokens.lengths, 256), 0)
        return scores

    full = score()
    snapshot = WeightSnapshot(target_linears(model, ["lm_head"]))
    parse_config("rtn-w4-ch-sym").apply(snapshot)
    quantized = score()
    out["nll_full"] = digest(*full.values())
    out["nll_rtn_w4"] = digest(*quantized.values())
    n_bytes = {lang: np.array([len(ids) for ids in items[lang]], dtype=np.int64) for lang in LANGUAGES}
    rel = np.array([quantized[lang].sum() / full[lang].sum() - 1 for lang in LANGUAGES])
    cis = [bits_per_byte_ci(full[lang], n_bytes[lang], 200, 0.95, "BCa", 7) for lang in LANGUAGES]
    battery = correlation_battery(np.log(np.arange(1, 6) * 1.7), rel, LANGUAGES, n_resamples=99,
                                  n_bootstrap=199, seed=11)
    out["rel_degradation"] = digest(rel)
    out["ci"] = digest(np.array(cis))
    out["battery"] = digest(np.array([v for v in vars(battery).values() if isinstance(v, float)]))
    # the controlled family's estimators (qfair.controlled.slopes): OLS slopes and bootstraps
    shares = np.log([0.0025, 0.01, 0.04])
    rows = pd.DataFrame([{"language": lang, "seed": seed, "log_share": x, "baseline_bpb": 2 - 0.2 * x + r,
                          "rho": 1e-3 * (1 + rel[i]) + 1e-4 * x * (seed + 1) + r}
                         for i, lang in enumerate(LANGUAGES) for seed in range(2)
                         for x, r in zip(shares, rng.normal(0, 1e-4, 3), strict=True)])
    out["controlled_slopes"] = digest(np.array([*pooled_slope(rows, "rho", 199, 0.95, 13),
                                                *adjusted_slope(rows, "rho", "baseline_bpb", 199, 0.95, 13)]))
    # Track D's probes (qfair.treebank.probes): a logistic probe (scikit-learn, BLAS) and a
    # structural probe (torch Adam on CPU)
    states = rng.normal(size=(120, 16))
    labels = np.where(states[:, 0] + 0.3 * states[:, 1] > 0, "a", "b").astype(object)
    logistic = logistic_probe(1.0, 3).fit(states, labels)[-1]
    chain = graph_distances([(i + 1,) if i < 5 else () for i in range(6)]).astype(np.float32)
    chains = [ParsedSentence(np.arange(start, start + 6), chain, set()) for start in range(0, 120, 6)]
    structural = fit_structural_probe(states.astype(np.float32), chains, 4, 3, 0.01, 8, 5)
    out["track_d_probes"] = digest(logistic.coef_, logistic.intercept_, structural)
    out["numpy_exp_log"] = digest(np.exp(rel * 50), np.log1p(np.abs(rel)), np.tanh(rel * 9))
    out["aten_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
