"""Apply a compression config to a model's Linear layers, and measure what LA-ACIQ needs.

Fake-quant configs rewrite weights in place from a full-precision copy kept in memory
(:class:`WeightSnapshot`), so a sweep never reloads the model from disk; bitsandbytes configs
load the saved model through transformers' ``BitsAndBytesConfig`` (real int8/4-bit kernels).
Everything runs where the model is: the snapshot, the quantizer arithmetic and the activation
statistics stay on its device (a GPU copy of the weights for a model on a GPU).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from qfair.quant.aciq import aciq_clip, mse_grid_clip
from qfair.quant.configs import CompressionConfig
from qfair.quant.laaciq import laaciq_clip
from qfair.quant.prune import prune_magnitude, prune_magnitude_global, prune_wanda
from qfair.quant.rtn import quantize_rtn
from qfair.scoring.causal import model_device, padded_batches


class WeightSnapshot:
    """A copy of the target weights as loaded, on their device, restored after each config."""

    def __init__(self, linears: dict[str, nn.Linear]) -> None:
        self.linears = linears
        self.weights = {name: lin.weight.detach().clone() for name, lin in linears.items()}

    @torch.no_grad()
    def restore(self) -> None:
        for name, lin in self.linears.items():
            lin.weight.copy_(self.weights[name])


@torch.no_grad()
def input_second_moments(model: nn.Module, linears: dict[str, nn.Linear], tokenizer,
                         texts: Sequence[str], batch_tokens: int,
                         max_tokens: int) -> tuple[dict[str, torch.Tensor], int]:
    """Per target layer, ``E[x_j^2]`` over the non-padding tokens of ``texts`` (float64).

    Returns the moments and the token count (so moments of several languages can be pooled).
    """
    device = model_device(model)
    # Sums stay on the model's device (no host sync per layer and batch); moved to CPU once.
    sums = {name: torch.zeros(lin.in_features, dtype=torch.float64, device=device)
            for name, lin in linears.items()}
    state: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def accumulate(module: nn.Module, args: tuple) -> None:
            x = args[0].reshape(-1, args[0].shape[-1])[state["keep"]]
            sums[name] += x.double().square().sum(0).to(device)
        return accumulate

    handles = [lin.register_forward_pre_hook(hook(name)) for name, lin in linears.items()]
    count = 0
    try:
        for _, input_ids, mask in padded_batches(tokenizer, texts, batch_tokens, max_tokens, device):
            state["keep"] = mask.reshape(-1).bool()
            count += int(mask.sum())
            model(input_ids=input_ids, attention_mask=mask)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (total / count).cpu() for name, total in sums.items()}, count


def language_weights(weighting: str, languages: list[str], resource_share: dict[str, float],
                     reference: str) -> torch.Tensor:
    """LA-ACIQ's language weights: uniform, resource-proportional, minimax (all), or the
    reference language alone (``corpus.reference_language``, English in the profiles)."""
    if weighting in {"uniform", "minimax"}:
        return torch.ones(len(languages), dtype=torch.float64)
    if weighting == "resource":
        return torch.tensor([resource_share[lang] for lang in languages], dtype=torch.float64)
    if weighting == "reference":
        return torch.tensor([float(lang == reference) for lang in languages], dtype=torch.float64)
    raise ValueError(f"unknown LA-ACIQ weighting {weighting!r}")


@torch.no_grad()
def compress_weight(weight: torch.Tensor, config: CompressionConfig,
                    moments: torch.Tensor | None = None, weights: torch.Tensor | None = None,
                    input_norm: torch.Tensor | None = None, laaciq_prior: str = "laplace") -> torch.Tensor:
    """The compressed (dequantized or pruned) version of one Linear weight."""
    method, bits = config.method, config.bits
    if method == "rtn":
        return quantize_rtn(weight, bits, config.granularity, config.group_size, config.symmetric)
    if method == "aciq":
        clip = aciq_clip(weight, bits, config.prior, config.granularity)
        return quantize_rtn(weight, bits, config.granularity, clip=clip)
    if method == "mse":
        clip = mse_grid_clip(weight, bits, config.granularity, group_size=config.group_size)
        return quantize_rtn(weight, bits, config.granularity, config.group_size, clip=clip)
    if method in {"laaciq", "oracle"}:
        objective = "minimax" if config.weighting == "minimax" else "weighted"
        clip = laaciq_clip(weight, moments, bits, laaciq_prior, weights, objective)
        return quantize_rtn(weight, bits, "channel", clip=clip)
    if method == "prune":
        if config.prior == "magnitude":
            if config.granularity == "global":
                raise ValueError(f"config {config.name!r} prunes all tensors together: use apply_in_place")
            return prune_magnitude(weight, config.sparsity)
        return prune_wanda(weight, input_norm, config.sparsity)
    raise ValueError(f"config {config.name!r}: method {method!r} is not a fake-quant method")


@torch.no_grad()
def apply_in_place(snapshot: WeightSnapshot, config: CompressionConfig,
                   moments: dict[str, torch.Tensor] | None = None,
                   weights: torch.Tensor | None = None,
                   input_norms: dict[str, torch.Tensor] | None = None,
                   laaciq_prior: str = "laplace") -> None:
    """Overwrite every target weight with its compressed version, starting from the snapshot.

    ``moments[name]`` is ``[languages, in_features]`` for LA-ACIQ; ``input_norms[name]`` is
    ``||x_j||`` over the calibration tokens for Wanda.
    """
    if config.method == "prune" and config.granularity == "global":  # one threshold for all tensors
        pruned = prune_magnitude_global({name: snapshot.weights[name] for name in snapshot.linears},
                                        config.sparsity)
        for name, lin in snapshot.linears.items():
            lin.weight.copy_(pruned[name])
        return
    for name, lin in snapshot.linears.items():
        original = snapshot.weights[name]
        new = compress_weight(original, config,
                              moments=None if moments is None else moments[name], weights=weights,
                              input_norm=None if input_norms is None else input_norms[name],
                              laaciq_prior=laaciq_prior)
        if not torch.isfinite(new).all():
            raise FloatingPointError(f"config {config.name!r} produced non-finite weights in {name}")
        lin.weight.copy_(new)


def load_bitsandbytes(path: Path | str, config: CompressionConfig, exclude: Sequence[str],
                      int8_threshold: float, device: str = "cpu", dtype: str = "float32") -> nn.Module:
    """Load the saved model with real bitsandbytes quantization of its Linear layers.

    ``device`` is where the quantized layers live ("cpu", "cuda", "cuda:1"); ``dtype`` is the
    dtype of the unquantized parts and the 4-bit compute dtype (bfloat16 on a GPU).
    """
    from transformers import BitsAndBytesConfig

    from qfair.models.load import DTYPES, check_device, load_model

    check_device(device)
    if dtype not in DTYPES:
        raise ValueError(f"dtype: unknown {dtype!r}; choose one of {sorted(DTYPES)}")
    if config.bnb_type == "int8":
        quant = BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=int8_threshold,
                                   llm_int8_skip_modules=list(exclude))
    else:
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=config.bnb_type,
                                   bnb_4bit_use_double_quant=config.double_quant,
                                   bnb_4bit_compute_dtype=DTYPES[dtype],
                                   llm_int8_skip_modules=list(exclude))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*inputs will be cast.*")
        return load_model(path, dtype=dtype, quantization_config=quant, device_map=device)
