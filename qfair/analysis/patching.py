"""Track B's forward passes: attention features (B-001), pooled hidden states (B-002) and
interventions on components (qfair.models.hooks): B-003, B-004, B-005.

All three score one fixed set of parallel test items (:class:`ItemSet`) and report per language the
relative change of the summed NLL, ``N_l(intervened) / N_l(reference) - 1`` (the ``rho`` of
EXPERIMENTS.md with another model in place of the compressed one).

- B-003 mean ablation: a component's value is replaced by its mean over every real token of every
  language's items (a position-independent constant).
- B-004 attribution patching: the first-order estimate of the same ablation,
  ``sum over tokens of (mean - value) . dNLL/dvalue``, from one forward and backward pass per batch.
- B-005 causal mediation of quantization: the quantized model runs with one component's value
  restored from the full-precision model on the same input (cached once, not recomputed per
  component); the share of each language's degradation recovered is
  ``(N_q - N_restored) / (N_q - N_fp)``. The converse map quantizes one block at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from qfair.analysis.census import label_parameter
from qfair.models.hooks import Component, ComponentHooks, Replacement
from qfair.quant.methods.base import CompressionMethod, WeightSnapshot
from qfair.scoring.causal import (
    TokenItems,
    check_finite_nll,
    encode_items,
    length_sorted_batches,
    pad_token_id,
    to_device,
    token_nll_sums,
)


@dataclass
class ItemSet:
    """Tokenized parallel items of every language, in fixed length-sorted batches."""

    languages: np.ndarray  # language of each item
    keys: np.ndarray  # parallel item id of each item
    tokens: TokenItems
    batches: list[list[int]]
    pad_id: int

    def padded(self, index: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids, mask = self.tokens.padded(self.batches[index], self.pad_id)
        return to_device(input_ids, device), to_device(mask, device)


def item_set(tokenizer, texts: dict[str, dict[str, str]], items_per_language: int, seed: int,
             batch_tokens: int, max_tokens: int) -> ItemSet:
    """A seeded subset of ``items_per_language`` parallel ids (the same in every language)."""
    languages = sorted(texts)
    shared = sorted(set.intersection(*(set(texts[lang]) for lang in languages)))
    if len(shared) < items_per_language:
        raise ValueError(f"interpretability.items_per_language is {items_per_language}, but only "
                         f"{len(shared)} test items are parallel across all languages")
    chosen = np.random.default_rng(seed).choice(len(shared), size=items_per_language, replace=False)
    keys = [shared[i] for i in sorted(chosen)]
    labels = np.array([lang for lang in languages for _ in keys])
    tokens = TokenItems.from_lists(encode_items(tokenizer, [texts[lang][key] for lang in languages
                                                            for key in keys], max_tokens))
    return ItemSet(labels, np.array(keys * len(languages)), tokens,
                   length_sorted_batches(tokens.lengths, batch_tokens), pad_token_id(tokenizer))


@torch.no_grad()
def head_features(model: torch.nn.Module, items: ItemSet, device: torch.device) -> pd.DataFrame:
    """B-001's measurement: one row per (item, layer, head) with the attention features of
    qfair.analysis.heads (the model must return attention probabilities: eager attention).

    Each feature of query position ``q`` (keys ``0..q``) is divided by its value under uniform causal
    attention (entropy ``log(q + 1)``, distance ``q / 2``, sink mass ``1 / (q + 1)``) before the mean
    over queries: otherwise a head that ignores the text still differs between languages whose
    tokenizations of one verse differ in length, and B-001 would measure token count.
    """
    rows = []
    for index, batch in enumerate(items.batches):
        input_ids, mask = items.padded(index, device)
        attentions = model(input_ids=input_ids, attention_mask=mask, output_attentions=True,
                           use_cache=False).attentions
        probs = torch.stack(attentions, dim=1).float()  # [batch, layer, head, query, key]
        width = probs.shape[-1]
        queries = mask.bool().clone()
        queries[:, 0] = False
        weight = queries[:, None, None, :].float()
        count = weight.sum(dim=-1)
        positions = torch.arange(width, device=probs.device, dtype=torch.float32)
        offset = (positions[:, None] - positions[None, :]).clamp(min=0)  # q - k on and below the diagonal
        keys = positions + 1  # keys a causal query at position q sees; q = 0 is never averaged
        uniform = {"entropy": torch.where(keys > 1, keys.log(), 1.0),
                   "distance": torch.where(keys > 1, positions / 2, 1.0), "sink_mass": 1 / keys}
        per_query = {
            "entropy": -(probs * probs.clamp(min=1e-30).log()).sum(-1) / uniform["entropy"],
            "distance": (probs * offset).sum(-1) / uniform["distance"],
            "sink_mass": probs[..., 0] / uniform["sink_mass"],
        }
        values = {name: ((v * weight).sum(-1) / count).cpu().numpy() for name, v in per_query.items()}
        n_layer, n_head = probs.shape[1], probs.shape[2]
        layer, head = np.meshgrid(np.arange(n_layer), np.arange(n_head), indexing="ij")
        for row, item in enumerate(batch):
            rows.append(pd.DataFrame({"item": item, "language": items.languages[item],
                                      "layer": layer.ravel(), "head": head.ravel(),
                                      **{name: v[row].ravel() for name, v in values.items()}}))
    return pd.concat(rows, ignore_index=True).sort_values(["item", "layer", "head"], ignore_index=True)


@torch.no_grad()
def pooled_hidden_states(model: torch.nn.Module, items: ItemSet, device: torch.device) -> np.ndarray:
    """B-002's measurement: ``[layer, item, hidden]`` float64, each item's hidden states averaged over
    its real tokens (layer 0: the embedding output)."""
    pooled: np.ndarray | None = None
    for index, batch in enumerate(items.batches):
        input_ids, mask = items.padded(index, device)
        hidden = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True,
                       use_cache=False).hidden_states
        states = torch.stack(hidden, dim=0).double()  # [layer, batch, position, hidden]
        weight = mask.double()[None, :, :, None]
        means = ((states * weight).sum(dim=2) / weight.sum(dim=2)).cpu().numpy()
        if pooled is None:
            pooled = np.full((means.shape[0], len(items.tokens), means.shape[2]), np.nan)
        pooled[:, batch] = means
    if pooled is None or not np.isfinite(pooled).all():
        raise ValueError("B-002: pooled hidden states are missing or not finite")
    return pooled


def item_nll(model: torch.nn.Module, items: ItemSet, device: torch.device,
             intervention: Callable[[int], object] | None = None, desc: str | None = None) -> np.ndarray:
    """Per-item NLL (nats); ``intervention(batch_index)`` gives a context manager active during
    that batch's forward pass (hooks that replace components)."""
    nll = np.full(len(items.tokens), np.nan)
    with torch.no_grad():
        for index in tqdm(range(len(items.batches)), desc=desc, disable=desc is None, mininterval=5):
            input_ids, mask = items.padded(index, device)
            with intervention(index) if intervention else nullcontext():
                logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
            nll[items.batches[index]] = token_nll_sums(logits, input_ids, mask).cpu().numpy()
    check_finite_nll(nll, "interpretability")
    return nll


def language_nll(items: ItemSet, nll: np.ndarray) -> pd.Series:
    """Summed NLL per language."""
    return pd.Series(nll).groupby(items.languages).sum()


def relative_change(items: ItemSet, nll: np.ndarray, reference: np.ndarray) -> pd.Series:
    return language_nll(items, nll) / language_nll(items, reference) - 1


def _component_columns(component: Component) -> dict:
    return {"component": component.name, "layer": component.layer, "kind": component.kind,
            "head": component.head if component.kind == "head" else pd.NA}


def _long(component: Component, values: pd.Series, column: str) -> pd.DataFrame:
    frame = values.rename(column).rename_axis("language").reset_index()
    for key, value in reversed(_component_columns(component).items()):
        frame.insert(0, key, value)
    return frame


def _masked_sum(value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (value.double() * mask[..., None]).sum(dim=(0, 1))


def cached_means(items: ItemSet, cache: list[dict[Component, torch.Tensor]],
                 device: torch.device) -> dict[Component, torch.Tensor]:
    """Each component's mean value over every real token, from :func:`cache_values`' values."""
    sums: dict[Component, torch.Tensor] = {}
    count = 0
    for index, values in enumerate(cache):
        mask = items.padded(index, device)[1]
        for component, value in values.items():
            total = _masked_sum(value, mask)
            sums[component] = total if component not in sums else sums[component] + total
        count += int(mask.sum())
    return {component: total / count for component, total in sums.items()}


def mean_values(model: torch.nn.Module, hooks: ComponentHooks, items: ItemSet,
                components: Sequence[Component], device: torch.device) -> dict[Component, torch.Tensor]:
    """Each component's mean value over every real token of the item set."""
    return cached_means(items, cache_values(model, hooks, items, components, device), device)


def constant_value(mean: torch.Tensor) -> Replacement:
    """Mean ablation: the component's value replaced by ``mean`` at every position."""
    return lambda value: mean.to(value.dtype).expand_as(value)


def ablation(model: torch.nn.Module, hooks: ComponentHooks, items: ItemSet, components: Sequence[Component],
             means: dict[Component, torch.Tensor], reference: np.ndarray,
             device: torch.device) -> pd.DataFrame:
    """B-003: per component and language, the relative NLL change when the component is mean-ablated."""
    frames = []
    for component in tqdm(components, desc="ablation", mininterval=5):
        replacement = {component: constant_value(means[component])}
        nll = item_nll(model, items, device, lambda _, chosen=replacement: hooks.replace(chosen))
        frames.append(_long(component, relative_change(items, nll, reference), "nll_change"))
    return pd.concat(frames, ignore_index=True)


def attribution(model: torch.nn.Module, hooks: ComponentHooks, items: ItemSet,
                components: Sequence[Component], means: dict[Component, torch.Tensor],
                reference: np.ndarray, device: torch.device) -> pd.DataFrame:
    """B-004: per component and language, the first-order (activation x gradient) estimate of the
    relative NLL change of mean ablation, from one forward and backward pass per batch."""
    estimates = {component: np.zeros(len(items.tokens)) for component in components}
    for index in range(len(items.batches)):
        input_ids, mask = items.padded(index, device)
        model.zero_grad(set_to_none=True)
        with torch.enable_grad(), hooks.record(list(components), detach=False) as values:
            logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
            token_nll_sums(logits, input_ids, mask).sum().backward()
        rows = items.batches[index]
        for component in components:
            value = values[component]
            delta = (means[component].to(value.dtype) - value.detach()) * value.grad
            estimates[component][rows] = (delta.double().sum(-1) * mask).sum(-1).cpu().numpy()
    model.zero_grad(set_to_none=True)
    base = language_nll(items, reference)
    return pd.concat([_long(c, pd.Series(estimates[c]).groupby(items.languages).sum() / base,
                            "nll_change_estimate") for c in components], ignore_index=True)


def cache_values(model: torch.nn.Module, hooks: ComponentHooks, items: ItemSet,
                 components: Sequence[Component],
                 device: torch.device) -> list[dict[Component, torch.Tensor]]:
    """Every component's value in every batch (the full-precision model's, for mediation)."""
    cache = []
    with torch.no_grad():
        for index in range(len(items.batches)):
            input_ids, mask = items.padded(index, device)
            with hooks.record(list(components)) as values:
                model(input_ids=input_ids, attention_mask=mask, use_cache=False)
            cache.append(dict(values))
    return cache


def recovered_share(items: ItemSet, restored: np.ndarray, quantized: np.ndarray,
                    full_precision: np.ndarray) -> pd.Series:
    """Per language, ``(N_q - N_restored) / (N_q - N_fp)``; NaN where quantization did not raise the NLL."""
    q, r, fp = (language_nll(items, x) for x in (quantized, restored, full_precision))
    loss = q - fp
    return ((q - r) / loss).where(loss > 0)


def mediation(model: torch.nn.Module, hooks: ComponentHooks, items: ItemSet, components: Sequence[Component],
              cache: list[dict[Component, torch.Tensor]], quantized: np.ndarray, full_precision: np.ndarray,
              device: torch.device) -> pd.DataFrame:
    """B-005: the model (already quantized) with each component restored from ``cache`` in turn."""
    frames = []
    for component in tqdm(components, desc="mediation", mininterval=5):
        def restore(index: int, component: Component = component):
            saved = cache[index][component]
            return hooks.replace({component: lambda value: saved.to(value.dtype)})
        nll = item_nll(model, items, device, restore)
        frames.append(_long(component, recovered_share(items, nll, quantized, full_precision),
                            "recovered_share"))
    return pd.concat(frames, ignore_index=True)


def block_linears(linears: dict[str, torch.nn.Module], block: Component) -> dict[str, torch.nn.Module]:
    """The compressed Linear layers of one attention or MLP block (by the census' labels)."""
    chosen = {}
    for name, module in linears.items():
        layer, label = label_parameter(f"{name}.weight")
        if layer == block.layer and label.startswith(block.kind + "_"):
            chosen[name] = module
    if not chosen:
        raise ValueError(f"{block.name}: no compressed Linear layer belongs to this block")
    return chosen


def block_quantization(model: torch.nn.Module, items: ItemSet, linears: dict[str, torch.nn.Module],
                       config: CompressionMethod, blocks: Sequence[Component], full_precision: np.ndarray,
                       device: torch.device) -> pd.DataFrame:
    """The converse of B-005: per block, rho of every language when only that block is compressed."""
    frames = []
    for block in tqdm(blocks, desc="block quantization", mininterval=5):
        snapshot = WeightSnapshot(block_linears(linears, block))
        try:
            config.apply(snapshot)
            nll = item_nll(model, items, device)
        finally:
            snapshot.restore()
        frames.append(_long(block, relative_change(items, nll, full_precision), "rel_degradation"))
    return pd.concat(frames, ignore_index=True)
