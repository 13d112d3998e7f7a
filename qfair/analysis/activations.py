"""Activation profiles per language and layer (EXP-007/008, EXP-030).

For every block we record, averaged over the non-padding tokens of a language's test items:
- ``attn_out_norm`` / ``mlp_out_norm``: the L2 norm of the block's *own* attention and MLP
  outputs (the outputs of the attention output projection and the MLP down projection), not the
  residual stream they are added to;
- ``residual_norm``: the norm of the residual stream after the block;
- ``max_abs_residual`` and its hidden dimension: massive activations;
- ``sink_mass``: the mean attention probability on position 0, over queries at positions >= 1,
  all heads, all items (also per head in a second table).

And, for EXP-035, outlier statistics of the inputs of every compressed Linear layer (kurtosis,
max/median |x|, outlier-channel ratio) per language: see the section "input outliers" below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from qfair.analysis.census import label_parameter
from qfair.scoring.causal import model_device, padded_batches


def block_output_modules(model: nn.Module) -> dict[str, list[nn.Module]]:
    """Each layer's attention output projection and MLP down projection, in layer order.

    Found by the census's parameter labels (``attn_o``, ``mlp_down``), so every architecture the
    census knows works here too.
    """
    found: dict[str, dict[int, nn.Module]] = {"attn": {}, "mlp": {}}
    for name, module in model.named_modules():
        layer, component = label_parameter(f"{name}.weight")
        if layer is not None and component in {"attn_o", "mlp_down"}:
            found["attn" if component == "attn_o" else "mlp"][layer] = module
    if not found["attn"] or sorted(found["attn"]) != sorted(found["mlp"]):
        raise ValueError(f"activation profile: attention outputs in layers {sorted(found['attn'])}, "
                         f"MLP outputs in layers {sorted(found['mlp'])}; cannot pair them")
    layers = {kind: [modules[i] for i in sorted(modules)] for kind, modules in found.items()}
    # The blocks themselves: the ModuleList holding one block per layer. Their outputs are the
    # residual stream (``hidden_states[-1]`` is after the final norm, so it is not used).
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == len(layers["attn"]):
            if any(m is layers["attn"][0] for m in module[0].modules()):
                layers["block"] = list(module)
                break
    else:
        raise ValueError("activation profile: could not find the list of transformer blocks")
    return layers


@torch.no_grad()
def profile_language(model: nn.Module, tokenizer, texts: Sequence[str], modules: dict[str, list[nn.Module]],
                     batch_tokens: int, max_tokens: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-layer profile of one language and its per-head sink mass ``[layers, heads]``."""
    n_layers = len(modules["attn"])
    sums = {key: np.zeros(n_layers) for key in ("attn_out_norm", "mlp_out_norm", "residual_norm")}
    max_abs, max_dim = np.zeros(n_layers), np.zeros(n_layers, dtype=np.int64)
    sink_sum, sink_count = None, 0
    tokens = 0
    state: dict[str, torch.Tensor] = {}

    residual: dict[int, torch.Tensor] = {}

    def hook(kind: str, layer: int):
        def record(module: nn.Module, args: tuple, output) -> None:
            if kind == "block":
                residual[layer] = (output[0] if isinstance(output, tuple) else output).float()
                return
            norms = output.float().norm(dim=-1)[state["keep"]]
            sums[f"{kind}_out_norm"][layer] += float(norms.sum())
        return record

    handles = [m.register_forward_hook(hook(kind, i))
               for kind in ("attn", "mlp", "block") for i, m in enumerate(modules[kind])]
    device = next(model.parameters()).device
    try:
        for _, input_ids, mask in padded_batches(tokenizer, texts, batch_tokens, max_tokens, device):
            keep = mask.bool()
            state["keep"] = keep
            tokens += int(keep.sum())
            out = model(input_ids=input_ids, attention_mask=mask, output_attentions=True)
            for layer in range(n_layers):
                hidden = residual.pop(layer)  # residual stream after the block
                sums["residual_norm"][layer] += float(hidden.norm(dim=-1)[keep].sum())
                absolute = hidden.abs() * keep[..., None]
                value = float(absolute.max())
                if value > max_abs[layer]:
                    max_abs[layer] = value
                    max_dim[layer] = int(absolute.amax(dim=(0, 1)).argmax())
            # Sink mass: probability on key 0 for real queries at positions >= 1.
            queries = keep.clone()
            queries[:, 0] = False
            stacked = torch.stack([a[:, :, :, 0] for a in out.attentions])  # [L, B, H, T]
            per_head = (stacked * queries[None, :, None, :]).sum(dim=(1, 3)).double().cpu().numpy()
            sink_sum = per_head if sink_sum is None else sink_sum + per_head
            sink_count += int(queries.sum())
    finally:
        for handle in handles:
            handle.remove()
    sink_heads = sink_sum / sink_count
    frame = pd.DataFrame({"layer": np.arange(n_layers),
                          **{key: value / tokens for key, value in sums.items()},
                          "max_abs_residual": max_abs, "max_abs_dim": max_dim,
                          "sink_mass": sink_heads.mean(axis=1)})
    return frame, sink_heads


def profile_languages(model: nn.Module, tokenizer, texts: dict[str, dict[str, str]], batch_tokens: int,
                      max_tokens: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-language layer profiles and per-head sink mass, as tidy tables."""
    modules = block_output_modules(model)
    layers, heads = [], []
    for lang in sorted(texts):
        frame, sink = profile_language(model, tokenizer, list(texts[lang].values()), modules,
                                       batch_tokens, max_tokens)
        frame.insert(0, "language", lang)
        layers.append(frame)
        for layer, row in enumerate(sink):
            for head, mass in enumerate(row):
                heads.append({"language": lang, "layer": layer, "head": head, "sink_mass": mass})
    return pd.concat(layers, ignore_index=True), pd.DataFrame(heads)


# --- input outliers of the compressed Linear layers (EXP-035) ------------------------------------
#
# For each Linear layer a quantizer compresses (every ``nn.Linear`` inside a transformer block whose
# name contains none of ``compress.exclude_modules``, as qfair.models.linears.target_linears selects
# them), statistics of its *input* over a language's non-padding tokens:
# - ``kurtosis``: Fisher's excess kurtosis over all coordinates of all tokens (scipy.stats.kurtosis
#   with its defaults), from streaming float64 central moments merged batch by batch;
# - ``max_over_median``: max |x| over median |x|, the median read from a log-spaced histogram of |x|
#   (geometric bin midpoint: relative error below 2**(0.5 / MEDIAN_BINS_PER_OCTAVE) - 1, 0.14%);
# - ``channel_max_over_median``: the largest per-channel absmax over the median per-channel absmax
#   (exact): how far the outlier channels stand out.
# A median of 0 (more than half the inputs exactly 0, e.g. after a ReLU) gives an empty ratio cell.
# Everything accumulates on the model's device and moves to the CPU once per layer and language.

MEDIAN_BINS_PER_OCTAVE = 256
_MIN_OCTAVE, _MAX_OCTAVE = -64, 64  # |x| in [2**-64, 2**64) binned; below (and 0) bin 0, above the last
_N_BINS = (_MAX_OCTAVE - _MIN_OCTAVE) * MEDIAN_BINS_PER_OCTAVE + 2
OUTLIER_COLUMNS = ["language", "layer", "module", "kurtosis", "max_over_median", "channel_max_over_median",
                   "tokens"]
RATIO_COLUMNS = ["max_over_median", "channel_max_over_median"]  # NaN (empty) where the median is 0


def block_linears(model: nn.Module, exclude: Sequence[str]) -> dict[str, tuple[int, nn.Linear]]:
    """``{name: (block index, layer)}`` of the Linear layers the quantizers compress inside the blocks.

    The quantizers' own selection (``qfair.models.linears.target_linears``), restricted to names the
    census places in a layer.
    """
    from qfair.models.linears import target_linears

    found = {}
    for name, module in target_linears(model, exclude).items():
        layer, _ = label_parameter(f"{name}.weight")
        if layer is not None:
            found[name] = (layer, module)
    if not found:
        raise ValueError("activation outliers: no Linear layer inside the transformer blocks")
    return found


class StreamingInputStats:
    """Running input statistics of one layer, on ``device``: moments, channel absmax, |x| histogram.

    The central moment sums of each batch are merged into the running ones with the pairwise
    update of Pébay (2008, Sandia report SAND2008-6212), in float64, so no raw-moment cancellation.
    """

    def __init__(self, features: int, device: torch.device | str) -> None:
        zero = torch.zeros((), dtype=torch.float64, device=device)
        self.n, self.mean, self.m2, self.m3, self.m4 = (zero.clone() for _ in range(5))
        self.channel_absmax = torch.zeros(features, dtype=torch.float64, device=device)
        self.histogram = torch.zeros(_N_BINS, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Add a ``[tokens, features]`` batch of inputs (padding already removed)."""
        if x.numel() == 0:
            return
        x = x.double()
        nb = float(x.numel())
        mean_b = x.mean()
        d = x - mean_b
        d2 = d * d
        m2_b, m3_b, m4_b = d2.sum(), (d2 * d).sum(), (d2 * d2).sum()
        na, n = self.n, self.n + nb
        delta = mean_b - self.mean
        m4 = (self.m4 + m4_b + delta**4 * na * nb * (na * na - na * nb + nb * nb) / n**3
              + 6 * delta**2 * (na * na * m2_b + nb * nb * self.m2) / n**2
              + 4 * delta * (na * m3_b - nb * self.m3) / n)
        m3 = (self.m3 + m3_b + delta**3 * na * nb * (na - nb) / n**2
              + 3 * delta * (na * m2_b - nb * self.m2) / n)
        self.m2 = self.m2 + m2_b + delta**2 * na * nb / n
        self.m3, self.m4 = m3, m4
        self.mean = self.mean + delta * nb / n
        self.n = n
        absolute = x.abs()
        self.channel_absmax = torch.maximum(self.channel_absmax, absolute.amax(dim=0))
        # bin k >= 1 holds |x| in [2**(lo + (k-1)/R), 2**(lo + k/R)); clamp before the integer cast (-inf)
        scaled = torch.floor(torch.log2(absolute) * MEDIAN_BINS_PER_OCTAVE) \
            - _MIN_OCTAVE * MEDIAN_BINS_PER_OCTAVE + 1
        index = scaled.clamp(0, _N_BINS - 1).long().reshape(-1)
        self.histogram += torch.bincount(index, minlength=_N_BINS)

    def result(self) -> dict[str, float]:
        """Kurtosis and the two ratios (one device-to-host copy of the state)."""
        moments = torch.stack([self.n, self.m2, self.m4]).cpu().numpy()
        channel = self.channel_absmax.cpu().numpy()
        histogram = self.histogram.cpu().numpy()
        n, m2, m4 = moments
        kurtosis = n * m4 / (m2 * m2) - 3.0 if m2 > 0 else math.nan
        median_abs = histogram_median(histogram)
        channel_median = float(np.median(channel))
        top = float(channel.max())
        return {"kurtosis": float(kurtosis),
                "max_over_median": top / median_abs if median_abs > 0 else math.nan,
                "channel_max_over_median": top / channel_median if channel_median > 0 else math.nan}


def histogram_median(histogram: np.ndarray) -> float:
    """The median of |x| from its log histogram: the geometric midpoint of the median's bin (0 in bin 0)."""
    total = int(histogram.sum())
    if total == 0:
        return math.nan
    k = int(np.searchsorted(np.cumsum(histogram), (total + 1) // 2))  # bin of the lower middle value
    if k == 0:
        return 0.0
    return float(2.0 ** (_MIN_OCTAVE + (k - 0.5) / MEDIAN_BINS_PER_OCTAVE))


@torch.no_grad()
def outlier_stats_language(model: nn.Module, tokenizer, texts: Sequence[str],
                           linears: dict[str, tuple[int, nn.Linear]], batch_tokens: int,
                           max_tokens: int) -> pd.DataFrame:
    """One language: a row per layer of ``linears`` (:func:`block_linears`), padding excluded."""
    device = model_device(model)
    stats = {name: StreamingInputStats(lin.in_features, device) for name, (_, lin) in linears.items()}
    state: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def accumulate(module: nn.Module, args: tuple) -> None:
            stats[name].update(args[0].reshape(-1, args[0].shape[-1])[state["keep"]])
        return accumulate

    handles = [lin.register_forward_pre_hook(hook(name)) for name, (_, lin) in linears.items()]
    tokens = 0
    try:
        for _, input_ids, mask in padded_batches(tokenizer, texts, batch_tokens, max_tokens, device):
            state["keep"] = mask.reshape(-1).bool()
            tokens += int(mask.sum())
            model(input_ids=input_ids, attention_mask=mask, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    rows = [{"layer": layer, "module": name, **stats[name].result(), "tokens": tokens}
            for name, (layer, _) in linears.items()]
    return pd.DataFrame(rows).sort_values(["layer", "module"], kind="stable").reset_index(drop=True)


def outlier_stats_languages(model: nn.Module, tokenizer, texts: dict[str, dict[str, str]],
                            exclude: Sequence[str], batch_tokens: int, max_tokens: int) -> pd.DataFrame:
    """Tidy table (:data:`OUTLIER_COLUMNS`) of every language and compressed block Linear layer."""
    linears = block_linears(model, exclude)
    frames = []
    for lang in sorted(texts):
        frame = outlier_stats_language(model, tokenizer, list(texts[lang].values()), linears,
                                       batch_tokens, max_tokens)
        frame.insert(0, "language", lang)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[OUTLIER_COLUMNS]


def outlier_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per language, max and mean over layers of each statistic (``act_<stat>_max`` / ``_mean``).

    One row per language, for the ledger and mechanism analyses to join on ``language``; a ratio
    that is empty in some layers (median 0) is summarised over the others.
    """
    grouped = frame.groupby("language", sort=True)
    out = pd.DataFrame({"language": sorted(frame["language"].unique())}).set_index("language")
    for stat in ("kurtosis", "max_over_median", "channel_max_over_median"):
        out[f"act_{stat}_max"] = grouped[stat].max()
        out[f"act_{stat}_mean"] = grouped[stat].mean()
    out["tokens"] = grouped["tokens"].first()
    return out.reset_index()
