"""The controlled-training family's design (EXP-001c, EXP-023, EXP-025): which runs, with what.

``controlled/params.yaml`` is validated by :class:`FamilySpec` before any work. The share runs
(EXP-001c) form a Latin square: the target languages are split into as many groups as there are
share levels, and in rotation ``r`` group ``g`` trains at level ``(g + r) mod k``. Every run
therefore holds each level exactly ``len(group)`` times, so its total training bytes and the
shares of every non-target language are the same in every run (:func:`latin_square_shares`;
property-tested in tests/test_controlled.py). Each rotation is trained once per seed.

The model runs (EXP-023, EXP-025) train the base corpus (the scale profile's mix, unchanged) at
several sizes, with and without dropout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from qfair.errors import QfairError
from qfair.registry import StrictModel as Strict


class FamilyError(QfairError, ValueError):
    """controlled/params.yaml is malformed, or a run cannot be built; the message names the field."""


class Architecture(Strict):
    hidden_size: int = Field(ge=8, le=8192)
    n_layer: int = Field(ge=1, le=96)
    n_head: int = Field(ge=1, le=128)
    gpu_memory_gb: float = Field(gt=0)  # measured peak of one run (the scheduler's unit)


class ShareDesign(Strict):
    """EXP-001c: target languages at share levels (fractions of the run's training bytes)."""

    groups: list[list[str]] = Field(min_length=2)
    levels: list[float] = Field(min_length=2)
    seeds: list[int] = Field(min_length=2)
    size: str  # a key of FamilySpec.sizes
    dropout: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _square(self) -> ShareDesign:
        if len(self.groups) != len(self.levels):
            raise ValueError(f"shares.groups: a Latin square needs one group per level "
                             f"({len(self.levels)} levels, {len(self.groups)} groups)")
        if len({len(group) for group in self.groups}) != 1 or not self.groups[0]:
            raise ValueError("shares.groups: every group must hold the same number (>= 1) of languages")
        flat = [lang for group in self.groups for lang in group]
        if len(set(flat)) != len(flat):
            raise ValueError(f"shares.groups: a language is in two groups: {flat}")
        if any(not 0 < level < 1 for level in self.levels) or sorted(set(self.levels)) != self.levels:
            raise ValueError(f"shares.levels: increasing fractions in (0, 1), got {self.levels}")
        if len(self.groups[0]) * sum(self.levels) >= 1:
            raise ValueError("shares.levels: the target languages would take the whole training mix")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"shares.seeds: repeated seed in {self.seeds}")
        return self

    @property
    def targets(self) -> list[str]:
        return [lang for group in self.groups for lang in group]


class ModelRun(Strict):
    """EXP-023/EXP-025: the base corpus at one size and dropout, one seed each."""

    size: str
    dropout: float = Field(ge=0, lt=1)
    seeds: list[int] = Field(min_length=1)


class Hypothesis(Strict):
    """A pre-registered rule: SUPPORTED when the estimate's whole CI lies beyond ``threshold`` in
    ``direction``, REJECTED when the CI lies on the other side, INCONCLUSIVE otherwise."""

    id: str
    statement: str
    estimate: str  # a name of qfair.controlled.analysis.ESTIMATES
    direction: str = Field(pattern="^(less|greater)$")
    threshold: float = 0.0


class FamilySpec(Strict):
    base_params: str  # the scale profile's params, relative to controlled/
    workers: int = Field(ge=1, le=32)  # runs trained at once on the one GPU, at most
    gpu_memory_gb: float = Field(gt=0)  # what the runs going at once may use together
    sizes: dict[str, Architecture] = Field(min_length=1)
    # Section-wise overrides of the base params (train, eval, compress, ...), validated with each
    # run's params by the pipeline's schema.
    overrides: dict[str, dict] = Field(default_factory=dict)
    configs: list[str] = Field(min_length=1)  # compression configs of every run
    shares: ShareDesign
    models: list[ModelRun] = Field(min_length=1)
    bootstrap_resamples: int = Field(ge=100, le=100_000)
    confidence: float = Field(gt=0.5, lt=1)
    seed: int
    hypotheses: list[Hypothesis]
    # The runs whose results are committed (dvc.yaml's foreach makes each a frozen stage); the
    # design's other runs are pending: the analysis names them and gives no verdict that needs them.
    runs: list[str]

    @model_validator(mode="after")
    def _consistent(self) -> FamilySpec:
        for where, size in [("shares.size", self.shares.size),
                            *((f"models[{i}].size", m.size) for i, m in enumerate(self.models))]:
            if size not in self.sizes:
                raise ValueError(f"{where}: unknown size {size!r} (sizes: {sorted(self.sizes)})")
        designed = [plan.name for plan in run_plans(self)]
        unknown = [name for name in self.runs if name not in designed]
        if unknown or len(set(self.runs)) != len(self.runs):
            raise ValueError(f"runs: {unknown or 'a repeated name'} (the design's runs are {designed})")
        return self


@dataclass(frozen=True)
class RunPlan:
    """One training run: its name, seed, architecture and (share runs) target shares."""

    name: str
    kind: str  # "share" (EXP-001c) or "model" (EXP-023/EXP-025)
    seed: int
    size: str
    architecture: Architecture
    dropout: float
    rotation: int | None = None
    target_shares: dict[str, float] | None = None  # None: the base corpus' mix unchanged


def latin_square_shares(groups: list[list[str]], levels: list[float], rotation: int) -> dict[str, float]:
    """Each target language's share in rotation ``rotation``: group g at level (g + rotation) mod k."""
    k = len(levels)
    return {lang: levels[(g + rotation) % k] for g, group in enumerate(groups) for lang in group}


def run_plans(spec: FamilySpec) -> list[RunPlan]:
    """Every run of the family, share runs first, in a stable order."""
    shares = spec.shares
    plans = [RunPlan(name=f"share-r{rotation}-seed{seed}", kind="share", seed=seed, size=shares.size,
                     architecture=spec.sizes[shares.size], dropout=shares.dropout, rotation=rotation,
                     target_shares=latin_square_shares(shares.groups, shares.levels, rotation))
             for seed in shares.seeds for rotation in range(len(shares.levels))]
    for model in spec.models:
        tag = f"drop{round(model.dropout * 100):02d}"
        plans += [RunPlan(name=f"model-{model.size}-{tag}-seed{seed}", kind="model", seed=seed,
                          size=model.size, architecture=spec.sizes[model.size], dropout=model.dropout)
                  for seed in model.seeds]
    return plans


def load_spec(path: Path | str) -> FamilySpec:
    """Read and validate controlled/params.yaml; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FamilyError(f"{path}: file not found")
    try:
        return FamilySpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}"
                             for e in error.errors())
        raise FamilyError(f"{path}: {problems}") from None
