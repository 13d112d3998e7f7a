"""Activation profiles per language and layer (EXP-007/008, EXP-030).

For every block we record, averaged over the non-padding tokens of a language's test items:
- ``attn_out_norm`` / ``mlp_out_norm``: the L2 norm of the block's *own* attention and MLP
  outputs (the outputs of the attention output projection and the MLP down projection), not the
  residual stream they are added to;
- ``residual_norm``: the norm of the residual stream after the block;
- ``max_abs_residual`` and its hidden dimension: massive activations;
- ``sink_mass``: the mean attention probability on position 0, over queries at positions >= 1,
  all heads, all items (also per head in a second table).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from qfair.analysis.census import label_parameter
from qfair.scoring.causal import padded_batches


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
