"""GPU benchmark of qfair's evaluation and compression sweep, ratios measured side by side in one run.

1. Peak: an 8192^3 bf16 matrix product timed with CUDA events (median of 10 after 3 warm-ups),
   on random data. Every utilisation below is against this measured peak.
2. Evaluation: a BLOOM-560m-shaped model (24 layers, hidden 1024, 16 heads, vocab 250,880;
   559M parameters), built from its config with random weights, in bf16 on the GPU. Throughput
   does not depend on the weights' values, only on shapes, so random weights measure what the
   published checkpoint would. MFU = 2 x parameters x input tokens / seconds / measured peak,
   for ``qfair.scoring.causal.score_items`` end to end (tokenization included), and its speed-up over a
   plain transformers loop that scores one item per forward pass, on the same items.
   A kernel profile of a quarter of the items says where the device time goes, and one variant
   (BLOOM's GELU, seven elementwise kernels in transformers, swapped for PyTorch's fused
   tanh-GELU, the same formula) measures what the model's unfused elementwise code costs.
   The same measurements for ``score_items(..., compile=True)`` (forward pass and fused NLL as one
   ``torch.compile``d graph, dynamic shapes) side by side: the compile time is reported apart (the
   first call, on a few items) and excluded from the compiled throughput, which is timed on a
   second, full call. NLL differences: compiled against eager (all items), each against a float32
   copy of the model (the plain-loop items), and the fused NLL alone (compiled, on the eager
   model's logits) against the float32 log-softmax NLL.
3. Sweep: per-config seconds (quantize or load, then score every item) on the same model over
   40 languages x 1012 items of FLORES-like length, and the estimate of a full sweep (the
   configs of the paper profile, each timed by its family's measured time) against 15 minutes.

Text: FLORES+ cannot be downloaded here, so each language's items are built from the embedded
corpus' test strings, concatenated (cyclically, in order) until an item reaches a target length
drawn uniformly from 30-60 tokens of the embedded tokenizer; the 33 corpus languages plus 7
second copies (other offsets) make 40. Only the token count and length mix matter for timing.

    python benchmarks/bench_gpu.py --out results/bench_gpu           # on a CUDA machine
    python benchmarks/bench_gpu.py --smoke                           # tiny sizes; runs on CPU too
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from transformers import AutoTokenizer, BloomConfig, BloomForCausalLM

from qfair.io import read_jsonl
from qfair.models.linears import target_linears
from qfair.models.load import count_parameters
from qfair.models.throughput import measure_peak, timed
from qfair.quant.configs import parse_config
from qfair.quant.methods import MethodSettings, SweepContext, WeightSnapshot
from qfair.quant.sweep_runner import SweepSettings, calibrate
from qfair.scoring import causal
from qfair.scoring.causal import encode_items, fused_token_nll_sums, score_items

BLOOM_560M = dict(vocab_size=250_880, hidden_size=1024, n_layer=24, n_head=16)
SMOKE_MODEL = dict(vocab_size=8_000, hidden_size=128, n_layer=2, n_head=4)
# One config per family of params.yaml's list; every other config is timed as its family.
TIMED_CONFIGS = ["rtn-w4-ch-sym", "rtn-w4-g128-sym", "aciq-laplace-w4-ch", "laaciq-uniform-w4-ch",
                 "laaciq-minimax-w4-ch", "bnb-int8", "bnb-nf4"]
FLORES_ITEMS, FLORES_LANGUAGES = 1012, 40


def read_split(corpus: Path, split: str) -> dict[str, dict[str, str]]:
    """``{locale: {item id: text}}`` of one corpus split, as ``qfair.corpus.store.read_split``.

    Not imported from there: importing ``qfair.corpus`` loads the params schema (pydantic), which
    the GPU machine's image lacks, and nothing else here needs it.
    """
    return {file.stem: dict(sorted((row["id"], row["text"]) for row in read_jsonl(file)))
            for file in sorted((corpus / split).glob("*.jsonl"))}


def family(name: str) -> str:
    config = parse_config(name)
    if config.family == "rtn":
        return "rtn-group" if config.granularity == "group" else "rtn"
    if config.family == "bnb":
        return "bnb-int8" if config.quant_type == "int8" else "bnb-4bit"
    if config.family == "prune":
        return "prune-wanda" if name.startswith("prune-wanda") else "prune-magnitude"
    return config.family


def flores_like_texts(corpus: Path, tokenizer, languages: int, items: int, seed: int,
                      lengths: tuple[int, int] = (30, 60)) -> dict[str, dict[str, str]]:
    """``{language: {item id: text}}``: test strings joined to FLORES-like token lengths."""
    test = read_split(corpus, "test")
    rng = np.random.default_rng(seed)
    names = sorted(test)
    out: dict[str, dict[str, str]] = {}
    for copy in range(-(-languages // len(names))):
        for lang in names:
            if len(out) == languages:
                break
            strings = list(test[lang].values())
            counts = [len(ids) for ids in tokenizer(strings, add_special_tokens=False)["input_ids"]]
            position = (copy * 97) % len(strings)  # a second copy starts elsewhere
            per_language = {}
            for k in range(items):
                target, parts, total = int(rng.integers(lengths[0], lengths[1] + 1)), [], 0
                while total < target:
                    parts.append(strings[position])
                    total += counts[position] + 1
                    position = (position + 1) % len(strings)
                per_language[f"{k:04d}"] = " ".join(parts)
            out[lang if copy == 0 else f"{lang}#{copy + 1}"] = per_language
    return out


def plain_loop_nll(model, tokenizer, texts: list[str], device: torch.device) -> np.ndarray:
    """The naive reference: tokenize, one forward pass and one host sync per item."""
    nll = []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([[tokenizer.bos_token_id,
                                 *tokenizer(text, add_special_tokens=False)["input_ids"]]], device=device)
            logits = model(input_ids=ids).logits[0, :-1].float()
            nll.append(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item())
    return np.array(nll)


class FusedTanhGelu(torch.nn.Module):
    """BLOOM's GELU formula (the tanh approximation) as one PyTorch kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(x, approximate="tanh")


def kernel_table(fn, rows: int = 14) -> tuple[str, float]:
    """Run ``fn`` under the CUDA profiler: the top kernels by device time, and their total (s)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    averages = prof.key_averages()
    new_name = hasattr(averages[0], "self_device_time_total")  # "cuda" became "device" in torch 2.4
    key = "self_device_time_total" if new_name else "self_cuda_time_total"
    total = sum(getattr(event, key) for event in averages) / 1e6
    return averages.table(sort_by=key, row_limit=rows, max_name_column_width=60), total


def measure_compiled(model, tokenizer, texts: list[str], subset: list[str], eager_nll: np.ndarray,
                     batch_tokens: int, params: int, tokens: int, peak: float, eager_mfu: float,
                     device: torch.device, report: dict, log, optional) -> bool:
    """``score_items(..., compile=True)`` beside the eager numbers already in ``report``.

    The first call (a few hundred items) compiles; its time is the compile time, reported apart.
    Throughput is timed on a second call over every item, which compiles nothing (dynamic shapes).
    """
    import torch._dynamo

    warm = texts[:: max(1, len(texts) // 256)]
    _, compile_seconds = timed(lambda: score_items(model, tokenizer, warm, batch_tokens, 10**6, compile=True),
                               device)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled, seconds = timed(lambda: score_items(model, tokenizer, texts, batch_tokens, 10**6, compile=True),
                              device)
    recompiled = torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs
    mfu = 2 * params * tokens / seconds / peak
    gap = np.abs(compiled.nll - eager_nll) / np.abs(eager_nll)
    report.update(compile_seconds=compile_seconds, compile_items=len(warm), compiled_graphs=graphs,
                  graphs_compiled_during_timing=recompiled, compiled_seconds=seconds,
                  compiled_tokens_per_second=tokens / seconds, compiled_mfu=mfu,
                  compiled_vs_eager_max_relative_nll_gap=float(gap.max()),
                  compiled_vs_eager_median_relative_nll_gap=float(np.median(gap)))
    log(f"[compile] compile (first call, {len(warm)} items; {graphs} graph(s)): {compile_seconds:.1f} s, "
        f"excluded from the throughput below")
    log(f"[compile] score_items compile=True (batch_tokens={batch_tokens}): {seconds:.2f} s, "
        f"{tokens / seconds:,.0f} tokens/s, MFU {mfu:.1%} (eager {report['seconds']:.2f} s, MFU "
        f"{eager_mfu:.1%}; target >= 35%); graphs compiled while timed: {recompiled}; NLL gap to eager "
        f"median {np.median(gap):.1e}, max {gap.max():.1e} ({next(model.parameters()).dtype}; same batches)")
    if device.type == "cuda" and optional("compiled profile"):
        table, busy = kernel_table(lambda: score_items(model, tokenizer, subset, batch_tokens, 10**6,
                                                       compile=True))
        report["compiled_quarter_kernel_seconds"] = busy
        log(f"[profile] compiled, a quarter of the items: kernels {busy:.2f} s\n{table}")
    if not optional("fused-NLL-only variant"):
        return True
    # The fused NLL alone: the eager model, its logits' NLL through the compiled fused function.
    eager_nll_fn = causal.token_nll_sums
    quarter_eager = score_items(model, tokenizer, subset, batch_tokens, 10**6).nll
    try:
        causal.token_nll_sums = torch.compile(fused_token_nll_sums, dynamic=True)
        score_items(model, tokenizer, subset[:300], batch_tokens, 10**6)  # compiles
        quarter_fused, fused_seconds = timed(
            lambda: score_items(model, tokenizer, subset, batch_tokens, 10**6), device)
    finally:
        causal.token_nll_sums = eager_nll_fn
    nll_gap = np.abs(quarter_fused.nll - quarter_eager) / np.abs(quarter_eager)
    report.update(quarter_seconds_fused_nll_only=fused_seconds,
                  fused_nll_max_relative_gap_to_log_softmax=float(nll_gap.max()))
    log(f"[variant] eager model + compiled fused NLL only: a quarter of the items in {fused_seconds:.2f} s "
        f"(MFU would be {eager_mfu * report['budget_scan'][batch_tokens] / fused_seconds:.1%}); fused NLL vs "
        f"float32 log-softmax NLL on the same logits: max relative gap {nll_gap.max():.1e}")
    return True


def random_bloom(shape: dict, device: torch.device, dtype: torch.dtype, seed: int = 0) -> BloomForCausalLM:
    config = BloomConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=True)
    torch.manual_seed(seed)
    with torch.device(device):
        model = BloomForCausalLM(config).to(dtype)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("results/bench_gpu"))
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--tokenizer", type=Path, default=Path("models/tokenizer"))
    parser.add_argument("--params", type=Path, default=Path("profiles/paper.yaml"),
                        help="params file whose compress.configs the full-sweep estimate covers")
    parser.add_argument("--batch-tokens", default="4096,8192,16384", help="budgets to compare")
    parser.add_argument("--plain-items", type=int, default=1500, help="items of the one-by-one loop")
    parser.add_argument("--languages", type=int, default=FLORES_LANGUAGES)
    parser.add_argument("--items", type=int, default=FLORES_ITEMS, help="items per language")
    parser.add_argument("--eval-only", action="store_true", help="skip the sweep timing (section 3)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurements")
    parser.add_argument("--optional-until", type=float, default=float("inf"),
                        help="seconds into the run after which profiles and variants are skipped")
    parser.add_argument("--smoke", action="store_true", help="tiny model and data (CPU or GPU)")
    args = parser.parse_args()
    started = time.perf_counter()

    def optional(what: str) -> bool:
        """Whether a profile or variant still fits in the run (``--optional-until``)."""
        if time.perf_counter() - started <= args.optional_until:
            return True
        log(f"[skip] {what}: past --optional-until {args.optional_until:.0f} s")
        return False

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    smoke = args.smoke or device.type == "cpu"
    n_lang, n_items = (3, 40) if smoke else (args.languages, args.items)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "smoke": smoke, "eval_only": args.eval_only}

    def log(line: str) -> None:
        print(line, flush=True)
        with open(args.out / "bench_gpu.log", "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    # 1. measured peak
    peak = measure_peak(device, 512 if smoke else 8192)
    report["peak_flops"] = peak
    log(f"[peak] {'bf16' if device.type == 'cuda' else 'fp32'} matmul: {peak / 1e12:.1f} TFLOP/s")

    # 2. evaluation throughput
    tokenizer = AutoTokenizer.from_pretrained(str(args.tokenizer))
    texts_by_lang = flores_like_texts(args.corpus, tokenizer, n_lang, n_items, seed=0)
    texts = [t for per in texts_by_lang.values() for t in per.values()]
    lengths = np.array([len(ids) for ids in encode_items(tokenizer, texts, 10**6)])
    model = random_bloom(SMOKE_MODEL if smoke else BLOOM_560M, device, dtype)
    params = count_parameters(model)
    tokens = int(lengths.sum())
    report["eval"] = {"parameters": params, "items": len(texts), "languages": n_lang,
                      "input_tokens": tokens, "mean_item_tokens": float(lengths.mean()),
                      "attention": model.config._attn_implementation, "dtype": str(dtype)}
    log(f"[eval] model {params / 1e6:.0f}M parameters ({model.config._attn_implementation} attention, "
        f"{dtype}); {len(texts)} items, {tokens} input tokens (mean {lengths.mean():.1f}/item)")
    budgets = [int(b) for b in args.batch_tokens.split(",")]
    subset = texts[: len(texts) // 4 or len(texts)]
    score_items(model, tokenizer, subset[:200], budgets[0], 10**6)  # warm-up
    scan = {b: timed(lambda b=b: score_items(model, tokenizer, subset, b, 10**6), device)[1] for b in budgets}
    best = min(scan, key=scan.get)
    log("[eval] seconds for a quarter of the items by batch_tokens: "
        + ", ".join(f"{b}: {s:.2f}" for b, s in scan.items()) + f" -> {best}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    eager_full, seconds = timed(lambda: score_items(model, tokenizer, texts, best, 10**6), device)
    mfu = 2 * params * tokens / seconds / peak
    report["eval"].update(batch_tokens=best, seconds=seconds, tokens_per_second=tokens / seconds,
                          mfu=mfu, budget_scan=scan)
    if device.type == "cuda":
        report["eval"]["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    log(f"[eval] score_items (batch_tokens={best}): {seconds:.2f} s, {tokens / seconds:,.0f} tokens/s, "
        f"MFU {mfu:.1%} of the measured peak (target >= 35%)")
    (args.out / "bench_gpu.json").write_text(json.dumps(report, indent=2))

    compiled_ok = False
    if not args.no_compile:
        try:
            compiled_ok = measure_compiled(model, tokenizer, texts, subset, eager_full.nll, best, params,
                                           tokens, peak, mfu, device, report["eval"], log, optional)
        except Exception as error:  # a failed compile must not lose the eager numbers
            import traceback

            report["eval"]["compiled_error"] = repr(error)
            log(f"[compile] FAILED: {error!r}\n{traceback.format_exc()}")
        (args.out / "bench_gpu.json").write_text(json.dumps(report, indent=2))

    if device.type == "cuda" and optional("eager profile and fused-GELU variant"):
        table, busy = kernel_table(lambda: score_items(model, tokenizer, subset, best, 10**6))
        quarter = scan[best]
        report["eval"]["quarter_kernel_seconds"] = busy
        log(f"[profile] a quarter of the items: kernels {busy:.2f} s of {quarter:.2f} s wall "
            f"(unprofiled)\n{table}")
        mlps = [block.mlp for block in model.transformer.h]
        originals = [mlp.gelu_impl for mlp in mlps]
        for mlp in mlps:
            mlp.gelu_impl = FusedTanhGelu()
        fused = timed(lambda: score_items(model, tokenizer, subset, best, 10**6), device)[1]
        for mlp, original in zip(mlps, originals, strict=True):
            mlp.gelu_impl = original
        report["eval"]["quarter_seconds_fused_gelu"] = fused
        log(f"[variant] fused tanh-GELU instead of BLOOM's elementwise GELU: a quarter of the items in "
            f"{fused:.2f} s vs {quarter:.2f} s (MFU would be {mfu * quarter / fused:.1%})")

    rng = np.random.default_rng(1)
    chosen = np.sort(rng.choice(len(texts), size=min(args.plain_items, len(texts)), replace=False))
    same = [texts[i] for i in chosen]
    plain_loop_nll(model, tokenizer, same[:20], device)  # warm-up
    plain, t_plain = timed(lambda: plain_loop_nll(model, tokenizer, same, device), device)
    batched, t_batched = timed(lambda: score_items(model, tokenizer, same, best, 10**6), device)
    if compiled_ok:
        fast, t_compiled = timed(lambda: score_items(model, tokenizer, same, best, 10**6, compile=True),
                                 device)
        import copy

        reference = score_items(copy.deepcopy(model).float(), tokenizer, same, best, 10**6).nll
        to_fp32 = {name: float(np.max(np.abs(nll - reference) / np.abs(reference)))
                   for name, nll in (("eager", batched.nll), ("compiled", fast.nll))}
        report["compiled_plain_loop"] = {"items": len(same), "compiled_seconds": t_compiled,
                                         "speedup_same_items": t_plain / t_compiled,
                                         "max_relative_nll_gap_to_float32_model": to_fp32}
        log(f"[compile] plain one-item loop {t_plain:.2f} s vs compiled score_items {t_compiled:.2f} s on "
            f"the same {len(same)} items: speed-up {t_plain / t_compiled:.1f}x (eager score_items: "
            f"{t_plain / t_batched:.1f}x); max relative NLL gap to a float32 copy of the model ({dtype}): "
            f"eager {to_fp32['eager']:.1e}, compiled {to_fp32['compiled']:.1e}")
    gap = np.abs(batched.nll - plain) / np.abs(plain)
    per_item_full = seconds / len(texts)
    report["plain_loop"] = {"items": len(same), "seconds": t_plain, "batched_seconds": t_batched,
                            "speedup_same_items": t_plain / t_batched,
                            "speedup_per_item_full_run": (t_plain / len(same)) / per_item_full,
                            "max_relative_nll_gap": float(gap.max()),
                            "median_relative_nll_gap": float(np.median(gap))}
    log(f"[eval] plain one-item loop on {len(same)} items: {t_plain:.2f} s; score_items on the same "
        f"items {t_batched:.2f} s: speed-up {t_plain / t_batched:.1f}x (per item vs the full run: "
        f"{(t_plain / len(same)) / per_item_full:.1f}x; target >= 10x); NLL gap median "
        f"{np.median(gap):.1e}, max {gap.max():.1e} ({dtype}, different batch shapes)")

    (args.out / "bench_gpu.json").write_text(json.dumps(report, indent=2))
    if args.eval_only:
        return

    # 3. sweep timing
    settings = SweepSettings(exclude_modules=["lm_head"], laaciq_prior="laplace", bnb_int8_threshold=6.0,
                             batch_tokens=best, max_tokens=10**6, reference_language="en")
    calib_texts = {lang: dict(list(per.items())[:8 if smoke else 64]) for lang, per in texts_by_lang.items()}
    calibration, t_calib = timed(lambda: calibrate(model, tokenizer, calib_texts, settings), device)
    languages = sorted(texts_by_lang)
    snapshot = WeightSnapshot(target_linears(model, settings.exclude_modules))
    per_config: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        _, t_save = timed(lambda: model.save_pretrained(folder), device)
        sweep = SweepContext(
            model=model, model_path=folder, snapshot=snapshot, calibration=calibration,
            settings=MethodSettings(), languages=languages,
            score=lambda scored, langs, name: score_items(
                scored, tokenizer, [t for lang in langs for t in texts_by_lang[lang].values()], best, 10**6),
            exclude_modules=settings.exclude_modules, bnb_int8_threshold=6.0, device=device,
            dtype=str(dtype).removeprefix("torch."))
        for name in TIMED_CONFIGS:
            config = parse_config(name)
            if smoke and config.family == "bnb" and device.type == "cpu":
                continue  # bitsandbytes on CPU works but is slow; the smoke run skips it

            def one_config(config=config):
                try:
                    config.run(sweep)  # the sweep's own path: each method's run
                finally:
                    snapshot.restore()

            per_config[name] = timed(one_config, device)[1]
            if device.type == "cuda":
                torch.cuda.empty_cache()
            log(f"[sweep] {name}: {per_config[name]:.2f} s")
    try:
        configs = yaml.safe_load(args.params.read_text())["compress"]["configs"]
    except (OSError, KeyError, TypeError):
        configs = TIMED_CONFIGS
    by_family = {family(name): config_seconds for name, config_seconds in per_config.items()}
    missing = sorted({family(name) for name in configs} - set(by_family))
    slowest = max(by_family.values())
    estimate = t_calib + seconds + sum(by_family.get(family(name), slowest) for name in configs)
    report["sweep"] = {"calibration_seconds": t_calib, "save_seconds": t_save, "fp_seconds": seconds,
                       "per_config_seconds": per_config, "configs_in_params": len(configs),
                       "families_not_timed": missing, "full_sweep_estimate_seconds": estimate}
    log(f"[sweep] calibration {t_calib:.1f} s; full-precision pass {seconds:.1f} s; estimate for the "
        f"{len(configs)} configs of {args.params} (each timed as its family; untimed families "
        f"{missing or 'none'} at the slowest): {estimate:.0f} s = {estimate / 60:.1f} min (target < 15 min)")
    (args.out / "bench_gpu.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
