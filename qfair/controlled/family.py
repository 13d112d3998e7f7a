"""Build and run the controlled-training family: one folder per run under ``controlled/runs/``.

Each run folder is laid out like the repository root (``params.yaml``, ``data/corpus``,
``models/tokenizer``), so the pipeline's own stage scripts train, evaluate, compress and profile it
(:func:`qfair.scale.run_stages`, as the scale run does); nothing here re-implements a stage.
What differs between runs is only what the design says: the target languages' training text (a
seeded, nested subsample of their pools: a smaller share's text is inside every larger one's), the
seed, the size, the dropout.

The parts and where they run:
- :func:`prepare_pools` (CPU, once): the target languages' whole training pools, built by the
  scale corpus' own code with the scale split, so no dev or test verse can enter a pool;
- :func:`build_run` (anywhere): a run's corpus and params from the scale corpus and the pools;
- :func:`run_family` (the GPU): every run's stages, ``workers`` runs at once on the one GPU.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import yaml

from qfair.controlled.design import FamilyError, FamilySpec, RunPlan, run_plans
from qfair.io import read_json, read_jsonl, sha256_text, write_json, write_jsonl, write_text

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "controlled"
RUN_STAGES = ("train_model", "evaluate", "compress_sweep", "weight_census", "activation_profile")
# A run's small results, versioned in git (controlled/dvc.yaml); paths relative to its folder.
DONE = "results/done.json"  # written last: the run's params hash; what complete() trusts
RUN_OUTPUTS = (
    "params.yaml", DONE, "data/corpus/manifest.json", "metrics/train.json", "metrics/train/dev_loss.csv",
    "metrics/eval.json",
    "metrics/sweep.json",
    "results/eval/per_language.csv", "results/sweep/per_language.csv", "results/census/tensors.csv",
    "results/activations/input_outliers_languages.csv",
    "results/timings",
)


def base_params(spec: FamilySpec, folder: Path = FOLDER) -> dict:
    """The scale profile's params (the family's base), as a mapping."""
    path = (folder / spec.base_params).resolve()
    if not path.is_file():
        raise FamilyError(f"{folder / 'params.yaml'}: base_params {spec.base_params!r}: {path} not found")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def run_params(spec: FamilySpec, plan: RunPlan, base: dict) -> dict:
    """A run's params.yaml: the base with the run's seed, architecture, training and configs.

    Evaluation scores the test split only (the runs' outputs are per-language test degradation);
    the cost pass, the hypotheses and the interpretability stage belong to the base profile.
    """
    from qfair.params import parse_params

    params = json.loads(json.dumps(base))  # a deep copy
    params["seed"] = plan.seed
    architecture = plan.architecture.model_dump(exclude={"gpu_memory_gb"})
    params["model"] = {**params["model"], **architecture, "dropout": plan.dropout}
    params["eval"] = {**params["eval"], "splits": ["test"],
                      "cost": {**params["eval"]["cost"], "enabled": False}}
    params["compress"] = {**params["compress"], "configs": list(spec.configs)}
    for section, values in spec.overrides.items():
        if section not in params or not isinstance(params[section], dict):
            raise FamilyError(f"overrides.{section}: not a section of {spec.base_params}")
        params[section] = {**params[section], **values}
    params["hypotheses"] = []
    params["analysis"] = {**params["analysis"], "holm_family": []}
    parse_params(params, f"controlled run {plan.name} (controlled/params.yaml over {spec.base_params})")
    return params


def prepare_pools(spec: FamilySpec, target: Path, folder: Path = FOLDER) -> dict[str, int]:
    """The target languages' whole training pools, written to ``target`` (one .jsonl each).

    The scale corpus is rebuilt with every language's floor at the top language's bytes, so each
    pool is kept whole (or cut to the top language's size); the languages, split seed and sources
    are the scale profile's, so dev and test are the same verses. Both are checked against the
    prepared scale corpus the runs evaluate on: the same dev/test ids, none of them in a pool.
    """
    from qfair.corpus.build import build_corpus
    from qfair.corpus.store import read_split
    from qfair.params import CorpusParams

    scale_corpus = (folder / spec.base_params).resolve().parent / "data" / "corpus"
    evaluated = {split: read_split(scale_corpus, split) for split in ("dev", "test")}

    corpus_params = dict(base_params(spec, folder)["corpus"])
    share = json.loads(json.dumps(corpus_params["training_share"]))
    share["published"]["floor_fraction"] = 1.0
    corpus_params["training_share"] = share
    corpus, _ = build_corpus(CorpusParams.model_validate(corpus_params))
    for split, per_language in evaluated.items():
        if {lang: set(items) for lang, items in per_language.items()} != \
                {lang: set(items) for lang, items in corpus.splits[split].items()}:
            raise FamilyError(f"the rebuilt corpus' {split} split differs from {scale_corpus / split}; "
                              "prepare the scale corpus again with this code")
    held_out = {key for per_language in evaluated.values()
                for items in per_language.values() for key in items}
    sizes = {}
    for lang in spec.shares.targets:
        pool = corpus.splits["train"][lang]
        if held_out & set(pool):
            raise FamilyError(f"pool of {lang} holds dev/test items; the split is broken")
        write_jsonl(target / f"{lang}.jsonl", [{"id": k, "text": v} for k, v in pool.items()])
        sizes[lang] = sum(len(text.encode("utf-8")) for text in pool.values())
    return sizes


def run_corpus(plan: RunPlan, base_corpus: Path, pools: Path, seed: int):
    """A run's corpus: the base corpus' splits, each target language's training text replaced by a
    seeded subsample of its pool holding its share of the run's training bytes.

    The non-target languages keep their base bytes ``N``; the run's total is ``N / (1 - S)`` with
    ``S`` the sum of the target shares (the same in every rotation of the square).
    """
    from qfair.corpus.build import Corpus, subsample_bytes, utf8_bytes
    from qfair.corpus.languages import resolve_languages
    from qfair.corpus.store import read_manifest, read_split

    manifest = read_manifest(base_corpus)
    splits = {split: read_split(base_corpus, split) for split in ("train", "dev", "test")}
    languages = resolve_languages(list(manifest["languages"]))
    allocation = {loc: entry.get("allocation", {}) for loc, entry in manifest["languages"].items()}
    if plan.target_shares:
        missing = [lang for lang in plan.target_shares if lang not in splits["train"]]
        if missing:
            raise FamilyError(f"shares.groups: {missing} are not languages of the base corpus")
        others = sum(utf8_bytes(items) for loc, items in splits["train"].items()
                     if loc not in plan.target_shares)
        total = others / (1 - sum(plan.target_shares.values()))
        order = sorted(manifest["languages"])
        for lang, share in plan.target_shares.items():
            path = pools / f"{lang}.jsonl"
            if not path.is_file():
                raise FamilyError(f"{path} not found: run `python -m qfair.controlled prepare` first")
            pool = {row["id"]: row["text"] for row in read_jsonl(path)}
            wanted = share * total
            if wanted > utf8_bytes(pool):
                raise FamilyError(f"shares.levels: {lang} needs {wanted:,.0f} bytes, its pool holds "
                                  f"{utf8_bytes(pool):,}")
            # the seed depends on the language only: a smaller share's text is inside a larger one's
            splits["train"][lang] = subsample_bytes(pool, wanted, seed + order.index(lang))
            allocation[lang] = {"share": share, "mode": "controlled", "target_bytes": round(wanted),
                                "pool_bytes": utf8_bytes(pool), "rotation": plan.rotation}
    return Corpus(languages=languages, splits=splits, allocation=allocation), manifest["sources"]


def build_run(spec: FamilySpec, plan: RunPlan, params: dict, scale_folder: Path, pools: Path,
              folder: Path) -> None:
    """A ready-to-run folder: params.yaml, data/corpus and models/tokenizer (the scale tokenizer)."""
    from qfair.corpus.build import write_corpus

    write_text(folder / "params.yaml", params_text(params))
    corpus, sources = run_corpus(plan, scale_folder / "data" / "corpus", pools, spec.seed)
    if (folder / "data" / "corpus").exists():
        shutil.rmtree(folder / "data" / "corpus")
    write_corpus(corpus, sources, folder / "data" / "corpus")
    tokenizer = folder / "models" / "tokenizer"
    if tokenizer.exists():
        shutil.rmtree(tokenizer)
    shutil.copytree(scale_folder / "models" / "tokenizer", tokenizer)


def params_sha256(folder: Path) -> str:
    return sha256_text((folder / "params.yaml").read_text(encoding="utf-8"))


def run_one(plan: RunPlan, folder: Path) -> dict[str, float]:
    """Every stage of one run in its folder (each stage's output in ``folder/run.log``), then the
    done marker. Results of an earlier attempt are removed first, so a failed rerun leaves none."""
    for name in RUN_OUTPUTS:
        if name in ("params.yaml", "data/corpus/manifest.json"):
            continue  # build_run has just written them
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    from qfair.scale import run_stages

    with open(folder / "run.log", "a", encoding="utf-8") as log:
        seconds = run_stages(list(RUN_STAGES), folder, log=log)
    write_json(folder / DONE, {"run": plan.name, "params_sha256": params_sha256(folder), "seconds": seconds})
    return seconds


def complete(folder: Path, params: dict | None = None) -> bool:
    """Whether a run folder holds a finished run: every committed output and a done marker whose
    params hash is its params.yaml's (and, given ``params``, the run's expected params)."""
    if not all((folder / name).exists() for name in RUN_OUTPUTS):
        return False
    stages_timed = {path.stem for path in (folder / "results" / "timings").glob("*.json")}
    sha = params_sha256(folder)
    expected = sha256_text(params_text(params)) if params is not None else sha
    return set(RUN_STAGES) <= stages_timed and read_json(folder / DONE)["params_sha256"] == sha == expected


def params_text(params: dict) -> str:
    """A run's params.yaml as written (one serialisation, so its hash identifies the settings)."""
    return yaml.safe_dump(params, sort_keys=False)


class MemoryBudget:
    """GPU memory shared by the worker threads: a run starts only when its measured need fits
    beside the runs already going (OOM killed 11 of 19 runs when six started at once)."""

    def __init__(self, total_gb: float) -> None:
        self.total, self.used = total_gb, 0.0
        self.condition = threading.Condition()

    @contextmanager
    def hold(self, need_gb: float) -> Iterator[None]:
        if need_gb > self.total:
            raise FamilyError(f"a run needs {need_gb} GB, more than gpu_memory_gb {self.total}")
        with self.condition:
            self.condition.wait_for(lambda: self.used + need_gb <= self.total)
            self.used += need_gb
        try:
            yield
        finally:
            with self.condition:
                self.used -= need_gb
                self.condition.notify_all()


def run_family(spec: FamilySpec, names: list[str] | None, workers: int, folder: Path = FOLDER,
               scale_folder: Path | None = None, force: bool = False) -> dict[str, str]:
    """Build and run the named runs (all by default), ``workers`` at a time; the biggest first.

    A run whose results are complete (:func:`complete`) is skipped unless ``force``, so a session
    that ran out of GPU time resumes with the missing runs. Returns each run's outcome ("ok",
    "skipped: complete" or the error); a failed run does not stop the others.
    """
    plans = [plan for plan in run_plans(spec) if names is None or plan.name in names]
    unknown = sorted(set(names or []) - {plan.name for plan in plans})
    if unknown:
        raise FamilyError(f"unknown run(s) {unknown}; controlled/params.yaml runs: {spec.runs}")
    base = base_params(spec, folder)
    scale_folder = scale_folder or (folder / spec.base_params).resolve().parent
    plans.sort(key=lambda p: -(p.architecture.hidden_size ** 2 * p.architecture.n_layer))
    budget = MemoryBudget(spec.gpu_memory_gb)

    def one(plan: RunPlan) -> str:
        run_folder = folder / "runs" / plan.name
        params = run_params(spec, plan, base)
        if not force and complete(run_folder, params):
            print(f"== controlled: {plan.name} skipped: its results are complete", flush=True)
            return "skipped: complete"
        need = spec.sizes[plan.size].gpu_memory_gb
        try:
            with budget.hold(need):
                build_run(spec, plan, params, scale_folder, folder / "data" / "pools", run_folder)
                seconds = run_one(plan, run_folder)
        except Exception as error:  # reported per run; the others go on
            print(f"== controlled: {plan.name} FAILED: {error}", flush=True)
            return f"{type(error).__name__}: {error}"
        print(f"== controlled: {plan.name} done in {sum(seconds.values()):.0f} s {seconds}", flush=True)
        return "ok"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = dict(zip([p.name for p in plans], pool.map(one, plans), strict=True))
    return outcomes


def pack(target: Path, folder: Path = FOLDER) -> list[str]:
    """Every complete run's small results, and every run's log, as one .tar.gz (what the GPU
    machine sends back)."""
    from qfair.scale import pack_files

    runs = sorted((folder / "runs").glob("*"))
    names = [f"runs/{run.name}/{name}" for run in runs if complete(run) for name in RUN_OUTPUTS]
    names += [f"runs/{run.name}/run.log" for run in runs if (run / "run.log").exists()]
    return pack_files(target, folder, names)
