"""Model construction and loading.

:func:`load_model` is the one way qfair loads a model (a causal LM, or a masked LM for
pseudo-log-likelihood scoring): a local directory or a hub id take the same ``from_pretrained``
path, weights only from safetensors, remote code only when asked.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    BloomConfig,
    BloomForCausalLM,
    PreTrainedModel,
)

from qfair.errors import QfairError

REBUILD = "rebuild it with `dvc repro -f train_model`"


class DamagedModelError(QfairError, OSError):
    """A saved model's weights file does not load (truncated, overwritten); names file and fix."""


def check_weights(folder: Path, fix: str = REBUILD) -> None:
    """Open every safetensors file of ``folder`` (its header and size: cheap, nothing is read).

    A truncated file fails here with its path, rather than deep inside ``from_pretrained`` with a
    ``SafetensorError`` that names no file.
    """
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise DamagedModelError(f"{path}: the weights do not load ({error}); the file is "
                                    f"truncated or damaged: {fix}") from None


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# The registry's model kinds (qfair/registry/models.yaml) and the transformers class that loads each.
AUTO_CLASSES = {"causal_lm": AutoModelForCausalLM, "masked_lm": AutoModelForMaskedLM}


def build_bloom(vocab_size: int, hidden_size: int, n_layer: int, n_head: int, dropout: float,
                bos_token_id: int, eos_token_id: int, pad_token_id: int, seed: int) -> BloomForCausalLM:
    """A freshly initialised BLOOM-architecture causal LM (seeded)."""
    config = BloomConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, n_layer=n_layer, n_head=n_head,
        hidden_dropout=dropout, attention_dropout=dropout, bos_token_id=bos_token_id,
        eos_token_id=eos_token_id, pad_token_id=pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return BloomForCausalLM(config)


def load_model(name_or_path: str | Path, dtype: str = "float32", device: str = "cpu",
               revision: str | None = None, trust_remote_code: bool = False,
               attn_implementation: str | None = None, device_map: str | dict | None = None,
               kind: str = "causal_lm", **kwargs: object) -> PreTrainedModel:
    """Load a causal LM from a local directory or a hub id, in eval mode.

    ``dtype`` is one of float32/bfloat16/float16, or "auto" (the checkpoint's stored dtype);
    ``revision`` pins a hub commit or tag; ``kind`` is "causal_lm" or "masked_lm".
    ``attn_implementation`` ("sdpa", "eager", ...; None: transformers' default, SDPA where the
    architecture supports it; BLOOM supports eager only) and ``device_map`` (e.g. "auto": accelerate
    spreads a model too large for one GPU over all visible GPUs, then CPU) go to
    ``from_pretrained``, as do extra keyword arguments (``quantization_config``).
    """
    if dtype not in DTYPES and dtype != "auto":
        raise ValueError(f"dtype: unknown {dtype!r}; choose one of {sorted(DTYPES)} or 'auto'")
    if kind not in AUTO_CLASSES:
        raise ValueError(f"kind: unknown {kind!r}; choose one of {sorted(AUTO_CLASSES)}")
    check_device(device)
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if device_map is not None:
        kwargs["device_map"] = device_map
    local = Path(name_or_path)
    if local.exists() and not (local / "config.json").is_file():
        raise FileNotFoundError(f"{local}: no config.json, not a saved model directory")
    if local.is_dir():
        check_weights(local)
    model = AUTO_CLASSES[kind].from_pretrained(
        str(name_or_path), revision=revision, dtype=DTYPES.get(dtype, dtype), use_safetensors=True,
        trust_remote_code=trust_remote_code, **kwargs,
    )
    if "device_map" not in kwargs and "quantization_config" not in kwargs:
        model = model.to(device)
    return model.eval()


def device_problem(device: str | torch.device, cuda_available: bool | None = None) -> str | None:
    """Why this machine cannot run on ``device`` (None if it can): the one device check of qfair.

    ``cuda_available`` overrides ``torch.cuda.is_available()`` (tests).
    """
    target = torch.device(device)
    if target.type != "cuda":
        return None
    if not (torch.cuda.is_available() if cuda_available is None else cuda_available):
        return ("CUDA is not available on this machine (torch.cuda.is_available() is False); "
                "use device 'cpu' or run on a GPU machine")
    if target.index is not None and target.index >= torch.cuda.device_count():
        return f"only {torch.cuda.device_count()} CUDA device(s) visible"
    return None


def check_device(device: str | torch.device) -> None:
    """A device this machine has: a CUDA device without CUDA is an error naming it, before any work."""
    problem = device_problem(device)
    if problem is not None:
        raise ValueError(f"device {str(device)!r}: {problem}")


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
