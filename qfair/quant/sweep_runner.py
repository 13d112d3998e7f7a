"""The compression sweep: every config, every language, one in-memory full-precision model.

A sweep of many configs takes hours on a large model, so each config's rows are kept on disk as
soon as they exist (one file per config, written atomically, in ``partial``): a rerun after an
interruption scores only what is missing. A file is keyed by a fingerprint of everything its rows
depend on (the model's files, the config, the settings, dtype and device, the item texts, the
calibration statistics, the resource shares, the scoring code and library versions), so a partial
of another model or other params is never reused. Rows are stored in JSON, whose floats round-trip
exactly: a resumed sweep returns the very table of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from qfair.analysis.resource import ResourceLevels, resource_levels
from qfair.analysis.sweep import disparity_table, per_language_table, threshold_table
from qfair.io import atomic_path, sha256_file
from qfair.models.linears import target_linears
from qfair.quant.calibration import input_statistics
from qfair.quant.configs import CompressionConfig, check_group_sizes, parse_config
from qfair.quant.methods import Calibration, MethodSettings, SweepContext, WeightSnapshot
from qfair.scoring.causal import model_device, score_items

Texts = dict[str, dict[str, str]]  # language -> item id -> text


@dataclass
class SweepSettings:
    exclude_modules: list[str]
    laaciq_prior: str
    bnb_int8_threshold: float
    batch_tokens: int
    max_tokens: int
    reference_language: str


def calibrate(model: torch.nn.Module, tokenizer, texts: Texts, settings: SweepSettings,
              covariances: bool = False) -> Calibration:
    """Per-language input statistics of every target layer (with ``covariances``: GPTQ's too),
    measured once and shared by every method of the sweep."""
    linears = target_linears(model, settings.exclude_modules)
    languages = sorted(texts)
    stats = [input_statistics(model, linears, tokenizer, list(texts[lang].values()), settings.batch_tokens,
                              settings.max_tokens, covariances)
             for lang in tqdm(languages, desc="calibrate", mininterval=2)]

    def stack(field: str) -> dict[str, torch.Tensor]:
        return {name: torch.stack([getattr(s, field)[name] for s in stats]) for name in linears}

    tokens = torch.tensor([s.count for s in stats], dtype=torch.float64)
    return Calibration(languages, stack("moments"), tokens,
                       stack("covariances") if covariances else None,
                       mean_abs=stack("mean_abs"), absmax=stack("absmax"))


def _dtype_name(model: torch.nn.Module) -> str:
    """The name (qfair.models.load.DTYPES) of the model's floating-point dtype."""
    from qfair.models.load import DTYPES

    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    return next(name for name, value in DTYPES.items() if value == dtype)


def _score(model, tokenizer, texts: Texts, languages: list[str], settings: SweepSettings,
           config: str) -> pd.DataFrame:
    keys = [(lang, item_id) for lang in languages for item_id in texts[lang]]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*inputs will be cast.*")  # bnb int8 on CPU
        scores = score_items(model, tokenizer, [texts[lang][i] for lang, i in keys],
                             settings.batch_tokens, settings.max_tokens)
    frame = pd.DataFrame(keys, columns=["language", "item_id"])
    frame.insert(0, "config", config)
    frame["nll"], frame["n_tokens"], frame["n_bytes"] = scores.nll, scores.n_tokens, scores.n_bytes
    return frame


PARTIAL_FORMAT = 1  # bump when the partial file layout changes
LIBRARIES = ("torch", "transformers", "bitsandbytes", "numpy", "safetensors", "tokenizers")


def _tensor_digest(digest: hashlib._Hash, tensor: torch.Tensor) -> None:
    data = tensor.detach().cpu().contiguous()
    digest.update(f"{data.dtype}{tuple(data.shape)}".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())


def _code_files() -> list[Path]:
    """The source files that compute a config's rows (quantizers, loaders, scoring)."""
    import qfair.models.load
    import qfair.scoring.causal

    quant = Path(__file__).parent  # the methods' package (qfair/quant/methods) included
    return [*sorted(quant.rglob("*.py")), Path(qfair.scoring.causal.__file__),
            Path(qfair.models.load.__file__)]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def sweep_fingerprint(model_path: Path, dtype: str, device: str, texts: Texts,
                      calibration: Calibration, resource_share: dict[str, float],
                      settings: SweepSettings) -> str:
    """sha256 of everything, except the config, that a config's rows depend on."""
    digest = hashlib.sha256()
    model_path = Path(model_path)
    files = {str(f.relative_to(model_path)): sha256_file(f)
             for f in sorted(model_path.rglob("*")) if f.is_file()}
    package = Path(__file__).parents[1]
    code = {f.relative_to(package).as_posix(): sha256_file(f) for f in _code_files()}
    header = {"format": PARTIAL_FORMAT, "model_files": files, "dtype": dtype, "device": device,
              "settings": dataclasses.asdict(settings), "texts": texts,
              "resource_share": resource_share, "code": code,
              "libraries": {name: _version(name) for name in LIBRARIES},
              "calibration_languages": calibration.languages}
    digest.update(json.dumps(header, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    for field in ("moments", "mean_abs", "absmax"):
        for name in sorted(getattr(calibration, field) or {}):
            digest.update(f"{field}:{name}".encode())
            _tensor_digest(digest, getattr(calibration, field)[name])
    _tensor_digest(digest, calibration.tokens)
    return digest.hexdigest()


class PartialResults:
    """One JSON file per config in ``folder``, named ``<config>.<fingerprint[:16]>.json``."""

    def __init__(self, folder: Path, base: str) -> None:
        self.folder, self.base = Path(folder), base

    def key(self, config: str) -> str:
        return hashlib.sha256(f"{self.base}\0{config}".encode()).hexdigest()

    def path(self, config: str) -> Path:
        return self.folder / f"{config}.{self.key(config)[:16]}.json"

    def load(self, config: str) -> list[pd.DataFrame] | None:
        """The stored frames of ``config``, if stored under this exact fingerprint."""
        path = self.path(config)
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:  # cannot happen with atomic writes, but never trust
            warnings.warn(f"{path}: unreadable partial result ({error}); scoring {config} again",
                          stacklevel=2)
            return None
        if stored.get("fingerprint") != self.key(config):
            return None
        return [pd.DataFrame({column: pd.Series(values, dtype=stored["dtypes"][column])
                              for column, values in frame.items()}) for frame in stored["frames"]]

    def save(self, config: str, frames: list[pd.DataFrame]) -> None:
        """Store ``frames`` atomically; files of this config under other fingerprints are stale."""
        pattern = re.compile(rf"{re.escape(config)}\.[0-9a-f]{{16}}\.json")
        for old in self.folder.glob(f"{config}.*.json") if self.folder.is_dir() else []:
            if pattern.fullmatch(old.name) and old != self.path(config):
                old.unlink(missing_ok=True)
        stored = {"fingerprint": self.key(config), "config": config,
                  "dtypes": {column: str(dtype) for column, dtype in frames[0].dtypes.items()},
                  "frames": [{column: frame[column].tolist() for column in frame.columns}
                             for frame in frames]}
        with atomic_path(self.path(config)) as tmp:
            # json writes floats as their shortest repr, which reads back bit-identical.
            tmp.write_text(json.dumps(stored, ensure_ascii=False), encoding="utf-8")


def clear_partial(folder: Path) -> None:
    """Remove the per-config results once the sweep's outputs are written."""
    shutil.rmtree(folder, ignore_errors=True)


def run_sweep(model: torch.nn.Module, model_path: Path, tokenizer, configs: list[CompressionConfig],
              texts: Texts, calibration: Calibration, resource_share: dict[str, float],
              settings: SweepSettings, partial: Path | None = None) -> pd.DataFrame:
    """Per-item NLL of the full-precision model (config ``fp``) and of every config.

    Each config runs through its method's ``run`` (qfair.quant.methods): fake-quant methods rewrite
    the weights in place and the snapshot undoes it afterwards; the oracle quantizes once per
    language and scores only it; bitsandbytes loads a quantized copy on the model's device and dtype.
    With ``partial`` (a folder), each config's rows are stored there as they are scored, and a
    config already stored under the same fingerprint is read back instead of scored again.
    """
    device, dtype = model_device(model), _dtype_name(model)
    languages = sorted(texts)
    store = None
    if partial is not None:
        store = PartialResults(partial, sweep_fingerprint(
            model_path, dtype, device.type, texts, calibration, resource_share, settings))
    snapshot = WeightSnapshot(target_linears(model, settings.exclude_modules))
    sweep = SweepContext(
        model=model, model_path=model_path, snapshot=snapshot, calibration=calibration,
        settings=MethodSettings(settings.laaciq_prior, settings.reference_language, resource_share),
        languages=languages,
        score=lambda scored, langs, name: _score(scored, tokenizer, texts, langs, settings, name),
        exclude_modules=settings.exclude_modules, bnb_int8_threshold=settings.bnb_int8_threshold,
        device=device, dtype=dtype)

    def score_config(config: CompressionConfig | None) -> list[pd.DataFrame]:
        if config is None:
            return [_score(model, tokenizer, texts, languages, settings, "fp")]
        return config.run(sweep)

    frames: list[pd.DataFrame] = []
    resumed = 0
    bar = tqdm([None, *configs], desc="sweep", mininterval=1)
    for config in bar:
        name = "fp" if config is None else config.name
        stored = store.load(name) if store is not None else None
        if stored is not None:
            frames.extend(stored)
            resumed += 1
            bar.set_postfix(resumed=resumed)
            continue
        try:
            result = score_config(config)
        finally:
            snapshot.restore()
        if store is not None:
            store.save(name, result)
        frames.extend(result)
    return pd.concat(frames, ignore_index=True)


def seeded_subset(per_language: Texts, count: int | str, seed: int) -> Texts:
    """The same ``count`` item ids in every language (the split is parallel); "all": every item."""
    if count == "all":
        return per_language
    ids = sorted(next(iter(per_language.values())))
    rng = np.random.default_rng(seed)
    chosen = sorted(ids[i] for i in rng.choice(len(ids), size=min(count, len(ids)), replace=False))
    return {lang: {i: items[i] for i in chosen} for lang, items in per_language.items()}


def layer_input_widths(path: Path, exclude: list[str]) -> set[int]:
    """Input widths of the layers to compress, from the config alone (no weights loaded)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(path)))
    return {lin.in_features for lin in target_linears(skeleton, exclude).values()}


def check_sweepable(kind: str, model_name: str, configs: list[CompressionConfig],
                    levels: ResourceLevels) -> dict[str, float]:
    """Refuse what the sweep cannot do, before any model is loaded; return LA-ACIQ's shares."""
    if kind == "masked_lm":
        raise ValueError(f"model.name: {model_name!r} is a masked LM; the compression sweep scores "
                         "causal likelihoods only (evaluate it with the evaluate stage, which uses "
                         "pseudo-log-likelihood), or pick a causal_lm from qfair/registry/models.yaml")
    resource = [c.name for c in configs if c.needs_resource_shares]
    if resource and not levels.complete:
        levels.require_shares(levels.languages, f"compress.configs {resource} (LA-ACIQ resource weighting)")
    return {lang: levels.share[lang] for lang in levels.languages if lang in levels.share}


@dataclass
class SweepRun:
    """A finished sweep: per-item rows of every config, and what they were computed on."""

    items: pd.DataFrame
    configs: list[CompressionConfig]
    texts: Texts
    levels: ResourceLevels
    seconds: float  # calibration and scoring, model loading included


def compress_sweep(params, corpus: Path, model_dir: Path, partial: Path | None = None) -> SweepRun:
    """The compress_sweep stage's work: checks first (no model loaded), then calibrate and sweep.

    Resource levels come from the corpus manifest (embedded) or the hub model's published
    pretraining shares (paper); a ``laaciq-resource`` config needs every language's share and a
    masked LM is refused (the sweep scores causal likelihoods only).
    """
    from transformers import AutoTokenizer

    from qfair.corpus.store import read_manifest, read_split
    from qfair.determinism import deterministic_cpu
    from qfair.models.hub import model_kind, preflight
    from qfair.models.load import load_model

    cp = params.compress
    configs = [parse_config(name) for name in cp.configs]
    preflight(params, model=False, flores=False)  # eval.device: cuda on a machine without CUDA
    levels = resource_levels(params, read_manifest(corpus)["languages"])
    share = check_sweepable(model_kind(params), getattr(params.model, "name", "bloom"), configs, levels)
    check_group_sizes(configs, layer_input_widths(model_dir, cp.exclude_modules))
    deterministic_cpu(params.train.threads)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = load_model(model_dir, dtype=params.eval.dtype, device=params.eval.device)
    texts = seeded_subset(read_split(corpus, "test"), cp.items_per_language, cp.seed)
    calibration_texts = seeded_subset(read_split(corpus, "dev"), cp.calibration_items, cp.seed)
    settings = SweepSettings(cp.exclude_modules, cp.laaciq_prior, cp.bnb_int8_threshold,
                             params.eval.batch_tokens, params.eval.max_tokens,
                             params.corpus.reference_language)
    calibration = calibrate(model, tokenizer, calibration_texts, settings,
                            covariances=any(c.needs_covariances for c in configs))
    items = run_sweep(model, model_dir, tokenizer, configs, texts, calibration, share, settings,
                      partial=partial)
    return SweepRun(items, configs, texts, levels, time.perf_counter() - started)


RTN_CHANNEL = r"rtn-w\d-ch-sym$"  # the plot series: symmetric per-channel RTN across bit widths


def sweep_tables(run: SweepRun, resamples: int, confidence: float, seed: int, method: str,
                 tau: float) -> dict[str, pd.DataFrame]:
    """The sweep's tables, keyed by file stem: per_language, disparity, threshold_bits, and the
    plot series disparity_vs_bits and degradation_vs_bits (per-channel symmetric RTN)."""
    languages = sorted(run.texts)
    ci = dict(resamples=resamples, confidence=confidence, seed=seed, method=method)
    # NaN: a language without a resource level (an empty cell; left out of the terciles).
    level = {lang: run.levels.level_or_nan(lang) for lang in languages}
    per_language = per_language_table(run.items, run.configs, languages, level, **ci)
    disparity = disparity_table(run.items, run.configs, languages, level, **ci)
    channel = per_language[per_language["config"].str.match(RTN_CHANNEL)]
    return {
        "per_language": per_language, "disparity": disparity,
        "threshold_bits": threshold_table(per_language, tau),
        "disparity_vs_bits": disparity[disparity["config"].str.match(RTN_CHANNEL)][
            ["bits", "range", "worst", "mean"]],
        "degradation_vs_bits": channel[["language", "bits", "rel_degradation", "rel_degradation_ci_low",
                                          "rel_degradation_ci_high"]],
    }


def sweep_metrics(run: SweepRun, disparity: pd.DataFrame) -> dict:
    """metrics/sweep.json: sizes, each config's disparity, and the resource-level source if partial."""
    metrics = {
        "languages": len(run.texts), "items_per_language": len(next(iter(run.texts.values()))),
        "configs": len(run.configs),
        "disparity": {row["config"]: {k: round(row[k], 6) for k in ("range", "worst", "mean")}
                      for _, row in disparity.iterrows()},
    }
    if not run.levels.complete:
        metrics["resource_level"] = run.levels.describe()
    return metrics
