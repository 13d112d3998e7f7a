"""Published checkpoints from the Hugging Face hub: access checks and materialization.

The paper profile runs published models through the same stages as the embedded one. The
train_model stage *materializes* a registry entry: it loads the checkpoint at its pinned revision
and saves it with ``save_pretrained`` into ``models/<profile>/final``, so every later stage reads
a local folder exactly as it reads the embedded model. Every check that can fail without a
download (a gated model without a token, CUDA asked for on a machine without it, FLORES+ without
hub access) runs first, in :func:`preflight`, and names the params key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

from qfair.errors import QfairError
from qfair.registry import ModelEntry, StrictModel, models

TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# One file per model (no shards) so the census and activation stages find model.safetensors.
MAX_SHARD_SIZE = "200GB"


class HubModelParams(StrictModel):
    """A published checkpoint from qfair/registry/models.yaml, loaded at its pinned revision."""

    source: Literal["hub"]
    name: str
    revision: str | None = None  # default: the registry's pinned revision
    revision_override: bool = False  # allow a revision the registry does not list
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # of the saved weights
    trust_remote_code: Literal[False] = False

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in models():
            raise ValueError(f"unknown model {name!r}; registered: {sorted(models())}")
        return name

    @model_validator(mode="after")
    def _pinned(self) -> HubModelParams:
        allowed = models()[self.name].allowed_revisions()
        if self.revision is not None and self.revision not in allowed and not self.revision_override:
            raise ValueError(f"revision: {self.revision!r} is not the pinned revision of {self.name!r} "
                             f"(allowed: {allowed}); set revision_override: true to load it anyway")
        return self

    @property
    def resolved_revision(self) -> str:
        return self.revision or models()[self.name].revision


class HubError(QfairError, RuntimeError):
    """A checkpoint or dataset cannot be reached or loaded; the message says which and why."""


def hub_token(env: Mapping[str, str] | None = None) -> str | None:
    """The first non-empty token among HF_TOKEN / HUGGING_FACE_HUB_TOKEN."""
    env = os.environ if env is None else env
    for name in TOKEN_VARIABLES:
        if env.get(name):
            return env[name]
    return None


def offline(env: Mapping[str, str] | None = None) -> bool:
    """HF_HUB_OFFLINE is set: files come from the local cache only (no token needed)."""
    env = os.environ if env is None else env
    return env.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def registry_entry(name: str) -> ModelEntry:
    registry = models()
    if name not in registry:
        raise HubError(f"model.name: unknown model {name!r}; registered: {sorted(registry)}")
    return registry[name]


def model_kind(params) -> str:
    """``causal_lm`` for a model trained here; the registry's kind for a hub model."""
    if getattr(params.model, "source", "train") != "hub":
        return "causal_lm"
    return models()[params.model.name].kind


def preflight(params, *, device: bool = True, model: bool = True, flores: bool = True,
              env: Mapping[str, str] | None = None, cuda_available: bool | None = None) -> None:
    """Stage-start checks that need the machine, not just params.yaml; raise naming the key.

    ``device``: eval.device cuda needs a CUDA device. ``model``: a gated hub model needs a token
    (unless HF_HUB_OFFLINE reads it from the cache). ``flores``: FLORES+ from the hub is gated too
    (unless corpus.flores.data_dir points at a local copy, or HF_HUB_OFFLINE is set).
    """
    problems = []
    if device:
        from qfair.models.load import device_problem

        problem = device_problem(params.eval.device, cuda_available)
        if problem is not None:
            problems.append(f"eval.device: {params.eval.device!r}: {problem}")
    if model and getattr(params.model, "source", "train") == "hub":
        entry = registry_entry(params.model.name)
        if entry.gated and not hub_token(env) and not offline(env):
            problems.append(f"model.name: {params.model.name!r} ({entry.hub_id}) is gated: accept its "
                            f"licence on the hub and set {' or '.join(TOKEN_VARIABLES)} before running")
    if flores and getattr(params.corpus, "source", "kolibri") == "flores":
        spec = params.corpus.flores
        if spec.data_dir is None and not hub_token(env) and not offline(env):
            problems.append(f"corpus.flores: FLORES+ ({spec.dataset}) is a gated hub dataset: accept its "
                            f"terms and set {' or '.join(TOKEN_VARIABLES)}, or set corpus.flores.data_dir "
                            "to a local copy")
    if problems:
        raise HubError("cannot start:\n  " + "\n  ".join(problems))


def _load_error(what: str, hub_id: str, revision: str, error: Exception) -> HubError:
    hint = ("the hub is unreachable or HF_HUB_OFFLINE is set and the cache lacks it"
            if offline() or "connect" in str(error).lower() else "check the id, the revision and access")
    return HubError(f"{what} {hub_id!r} at revision {revision!r} could not be loaded ({hint}): "
                    f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")


def load_hub_model(entry: ModelEntry, revision: str, dtype: str = "auto",
                   cache_dir: Path | str | None = None):
    """The checkpoint as a transformers model (causal or masked LM head, as the registry says),
    through :func:`qfair.models.load.load_model`: safetensors weights only, no remote code."""
    from huggingface_hub.errors import HFValidationError

    from qfair.models.load import load_model

    try:
        return load_model(entry.hub_id, dtype=dtype, revision=revision, kind=entry.kind,
                          cache_dir=cache_dir, token=hub_token())
    except (OSError, ValueError, HFValidationError) as error:
        raise _load_error("model", entry.hub_id, revision, error) from error


def load_hub_tokenizer(entry: ModelEntry, revision: str, cache_dir: Path | str | None = None):
    from huggingface_hub.errors import HFValidationError
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(entry.hub_id, revision=revision, trust_remote_code=False,
                                             cache_dir=cache_dir, token=hub_token())
    except (OSError, ValueError, HFValidationError) as error:
        raise _load_error("tokenizer of", entry.hub_id, revision, error) from error


def materialize_tokenizer(entry: ModelEntry, out_dir: Path | str, revision: str,
                          cache_dir: Path | str | None = None) -> int:
    """Save the checkpoint's tokenizer into ``out_dir``; return its vocabulary size."""
    tokenizer = load_hub_tokenizer(entry, revision, cache_dir)
    tokenizer.save_pretrained(str(out_dir))
    return len(tokenizer)


def materialize_model(entry: ModelEntry, out_dir: Path | str, revision: str, dtype: str = "auto",
                      cache_dir: Path | str | None = None) -> dict:
    """Load ``entry`` at ``revision`` and save model + tokenizer into ``out_dir`` (safetensors).

    Returns provenance for the stage's metrics: hub id, revision, kind, dtype, exact parameters.
    """
    tokenizer = load_hub_tokenizer(entry, revision, cache_dir)
    from qfair.models.load import count_parameters

    model = load_hub_model(entry, revision, dtype, cache_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True, max_shard_size=MAX_SHARD_SIZE)
    tokenizer.save_pretrained(str(out_dir))
    return {"source": "hub", "hub_id": entry.hub_id, "revision": revision, "kind": entry.kind,
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
            "parameters": count_parameters(model)}


def materialize_profile(params, final: Path, checkpoints: Path) -> tuple[ModelEntry, str, dict]:
    """The train_model stage's work for ``model.source: hub``: ``final`` from the hub, and in
    ``checkpoints`` the registry's training-step revisions (Pythia's stepN branches) when the pinned
    revision is used (else it stays empty). Returns the entry, the revision and the provenance."""
    from qfair.io import atomic_dir

    preflight(params, device=False, flores=False)  # a gated model needs its token before any download
    entry, revision = registry_entry(params.model.name), params.model.resolved_revision
    with atomic_dir(final) as tmp:
        info = materialize_model(entry, tmp, revision, params.model.dtype)
    with atomic_dir(checkpoints) as tmp:
        for label in entry.checkpoints if revision == entry.revision else []:
            step = int(label.removeprefix("step"))
            materialize_model(entry, tmp / f"step_{step:06d}", label, params.model.dtype)
    return entry, revision, info
