"""Weight census: per-tensor outlier statistics of a checkpoint, labelled by layer and component.

Definitions (docs/definitions.md): the kurtosis of a tensor is the excess (Fisher) kurtosis of all its
entries in float64, no subsampling (Gaussian 0, Laplace 3, uniform -1.2); a model's class is set
by the largest kurtosis among the tensors the compression configs quantize (:func:`model_class`,
:func:`quantized_rows`: the attention and MLP weight matrices; embeddings, never quantized, are
reported separately). Alongside: ``max|w| / std``, the fraction of
entries with ``|w - mean| > 6 std`` and the top-k ``|w|`` coordinates (super-weight candidates).
All moments are population moments (``ddof=0``, scipy's ``bias=True``).

Every parameter name is labelled with its layer index and one of :data:`COMPONENTS` by ordered
regex rules (:func:`label_parameter`) covering the Hugging Face names of BLOOM, GPT-2, OPT,
GPT-NeoX/Pythia, XGLM, Llama/Qwen2 and BERT/XLM-R, with or without the model prefix
(``transformer.``, ``model.``, ``bert.``...), so hub checkpoints and in-memory models agree.
:func:`census_safetensors` streams checkpoints tensor by tensor (peak memory about one tensor in
float64); :func:`census_model` gives the same rows for a module in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open

COMPONENTS = ("attn_q", "attn_k", "attn_v", "attn_qkv", "attn_o", "mlp_up", "mlp_gate", "mlp_down",
              "embed", "norm", "lm_head", "other")
CLASS_THRESHOLDS = (("HEAVY", 50.0), ("Moderate", 10.0), ("Mild", 3.0))
# The weight matrices of the transformer blocks' Linear layers: what the compression configs quantize
MATRIX_COMPONENTS = ("attn_q", "attn_k", "attn_v", "attn_qkv", "attn_o", "mlp_up", "mlp_gate",
                     "mlp_down")

_LAYER = re.compile(r"(?:^|\.)(?:h|layers|layer|blocks)\.(\d+)(?:\.|$)")
# Last segments that are a tensor of a module rather than a module of their own.
_LEAVES = {"weight", "bias", "masked_bias", "inv_freq", "position_ids"}
_ATTN = r"(?:attn|attention|self_attn|self_attention)"
# Norms first (BLOOM's word_embeddings_layernorm and BERT's embeddings.LayerNorm are norms, not
# embeddings), then heads, then the layer components, then embeddings. Order matters: BERT's
# attention.output.dense must hit attn_o before output.dense (mlp_down) is tried, and GPT-2's
# attn.c_proj likewise before mlp.c_proj.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(pattern, flags), component) for
                                                        pattern, component, flags in (
    (r"(?:^|\.)(?:ln_\w*|\w*norm\w*)$", "norm", re.IGNORECASE),
    (r"(?:^|\.)(?:lm_head|embed_out|cls\.predictions)(?:\.|$)", "lm_head", 0),
    (r"(?:^|\.)(?:query_key_value|c_attn|qkv_proj|Wqkv)$", "attn_qkv", 0),
    (r"(?:^|\.)(?:q_proj|query)$", "attn_q", 0),
    (r"(?:^|\.)(?:k_proj|key)$", "attn_k", 0),
    (r"(?:^|\.)(?:v_proj|value)$", "attn_v", 0),
    (rf"(?:^|\.)(?:o_proj|out_proj)$|(?:^|\.){_ATTN}(?:\.output)?\.(?:dense|c_proj)$", "attn_o", 0),
    (r"(?:^|\.)gate_proj$", "mlp_gate", 0),
    (r"(?:^|\.)(?:up_proj|dense_h_to_4h|c_fc|fc1|intermediate\.dense)$", "mlp_up", 0),
    (r"(?:^|\.)(?:down_proj|dense_4h_to_h|fc2|mlp\.c_proj|output\.dense)$", "mlp_down", 0),
    (r"(?:^|\.)(?:wte|wpe|embed_\w+|\w*embeddings)(?:\.|$)", "embed", 0),
))


def _split_leaf(name: str) -> tuple[str, str]:
    module, _, leaf = name.rpartition(".")
    return (module, leaf) if leaf in _LEAVES else (name, "")


def label_parameter(name: str) -> tuple[int | None, str]:
    """``(layer index or None, component)`` of a parameter name; unknown names give ``"other"``.

    Biases share their weight's component. Known unmapped names (component ``"other"``): BERT/XLM-R
    ``pooler.dense`` and NSP ``cls.seq_relationship``, OPT-350m's ``project_in``/``project_out``
    (dimension adapters around the decoder) and attention-mask / rotary buffers
    (``attn.bias``, ``attn.masked_bias``, ``rotary_emb.inv_freq``; see :func:`parameter_kind`).
    """
    match = _LAYER.search(name)
    layer = int(match.group(1)) if match else None
    if parameter_kind(name) == "buffer":
        return layer, "other"
    module, _ = _split_leaf(name)
    for pattern, component in _RULES:
        if pattern.search(module):
            return layer, component
    return layer, "other"


def parameter_kind(name: str) -> str:
    """``"weight"``, ``"bias"``, ``"buffer"`` (masks, rotary frequencies, position ids) or ``"other"``.

    GPT-2 and old GPT-NeoX checkpoints store the causal mask as ``<attn>.bias`` directly under the
    attention module; real biases sit under a projection (``attn.c_attn.bias``).
    """
    module, leaf = _split_leaf(name)
    if leaf in {"masked_bias", "inv_freq", "position_ids"}:
        return "buffer"
    if leaf == "bias" and re.search(rf"(?:^|\.){_ATTN}$", module):
        return "buffer"
    return leaf if leaf in {"weight", "bias"} else "other"


def _flat_float64(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.numel() == 0:
        raise ValueError(f"tensor {name!r} is empty")
    x = t.detach().reshape(-1).to(torch.float64, copy=True)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"tensor {name!r} contains NaN or Inf")
    return x


def _top_abs(x: torch.Tensor, shape: tuple[int, ...], k: int) -> list[tuple[float, tuple[int, ...]]]:
    """The k entries largest in ``|x|`` (value, index in ``shape``), without a full-size copy."""
    k = min(k, x.numel())
    if k <= 0:
        return []
    candidates = {}
    for largest in (True, False):
        values, indices = torch.topk(x, k, largest=largest)
        candidates.update(zip(indices.tolist(), values.tolist(), strict=True))
    best = sorted(candidates.items(), key=lambda item: (-abs(item[1]), item[0]))[:k]
    return [(value, tuple(int(i) for i in np.unravel_index(index, shape))) for index, value in best]


def _center(x: torch.Tensor) -> tuple[float, float]:
    """``(mean, m2)`` of a float64 vector, which is centred in place (one copy in memory)."""
    n = x.numel()
    mean = x.mean()
    x.sub_(mean)
    residual = x.mean()  # two-pass correction of the mean's rounding error
    x.sub_(residual)
    m2 = float(torch.dot(x, x)) / n
    return float(mean + residual), m2


def tensor_stats(t: torch.Tensor, name: str = "tensor", k: int = 5) -> dict:
    """Outlier statistics of one tensor, computed in float64 over all entries.

    Keys: ``numel``, ``mean``, ``std`` (population), ``excess_kurtosis`` (``m4 / m2**2 - 3`` from
    central moments, equal to ``scipy.stats.kurtosis(fisher=True, bias=True)``), ``max_abs``,
    ``max_abs_over_std`` (``max|w| / std``), ``frac_beyond_6std`` (share of ``|w - mean| > 6 std``)
    and ``top_k``: the k largest ``|w|`` as ``(signed value, index tuple)``, largest first (ties by
    flat index). A constant tensor has ``std`` 0 and NaN kurtosis and ratio, as in scipy.
    Raises ValueError naming ``name`` if the tensor is empty or holds NaN or Inf.
    """
    shape = tuple(t.shape)
    x = _flat_float64(t, name)
    n = x.numel()
    low, high = torch.aminmax(x)
    max_abs = max(-float(low), float(high))
    top = _top_abs(x, shape, k)
    mean, m2 = _center(x)  # x now holds w - mean
    std = m2 ** 0.5
    beyond = int((x > 6 * std).sum()) + int((x < -6 * std).sum()) if std > 0 else 0
    x.square_()
    m4 = float(torch.dot(x, x)) / n
    del x
    return {
        "numel": n, "mean": mean, "std": std,
        "excess_kurtosis": m4 / m2 ** 2 - 3.0 if m2 > 0 else float("nan"),
        "max_abs": max_abs, "max_abs_over_std": max_abs / std if std > 0 else float("nan"),
        "frac_beyond_6std": beyond / n, "top_k": top,
    }


def _keep(name: str, shape: tuple[int, ...], include_1d: bool) -> bool:
    return (include_1d or len(shape) >= 2) and parameter_kind(name) != "buffer"


def _row(name: str, t: torch.Tensor, top_k: int) -> dict:
    layer, component = label_parameter(name)
    return {"name": name, "layer": layer, "component": component, "kind": parameter_kind(name),
            "shape": tuple(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
            **tensor_stats(t, name=name, k=top_k)}


def _frame(rows: Iterable[dict]) -> pd.DataFrame:
    columns = ["name", "layer", "component", "kind", "shape", "dtype", "numel", "mean", "std",
               "excess_kurtosis", "max_abs", "max_abs_over_std", "frac_beyond_6std", "top_k"]
    df = pd.DataFrame(list(rows), columns=columns)
    df["layer"] = df["layer"].astype("Int64")
    return df


def census_safetensors(paths: list[Path], top_k: int = 5, include_1d: bool = False) -> pd.DataFrame:
    """One row per tensor of safetensors files (shards of one model), streamed one at a time.

    Columns: name, layer (nullable Int64), component, kind, shape, dtype and :func:`tensor_stats`.
    1-D and 0-D tensors (norms, biases) are skipped unless ``include_1d``; buffers (masks, rotary
    frequencies) and non-float tensors always. Rows follow file order, then the file's key order.
    """
    def rows() -> Iterator[dict]:
        seen: set[str] = set()
        for path in paths:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():
                    if name in seen:
                        raise ValueError(f"tensor {name!r} appears in more than one file ({path})")
                    seen.add(name)
                    if not _keep(name, tuple(handle.get_slice(name).get_shape()), include_1d):
                        continue
                    tensor = handle.get_tensor(name)
                    if tensor.is_floating_point():
                        yield _row(name, tensor, top_k)
                    del tensor

    return _frame(rows())


def census_model(model: torch.nn.Module, top_k: int = 5, include_1d: bool = False) -> pd.DataFrame:
    """:func:`census_safetensors` rows for a module in memory, over ``named_parameters()``.

    Tied parameters appear once, under their first name (as ``save_pretrained`` writes them).
    """
    return _frame(_row(name, param, top_k) for name, param in model.named_parameters()
                  if _keep(name, tuple(param.shape), include_1d) and param.is_floating_point())


def model_class(max_kurtosis: float) -> str:
    """Class of a model by its largest tensor kurtosis: HEAVY > 50, Moderate > 10, Mild > 3, else
    Gaussian (strict inequalities: exactly 50 is Moderate)."""
    if np.isnan(max_kurtosis):
        raise ValueError("max_kurtosis is NaN")
    for label, threshold in CLASS_THRESHOLDS:
        if max_kurtosis > threshold:
            return label
    return "Gaussian"


def quantized_rows(df: pd.DataFrame, exclude: Sequence[str] = ()) -> pd.Series:
    """Mask of the census rows the compression configs quantize: weight matrices of the attention
    and MLP Linear layers (:data:`MATRIX_COMPONENTS`) whose name contains no ``exclude`` entry
    (``compress.exclude_modules``). Embeddings, norms and the output head are never among them."""
    names = df["name"].astype(str)
    excluded = np.zeros(len(df), dtype=bool)
    for part in exclude:
        excluded |= names.str.contains(part, regex=False).to_numpy()
    return (df["kind"] == "weight") & df["component"].isin(MATRIX_COMPONENTS) & ~excluded


def summarize_census(df: pd.DataFrame, exclude: Sequence[str] = ()) -> dict:
    """Model-level summary of a census (NaN kurtoses, from constant tensors, are ignored).

    Keys: ``max_kurtosis`` with its ``max_kurtosis_tensor``/``_layer`` (None outside layers; the
    EXP-024 quantity)/``_component`` and ``class`` (:func:`model_class`), all over the quantized
    tensors (:func:`quantized_rows` with ``exclude``); ``embed_max_kurtosis`` and
    ``embed_max_kurtosis_tensor`` (the embeddings, never quantized; None without); ``per_component``
    ``{component: {"mean", "max", "n"}}``; ``per_layer_max`` ``{layer: max kurtosis}`` and
    ``heaviest_layer`` (its argmax, None without layered rows); ``attn_mean_kurtosis`` and
    ``mlp_mean_kurtosis`` (mean over ``attn_*`` / ``mlp_*`` tensors, NaN if none); ``n_tensors``.
    The summary covers the rows given: filter ``df`` first to summarise, say, weights only.
    """
    kurt = df["excess_kurtosis"].astype(float)
    quantized = kurt.where(quantized_rows(df, exclude))
    if quantized.isna().all():
        raise ValueError("census has no quantized weight matrix with a finite kurtosis")
    top = df.loc[quantized.idxmax()]
    embed = kurt.where(df["component"] == "embed")
    top_embed = None if embed.isna().all() else df.loc[embed.idxmax()]
    valid = df.assign(k=kurt)[kurt.notna()]
    per_component = {str(comp): {"mean": float(g["k"].mean()), "max": float(g["k"].max()), "n": len(g)}
                     for comp, g in valid.groupby("component", sort=True)}
    layered = valid[valid["layer"].notna()]
    per_layer = layered.groupby(layered["layer"].astype(int))["k"].max()
    component = valid["component"].astype(str)
    return {
        "max_kurtosis": float(top["excess_kurtosis"]),
        "max_kurtosis_tensor": str(top["name"]),
        "max_kurtosis_layer": None if pd.isna(top["layer"]) else int(top["layer"]),
        "max_kurtosis_component": str(top["component"]),
        "class": model_class(float(top["excess_kurtosis"])),
        "embed_max_kurtosis": None if top_embed is None else float(top_embed["excess_kurtosis"]),
        "embed_max_kurtosis_tensor": None if top_embed is None else str(top_embed["name"]),
        "per_component": per_component,
        "per_layer_max": {int(layer): float(value) for layer, value in per_layer.items()},
        "heaviest_layer": int(per_layer.idxmax()) if len(per_layer) else None,
        "attn_mean_kurtosis": float(valid.loc[component.str.startswith("attn_"), "k"].mean()),
        "mlp_mean_kurtosis": float(valid.loc[component.str.startswith("mlp_"), "k"].mean()),
        "n_tensors": len(df),
    }


def head_kurtosis(weight: torch.Tensor, n_heads: int, head_axis: Literal["in", "out"] = "in",
                  transposed: bool = False) -> np.ndarray:
    """Excess kurtosis of each head's block of an attention projection, shape ``[n_heads]``.

    Layout: an HF ``nn.Linear`` weight is ``[out, in]``. For the output projection (``o_proj``,
    ``out_proj``, BLOOM/NeoX ``dense``, BERT ``attention.output.dense``) the *input* features are
    the concatenated heads, so ``head_axis="in"`` (default) cuts the ``in`` axis (columns) into
    ``n_heads`` contiguous blocks of ``head_dim``; ``head_axis="out"`` cuts the rows instead (q/k/v
    projections, whose outputs are the heads; with GQA pass the number of k/v heads). GPT-2's
    ``Conv1D`` stores ``[in, out]``: pass ``transposed=True`` and keep ``head_axis`` logical.
    Fused qkv weights (BLOOM/NeoX interleave per head) are not split here.
    """
    if weight.dim() != 2:
        raise ValueError(f"head_kurtosis needs a 2-D weight, got shape {tuple(weight.shape)}")
    if head_axis not in ("in", "out"):
        raise ValueError(f"head_axis must be 'in' or 'out', got {head_axis!r}")
    w = weight.T if transposed else weight  # now [out, in]
    axis = 1 if head_axis == "in" else 0
    size = w.shape[axis]
    if n_heads <= 0 or size % n_heads:
        raise ValueError(f"{head_axis} dimension {size} does not split into {n_heads} heads")
    blocks = torch.split(w, size // n_heads, dim=axis)
    return np.array([tensor_stats(block, name=f"head {i}", k=0)["excess_kurtosis"]
                     for i, block in enumerate(blocks)], dtype=np.float64)


# Architectures whose checkpoints store Linear weights as ``[in, out]`` (transformers' Conv1D):
# GPT-2 and mGPT (model_type gpt2).
CONV1D_MODEL_TYPES = frozenset({"gpt2"})


def weight_files(folder: Path | str) -> list[Path]:
    """The safetensors file(s) of a saved model: ``model.safetensors`` or its shards, in order."""
    folder = Path(folder)
    single = folder / "model.safetensors"
    files = [single] if single.is_file() else sorted(folder.glob("model-*-of-*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no model.safetensors (or shards) found")
    return files


def attention_head_count(folder: Path | str) -> tuple[int, bool]:
    """``(query heads, Conv1D layout)`` of a saved model, from its config.

    The key differs by architecture (``n_head`` for BLOOM/GPT-2, ``attention_heads`` for XGLM,
    ``num_attention_heads`` elsewhere); transformers' configs map all of them to
    ``num_attention_heads``. With grouped-query attention (Llama, Qwen2) the output projection's
    inputs are still the query heads, so the query head count is the one that splits them.
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder))
    heads = getattr(config, "num_attention_heads", None)
    if not isinstance(heads, int) or heads < 1:
        raise ValueError(f"{folder}/config.json: no attention head count ({config.model_type}: "
                         "num_attention_heads / n_head / attention_heads)")
    return heads, config.model_type in CONV1D_MODEL_TYPES


def attention_head_kurtosis(folder: Path | str) -> pd.DataFrame:
    """Per-head excess kurtosis of every layer's attention output projection (EXP-034's input).

    Columns: layer, head, excess_kurtosis; rows in file order.
    """
    n_heads, transposed = attention_head_count(folder)
    rows = []
    for path in weight_files(folder):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                layer, component = label_parameter(name)
                if component == "attn_o" and parameter_kind(name) == "weight":
                    weight = handle.get_tensor(name)
                    for head, kurt in enumerate(head_kurtosis(weight, n_heads, transposed=transposed)):
                        rows.append({"layer": layer, "head": head, "excess_kurtosis": kurt})
    return pd.DataFrame(rows)
