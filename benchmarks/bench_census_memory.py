"""Peak memory of the weight census on a ~1B-parameter checkpoint (target: fits in 24 GiB RAM).

Writes a synthetic safetensors file with BLOOM-1b1 shapes (24 layers, hidden 1536, vocab 250,880;
random Student-t weights in float16, as published checkpoints store them), then runs the streaming
census on it in a fresh process and reports its peak resident memory against the file size.

    python benchmarks/bench_census_memory.py [--layers 24] [--hidden 1536] [--vocab 250880]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file


def write_checkpoint(path: Path, layers: int, hidden: int, vocab: int) -> int:
    """A BLOOM-shaped float16 checkpoint written one layer file at a time; returns parameters."""
    generator = torch.Generator().manual_seed(0)
    t = torch.distributions.StudentT(df=torch.tensor(4.0))
    count = 0
    shapes = {"transformer.word_embeddings.weight": (vocab, hidden)}
    for i in range(layers):
        prefix = f"transformer.h.{i}"
        shapes[f"{prefix}.self_attention.query_key_value.weight"] = (3 * hidden, hidden)
        shapes[f"{prefix}.self_attention.dense.weight"] = (hidden, hidden)
        shapes[f"{prefix}.mlp.dense_h_to_4h.weight"] = (4 * hidden, hidden)
        shapes[f"{prefix}.mlp.dense_4h_to_h.weight"] = (hidden, 4 * hidden)
    tensors = {}
    for name, shape in shapes.items():
        torch.manual_seed(int(generator.seed() % 2**31))
        tensors[name] = (t.sample(shape) * 0.02).to(torch.float16)
        count += tensors[name].numel()
    save_file(tensors, str(path))
    return count


CHILD = """
import resource, sys, time
from pathlib import Path
from qfair.analysis.census import census_safetensors, summarize_census
start = time.perf_counter()
table = census_safetensors([Path(sys.argv[1])])
summary = summarize_census(table)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(f"{len(table)} {summary['max_kurtosis']:.3f} {peak:.3f} {time.perf_counter() - start:.1f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=1536)
    parser.add_argument("--vocab", type=int, default=250_880)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        params = write_checkpoint(path, args.layers, args.hidden, args.vocab)
        size = path.stat().st_size / 2**30
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                             text=True, check=True).stdout.split()
    tensors, max_kurtosis, peak, seconds = int(out[0]), float(out[1]), float(out[2]), float(out[3])
    print(f"checkpoint: {params / 1e9:.2f}B parameters, {size:.2f} GiB float16, {tensors} tensors")
    print(f"census: {seconds:.0f} s, peak RSS {peak:.2f} GiB = {peak / size:.2f}x the file, "
          f"{peak / 24:.2%} of 24 GiB (max excess kurtosis {max_kurtosis:.2f})")


if __name__ == "__main__":
    main()
