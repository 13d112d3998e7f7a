"""The paper-profile code path on a GPU, end to end, with a model trained on that GPU.

The lent GPU machine has no hub access, so instead of a published checkpoint a ~100M-parameter
BLOOM (hidden 768, 14 layers, 12 heads, the embedded tokenizer's 8000-token vocabulary) is
trained for a few minutes on the embedded corpus (bf16 autocast, fused AdamW), saved, and loaded
back the way the paper profile loads checkpoints (``qfair.models.load.load_model``, bfloat16, on the
GPU). Then, all on the GPU:

* per-language evaluation of dev and test through ``qfair.scoring.distributed.score_items`` (under
  ``torchrun`` the NCCL path: batches dealt to ranks, NLLs gathered in order), checked equal to
  the one-process ``qfair.scoring.causal.score_items``, and compared with a float32 load of the same model;
* the RTN + bitsandbytes sweep (``qfair.quant.sweep_runner.calibrate`` and ``run_sweep``);
* per-language bits per byte and relative degradation with paired-bootstrap CIs, written to ``--out``.

    torchrun --standalone --nproc-per-node 1 benchmarks/train_gpu.py --out $OUT
    python benchmarks/train_gpu.py --smoke        # tiny model, a few steps; CPU or GPU
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bench_gpu import read_split
from transformers import AutoTokenizer, get_cosine_with_min_lr_schedule_with_warmup

from qfair import process_group
from qfair.analysis.sweep import disparity_table, per_language_table
from qfair.io import read_jsonl
from qfair.models.load import build_bloom, count_parameters, load_model
from qfair.models.throughput import timed
from qfair.models.train import mean_loss, sample_batch, token_stream
from qfair.quant.configs import parse_config
from qfair.quant.sweep_runner import SweepSettings, calibrate, run_sweep
from qfair.scoring import distributed
from qfair.scoring.causal import LN2, score_corpus, summarize_languages

SWEEP_CONFIGS = ["rtn-w4-ch-sym", "rtn-w3-ch-sym", "aciq-laplace-w4-ch", "laaciq-uniform-w4-ch",
                 "bnb-int8", "bnb-nf4"]
MODEL_100M = dict(hidden_size=768, n_layer=14, n_head=12)
SMOKE_MODEL = dict(hidden_size=64, n_layer=2, n_head=4)
BOOTSTRAP = dict(resamples=1000, confidence=0.95, method="BCa", seed=1234)


def corpus_tokens(corpus: Path, split: str, tokenizer, seed: int) -> torch.Tensor:
    texts = [row["text"] for path in sorted((corpus / split).glob("*.jsonl")) for row in read_jsonl(path)]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return token_stream(ids, tokenizer.bos_token_id, tokenizer.eos_token_id, seed)


def train_on_device(model, stream: torch.Tensor, dev_batches: list[torch.Tensor], args,
                    device: torch.device) -> list[dict]:
    """Seeded AdamW training (bf16 autocast on GPU), stopped at ``--steps`` or ``--train-seconds``.

    The corpus is small (~145k tokens), so a 100M model overfits within minutes: the weights with
    the lowest dev loss seen are kept (early stopping).
    """
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), fused=device.type == "cuda")
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(optimizer, num_warmup_steps=args.steps // 20,
                                                            num_training_steps=args.steps, min_lr_rate=0.1)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    rows, start, best = [], time.perf_counter(), (math.inf, None)
    model.train()
    for step in range(1, args.steps + 1):
        batch = sample_batch(stream, args.batch_size, args.context, args.seed, step)
        batch = batch.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else batch
        with autocast:
            loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        done = time.perf_counter() - start > args.train_seconds
        if step % args.log_every == 0 or step == args.steps or done:
            with autocast:
                dev = mean_loss(model, dev_batches)
            rows.append({"step": step, "seconds": time.perf_counter() - start, "loss": loss.item(),
                         "dev_loss": dev, "lr": scheduler.get_last_lr()[0]})
            if dev < best[0]:
                best = (dev, {k: v.detach().clone() for k, v in model.state_dict().items()}, step)
            print(f"[train] step {step}: loss {rows[-1]['loss']:.3f}, dev {dev:.3f}, "
                  f"{rows[-1]['seconds']:.0f} s", flush=True)
        if done:
            break
    model.load_state_dict(best[1])
    model.eval()
    print(f"[train] kept step {best[2]} (dev loss {best[0]:.3f})", flush=True)
    return rows, best[2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("results/train_gpu"))
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--tokenizer", type=Path, default=Path("models/tokenizer"))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--train-seconds", type=float, default=120.0, help="stop training after this")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--lr", type=float, default=6e-4)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--batch-tokens", type=int, default=16384, help="evaluation batch budget")
    parser.add_argument("--calibration-items", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--smoke", action="store_true", help="tiny model, a few steps, small subsets")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.log_every, args.batch_size, args.context = 20, 10, 8, 64
        args.calibration_items, BOOTSTRAP["resamples"] = 8, 100
    device = process_group.setup("cuda" if torch.cuda.is_available() else "cpu")
    if process_group.world_size() > 1:
        raise SystemExit("train_gpu.py trains on one GPU: run it with --nproc-per-node 1")
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "launched_by_torchrun": process_group.launched(), "process_group": process_group.active(),
                    "backend": torch.distributed.get_backend() if process_group.active() else None,
                    "dtype": dtype, "smoke": args.smoke}
    print(f"[setup] {report}", flush=True)

    tokenizer = AutoTokenizer.from_pretrained(str(args.tokenizer))
    stream = corpus_tokens(args.corpus, "train", tokenizer, args.seed)
    dev_stream = corpus_tokens(args.corpus, "dev", tokenizer, args.seed)
    width = args.context + 1
    dev_batches = [dev_stream[i * width * 8:(i + 1) * width * 8].view(8, width).to(device) for i in range(4)]
    shape = SMOKE_MODEL if args.smoke else MODEL_100M
    model = build_bloom(len(tokenizer), dropout=args.dropout, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        seed=args.seed, **shape).to(device)
    parameters = count_parameters(model)
    print(f"[train] BLOOM {parameters / 1e6:.1f}M parameters; {len(stream):,} training tokens", flush=True)
    (log, kept), t_train = timed(lambda: train_on_device(model, stream, dev_batches, args, device), device)
    steps = log[-1]["step"]
    tokens_seen = steps * args.batch_size * args.context
    report["train"] = {"parameters": parameters, "training_tokens": len(stream), "steps": steps,
                       "tokens_seen": tokens_seen, "seconds": t_train,
                       "tokens_per_second": tokens_seen / t_train, "final_loss": log[-1]["loss"],
                       "final_dev_loss": log[-1]["dev_loss"], "kept_step": kept,
                       "kept_dev_loss": min(row["dev_loss"] for row in log), **{k: getattr(args, k) for k in
                       ("batch_size", "context", "lr", "dropout")}}
    pd.DataFrame(log).to_csv(args.out / "train_log.csv", index=False)

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        # The paper profile's loading path: a saved checkpoint, bf16, on the GPU.
        model = load_model(folder, dtype=dtype, device=str(device))
        splits = {split: read_split(args.corpus, split) for split in ("dev", "test")}
        if args.smoke:
            splits = {s: {lang: dict(list(items.items())[:20]) for lang, items in per.items()}
                      for s, per in splits.items()}
        items, t_eval = timed(lambda: score_corpus(model, tokenizer, splits, args.batch_tokens, 1024,
                                                   progress=False, scorer=distributed.score_items), device)
        single = score_corpus(model, tokenizer, splits, args.batch_tokens, 1024, progress=False)
        full_precision = load_model(folder, dtype="float32", device=str(device))
        fp32 = score_corpus(full_precision, tokenizer, splits, args.batch_tokens, 1024, progress=False)
        del full_precision
        summary = summarize_languages(items, **BOOTSTRAP)
        fp32_summary = summarize_languages(fp32, resamples=2, confidence=0.95, method="percentile", seed=0)
        summary["bits_per_byte_fp32"] = fp32_summary["bits_per_byte"].to_numpy()
        summary.to_csv(args.out / "eval_per_language.csv", index=False)
        gap = (summary["bits_per_byte"] - summary["bits_per_byte_fp32"]).abs() / summary["bits_per_byte_fp32"]
        tokens = int(items["n_tokens"].sum() + len(items))
        identical = bool(np.array_equal(items["nll"], single["nll"]))
        report["eval"] = {"items": len(items), "input_tokens": tokens, "seconds": t_eval,
                          "distributed_equals_single_process": identical,
                          "max_relative_bpb_gap_bf16_vs_fp32": float(gap.max()),
                          "test_bits_per_byte": summary.loc[summary["split"] == "test"].set_index("language")
                          ["bits_per_byte"].round(4).to_dict()}
        print(f"[eval] {len(items)} items ({tokens} tokens) in {t_eval:.2f} s through "
              f"qfair.scoring.distributed.score_items ({report['backend'] or 'one process'}); "
              f"identical to one process: {report['eval']['distributed_equals_single_process']}; "
              f"bf16 vs fp32 bits per byte: max relative gap {gap.max():.1e}", flush=True)

        test = read_split(args.corpus, "test")
        dev = read_split(args.corpus, "dev")
        if args.smoke:
            test = {lang: dict(list(items.items())[:20]) for lang, items in test.items()}
        calibration_texts = {lang: dict(list(items.items())[: args.calibration_items])
                             for lang, items in dev.items()}
        settings = SweepSettings(["lm_head"], "laplace", 6.0, args.batch_tokens, 1024, "en")
        manifest = json.loads((args.corpus / "manifest.json").read_text())["languages"]
        share = {lang: manifest[lang]["train_share"] for lang in test}
        level = {lang: manifest[lang]["resource_level"] for lang in test}
        configs = [parse_config(name) for name in SWEEP_CONFIGS]
        started = time.perf_counter()
        calibration = calibrate(model, tokenizer, calibration_texts, settings)
        sweep = run_sweep(model, Path(folder), tokenizer, configs, test, calibration, share, settings)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_sweep = time.perf_counter() - started
    languages = sorted(test)
    per_language = per_language_table(sweep, configs, languages, level, **BOOTSTRAP)
    sums = sweep.groupby(["config", "language"])[["nll", "n_bytes"]].sum()
    bpb = (sums["nll"] / (LN2 * sums["n_bytes"])).rename("bits_per_byte").reset_index()
    per_language = per_language.merge(bpb, on=["config", "language"])
    fp_bpb = bpb[bpb["config"] == "fp"].set_index("language")["bits_per_byte"]
    per_language["bits_per_byte_fp"] = per_language["language"].map(fp_bpb)
    columns = ["config", "language", "resource_level", "bits_per_byte_fp", "bits_per_byte", "rel_degradation",
               "rel_degradation_ci_low", "rel_degradation_ci_high"]
    per_language[columns].to_csv(args.out / "sweep_per_language.csv", index=False)
    disparity = disparity_table(sweep, configs, languages, level, **BOOTSTRAP)
    disparity.to_csv(args.out / "sweep_disparity.csv", index=False)
    report["sweep"] = {"configs": SWEEP_CONFIGS, "languages": len(languages),
                       "items_per_language": len(next(iter(test.values()))), "seconds": t_sweep,
                       "mean_rel_degradation":
                           per_language.groupby("config")["rel_degradation"].mean().round(5).to_dict(),
                       "range": disparity.set_index("config")["range"].round(5).to_dict()}
    print(f"[sweep] {len(configs)} configs x {len(languages)} languages on {device}: {t_sweep:.1f} s "
          "(calibration, full precision and every config)", flush=True)
    print(disparity[["config", "range", "mean", "worst_language"]].to_string(index=False), flush=True)
    (args.out / "train_gpu.json").write_text(json.dumps(report, indent=2, default=str))
    process_group.teardown()
    if not all(math.isfinite(v) for v in report["sweep"]["mean_rel_degradation"].values()):
        raise SystemExit("non-finite relative degradation")


if __name__ == "__main__":
    main()
