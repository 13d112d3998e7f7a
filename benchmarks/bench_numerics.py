"""The speed cost of portable CPU numerics (qfair.determinism), measured side by side in one run.

Times the embedded profile's two hot loops, a training step and a scoring forward pass at its
shapes (BLOOM hidden 256, 4 layers, vocabulary 8000; batch 16 x 128 for training, a 512-token
scoring batch), in child processes with the machine's own kernels (``QFAIR_NATIVE_NUMERICS=1``)
and with the portable ones, alternating, and prints the ratio. Needs no data:

    python benchmarks/bench_numerics.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from qfair.determinism import NATIVE_SWITCH, PORTABLE_ENV

CHILD = r"""
import json, sys, time
from qfair.determinism import portable_numerics
portable_numerics()
import torch
from qfair.determinism import deterministic_cpu
from qfair.models.load import build_bloom
deterministic_cpu(2)
model = build_bloom(8000, 256, 4, 4, 0.0, 1, 2, 0, seed=0)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(0)
train_x = torch.randint(0, 8000, (16, 128), generator=g)
score_x = torch.randint(0, 8000, (8, 64), generator=g)
def step():
    model(input_ids=train_x, labels=train_x).loss.backward(); opt.step(); opt.zero_grad()
def score():
    with torch.no_grad():
        model(input_ids=score_x, use_cache=False).logits.sum().item()
out = {}
for name, fn, n in (("train_step", step, 5), ("score_batch", score, 20)):
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    out[name] = (time.perf_counter() - start) / n
out["capability"] = torch.backends.cpu.get_cpu_capability()
print(json.dumps(out))
"""


def measure(native: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    env.pop(NATIVE_SWITCH, None)
    if native:
        env[NATIVE_SWITCH] = "1"
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3, help="alternating native/portable pairs")
    args = parser.parse_args()
    runs: dict[bool, list[dict]] = {True: [], False: []}
    started = time.perf_counter()
    for _ in range(args.repeats):
        for native in (True, False):
            runs[native].append(measure(native))
    print(f"{'loop':<12} {'native (s)':>11} {'portable (s)':>13} {'ratio':>6}")
    for key in ("train_step", "score_batch"):
        native = min(r[key] for r in runs[True])
        portable = min(r[key] for r in runs[False])
        print(f"{key:<12} {native:>11.4f} {portable:>13.4f} {portable / native:>6.2f}x")
    print(f"kernels: native {runs[True][0]['capability']}, portable {runs[False][0]['capability']}; "
          f"best of {args.repeats}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
