"""GPTQ cost against RTN on the scale model's layer shapes, side by side in one run (ratios).

For each Linear shape of the scale profile's BLOOM (hidden 768: query_key_value 2304x768, dense
768x768, dense_h_to_4h 3072x768, dense_4h_to_h 768x3072) it times RTN and GPTQ (per channel, group
128, act-order) on random weights with the Hessian of correlated random inputs, checks GPTQ's layer
objective against RTN's, and extrapolates one GPTQ config over the model's 12 blocks. Also times
accumulating one language's input covariances (E[x x^T]) for 64 calibration items of ~45 tokens.

    python benchmarks/bench_gptq.py [--device cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from qfair.quant.gptq import gptq_quantize, layer_error
from qfair.quant.rtn import quantize_rtn

SHAPES = {"query_key_value": (2304, 768), "dense": (768, 768), "dense_h_to_4h": (3072, 768),
          "dense_4h_to_h": (768, 3072)}
BLOCKS = 12


def timed(fn, device: torch.device, repeats: int) -> tuple[object, float]:
    best, result = float("inf"), None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator(device="cpu").manual_seed(0)
    per_block = {"rtn": 0.0, "gptq-ch": 0.0, "gptq-g128-act": 0.0}
    for name, (out_features, in_features) in SHAPES.items():
        w = torch.randn(out_features, in_features, generator=g).to(device)
        mix = torch.randn(in_features, in_features, generator=g).to(device) / in_features**0.5
        x = torch.randn(2880, in_features, generator=g).to(device) @ mix  # 64 items x ~45 tokens
        h = x.T @ x / x.shape[0]
        rtn, t_rtn = timed(lambda w=w: quantize_rtn(w, 4, "channel"), device, args.repeats)
        q_ch, t_ch = timed(lambda w=w, h=h: gptq_quantize(w, h, 4, "channel"), device, args.repeats)
        q_g, t_g = timed(lambda w=w, h=h: gptq_quantize(w, h, 4, "group", 128, act_order=True), device,
                         args.repeats)
        _, t_cov = timed(lambda x=x: (x.double().T @ x.double()), device, args.repeats)
        ratio = layer_error(w, q_ch, h) / layer_error(w, rtn, h)
        ratio_g = layer_error(w, q_g, h) / layer_error(w, rtn, h)
        print(f"{name:16s} {out_features}x{in_features}: RTN {t_rtn * 1e3:7.1f} ms, GPTQ ch "
              f"{t_ch * 1e3:7.1f} ms ({t_ch / t_rtn:5.0f}x), GPTQ g128 act {t_g * 1e3:7.1f} ms; "
              f"covariance of one language {t_cov * 1e3:6.1f} ms; GPTQ/RTN layer error {ratio:.3f} (ch), "
              f"{ratio_g:.3f} (g128 act)")
        per_block["rtn"] += t_rtn
        per_block["gptq-ch"] += t_ch
        per_block["gptq-g128-act"] += t_g
    print(f"one config over {BLOCKS} blocks on {device}: " + ", ".join(
        f"{name} {seconds * BLOCKS:.2f} s" for name, seconds in per_block.items()))


if __name__ == "__main__":
    main()
