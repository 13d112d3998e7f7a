"""The paper profile (hub model + FLORES+) through the DVC stages, on fixtures the test writes.

The slow end-to-end test runs ``dvc repro mechanisms snapshot`` in a temporary copy of the
repository with the paper profile cut to six FLORES+ languages. The "hub" is a fake Hugging Face
cache (read with HF_HUB_OFFLINE=1) holding a tiny config-built BLOOM under the registry's
``bloom-560m`` id and pinned revision. FLORES+ is a local parquet copy of invented sentences
(``corpus.flores.data_dir``). It then runs ``dvc repro report`` (and ``paper`` when TeX is
installed): the numbers this profile does not produce read "n/a" and the PDF builds. The fast
tests above it cover the pieces: resource levels from published shares, head counts across
architectures, the snapshot of a hub model and the ledger with languages that lack a resource level.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from qfair.analysis.census import attention_head_count, attention_head_kurtosis
from qfair.analysis.ledger import evaluate_ledger
from qfair.analysis.resource import ResourceLevelError, from_manifest, from_published
from qfair.params import parse_params
from qfair.registry import share_tables

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PAPER = REPO / "profiles" / "paper.yaml"
# Invented parallel word lists (not FLORES text): word k of each language translates word k of English.
WORDS = {
    "eng_Latn": ["river", "long", "the", "city", "market", "water", "road", "house", "child", "teacher",
                 "book", "small"],
    "yor_Latn": ["odò", "gùn", "náà", "ìlú", "ọjà", "omi", "ọ̀nà", "ilé", "ọmọ", "olùkọ́", "ìwé", "kékeré"],
    "hin_Deva": ["नदी", "लंबी", "यह", "शहर", "बाज़ार", "पानी", "सड़क", "घर", "बच्चा", "शिक्षक", "किताब", "छोटा"],
    "swh_Latn": ["mto", "mrefu", "huo", "mji", "soko", "maji", "barabara", "nyumba", "mtoto", "mwalimu",
                 "kitabu", "ndogo"],
    "tam_Taml": ["ஆறு", "நீளம்", "அந்த", "நகரம்", "சந்தை", "தண்ணீர்", "சாலை", "வீடு", "குழந்தை", "ஆசிரியர்",
                 "புத்தகம்", "சிறிய"],
    "ibo_Latn": ["osimiri", "ogologo", "ahụ", "obodo", "ahịa", "mmiri", "ụzọ", "ụlọ", "nwata", "onye nkuzi",
                 "akwụkwọ", "obere"],
}
LANGS = list(WORDS)
# BLOOM's model card publishes shares for every language here but English.
WITHOUT_SHARE = ["eng_Latn"]
# Every config the paper ledger names, plus bitsandbytes int8 (real kernels, CPU).
SWEEP = ["rtn-w8-ch-sym", "rtn-w4-ch-sym", "rtn-w3-ch-sym", "rtn-w4-g128-sym", "rtn-w4-g64-sym",
         "aciq-laplace-w4-ch",
         "laaciq-uniform-w4-ch", "laaciq-minimax-w4-ch", "bnb-int8", "bnb-nf4",
         # the activation configs the paper profile's EXP-035/038/038b name (cheap: fake quantization)
         "w16a4-token", "w4a8-tensor", "w4a4-token", "smoothquant-a0.5-w4a8-tensor", "hadamard-w4a4-token"]
NOT_COPIED = ("data/", "models/", "results/", "metrics/", ".dvc/cache/", ".dvc/tmp/", ".venv/", ".git/",
              "paper/build/")


@pytest.fixture(scope="module")
def paper() -> dict:
    return yaml.safe_load(PAPER.read_text(encoding="utf-8"))


# --- resource levels -------------------------------------------------------------------------------


def test_published_shares_become_levels_and_missing_ones_stay_missing() -> None:
    bloom = share_tables()["bloom"]
    levels = from_published("bloom-560m", LANGS)
    assert levels.missing == WITHOUT_SHARE
    assert levels.share["yor_Latn"] == pytest.approx(bloom.shares["yor_Latn"] / 100)  # percent -> fraction
    assert levels.level["yor_Latn"] == pytest.approx(math.log(bloom.shares["yor_Latn"] / 100))
    assert math.isnan(levels.level_or_nan("eng_Latn"))
    assert levels.known(["eng_Latn", "tam_Taml"]) == ["tam_Taml"]
    assert levels.describe()["languages_without_level"] == WITHOUT_SHARE
    with pytest.raises(ResourceLevelError, match=r"LA-ACIQ.*\['eng_Latn'\]"):
        levels.require_shares(LANGS, "LA-ACIQ resource weighting")
    xglm = from_published("xglm-564m", ["eng_Latn", "cmn_Hans"])  # a table already in fractions
    assert xglm.share["eng_Latn"] == share_tables()["xglm"].shares["eng_Latn"] and xglm.complete
    nothing = from_published("opt-125m", ["eng_Latn"])
    assert nothing.missing == ["eng_Latn"] and "none" in nothing.source


def test_manifest_levels_are_taken_as_stored() -> None:
    manifest = {"en": {"train_share": 0.5, "resource_level": -0.69}, "yo": {"train_share": 0.1,
                                                                            "resource_level": -2.3}}
    levels = from_manifest(manifest)
    assert levels.complete and levels.level == {"en": -0.69, "yo": -2.3}


def test_write_csv_leaves_allowed_missing_values_empty(tmp_path: Path) -> None:
    from qfair.io import NonFiniteResultError, write_csv

    frame = pd.DataFrame({"language": ["a", "b"], "x": [1.0, 2.0]})
    frame["resource_level"] = [-1.23456789012345, math.nan]
    write_csv(tmp_path / "t.csv", frame, may_be_empty=["resource_level"])
    assert (tmp_path / "t.csv").read_text().splitlines()[1:] == ["a,1,-1.23456789", "b,2,"]
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["resource_level"].isna().tolist() == [False, True]
    with pytest.raises(NonFiniteResultError, match="resource_level"):  # only where it is allowed
        write_csv(tmp_path / "u.csv", frame)


# --- attention heads across architectures ----------------------------------------------------------


def _save(config, tmp_path: Path, name: str) -> Path:
    from transformers import AutoModel

    torch.manual_seed(0)
    folder = tmp_path / name
    AutoModel.from_config(config).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("arch", ["bloom", "gpt2", "xglm", "llama-gqa", "bert"])
def test_attention_heads_of_every_architecture(tmp_path: Path, arch: str) -> None:
    from transformers import BertConfig, BloomConfig, GPT2Config, LlamaConfig, XGLMConfig

    config = {
        "bloom": BloomConfig(vocab_size=50, hidden_size=32, n_layer=2, n_head=4),
        "gpt2": GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=16),
        "xglm": XGLMConfig(vocab_size=50, d_model=32, num_layers=2, attention_heads=4, ffn_dim=64),
        "llama-gqa": LlamaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, intermediate_size=64),
        "bert": BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64),
    }[arch]
    folder = _save(config, tmp_path, arch)
    heads, conv1d = attention_head_count(folder)
    assert heads == 4 and conv1d == (arch == "gpt2")
    table = attention_head_kurtosis(folder)
    assert sorted(set(table["layer"])) == [0, 1] and sorted(set(table["head"])) == [0, 1, 2, 3]
    assert len(table) == 8 and np.isfinite(table["excess_kurtosis"]).all()


def test_gpt2_heads_are_cut_along_the_input_axis_of_its_conv1d(tmp_path: Path) -> None:
    """GPT-2 stores c_proj as [in, out]: the heads are rows there, so head 1 can be told apart."""
    from safetensors.torch import load_file, save_file
    from transformers import GPT2Config

    folder = _save(GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=4, n_positions=16), tmp_path, "g")
    tensors = load_file(str(folder / "model.safetensors"))
    name = next(k for k in tensors if k.endswith("attn.c_proj.weight"))
    weight = torch.randn(32, 32, generator=torch.Generator().manual_seed(1))
    weight[8:16] = torch.distributions.Laplace(0.0, 1.0).sample((8, 32))  # head 1's inputs: heavy tails
    weight[9, 3] = 40.0
    tensors[name] = weight
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    kurt = attention_head_kurtosis(folder)["excess_kurtosis"].to_numpy()
    assert int(np.argmax(kurt)) == 1 and kurt[1] > 10 > max(np.delete(kurt, 1))


# --- the ledger and the snapshot with a hub model ----------------------------------------------------


def test_resource_hypotheses_use_the_languages_that_have_a_level(paper: dict) -> None:
    params = parse_params(paper)
    rules = [r for r in params.hypotheses if r.id in {"EXP-001", "EXP-033"}]
    rng = np.random.default_rng(0)
    languages = [f"l{i}" for i in range(8)]
    table = pd.DataFrame({"resource_level": [np.nan, np.nan, *rng.normal(size=6)],
                          "token_premium": rng.normal(size=8),
                          "rel_degradation:rtn-w4-ch-sym": rng.normal(size=8),
                          "script_latin": [0.0, 1.0] * 4, "baseline_bpb": rng.normal(size=8)},
                          index=languages)
    records = {r["id"]: r for r in evaluate_ledger(rules, {"language": table}, pd.DataFrame(),
                                                    0.05, 99, 100, 0.95, 0)}
    assert records["EXP-001"]["n"] == 6 and records["EXP-001"]["left_out"] == ["l0", "l1"]
    assert records["EXP-033"]["n"] == 8 and "left_out" not in records["EXP-033"]
    table.loc["l2":"l5", "resource_level"] = np.nan  # 2 of 8 left: too few for a correlation
    records = {r["id"]: r for r in evaluate_ledger(rules, {"language": table}, pd.DataFrame(),
                                                    0.05, 99, 100, 0.95, 0)}
    assert records["EXP-001"]["verdict"] == "NOT RUN" and "only 2 languages" in records["EXP-001"]["reason"]
    assert "p_holm" in records["EXP-033"]


# --- end to end ------------------------------------------------------------------------------------


def _source_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    return [path for path in listed if path and path != "dvc.lock"
            and not path.startswith(NOT_COPIED) and (REPO / path).is_file()]


def _sentences(count: int, seed: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, 12, size=int(rng.integers(4, 10))) for _ in range(count)]
    return {code: [" ".join(words[k] for k in pick) + f" {index}." for index, pick in enumerate(picks)]
            for code, words in WORDS.items()}


def write_flores_fixture(folder: Path, n_dev: int = 24, n_devtest: int = 30) -> dict[str, list[str]]:
    """``<folder>/<split>/<code>.parquet`` with FLORES+'s columns; returns every sentence by language."""
    from qfair.corpus.flores import HUB_COLUMNS

    every: dict[str, list[str]] = {code: [] for code in WORDS}
    for split, count, seed in (("dev", n_dev, 1), ("devtest", n_devtest, 2)):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for code, texts in _sentences(count, seed).items():
            iso, script = code.split("_")
            frame = pd.DataFrame({"id": pd.array(range(count), dtype="int32"), "iso_639_3": iso,
                                  "iso_15924": script, "glottocode": "xxxx1234", "text": texts,
                                  "url": "https://example.org", "domain": "wikinews", "topic": "nature",
                                  "has_image": False, "has_hyperlink": False, "last_updated": "2.1"})
            assert tuple(frame.columns) == HUB_COLUMNS
            frame.to_parquet(folder / split / f"{code}.parquet", index=False)
            every[code] += texts
    return every


def write_fake_hub(root: Path, name: str, texts: list[str]) -> None:
    """A tiny BLOOM and its BPE tokenizer in a Hugging Face cache, as registry model ``name``."""
    from qfair.models.load import build_bloom
    from qfair.models.tokenizer import train_bpe
    from qfair.registry import models

    entry = models()[name]
    tokenizer = train_bpe(texts, vocab_size=400, min_frequency=1)
    # hidden 128: groups of 128 divide every layer and bnb 4-bit needs >= 64 inputs on CPU;
    # 4 layers: the ledger's layer correlations need n >= 4.
    model = build_bloom(len(tokenizer), hidden_size=128, n_layer=4, n_head=2, dropout=0.0,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, seed=7)
    with torch.no_grad():  # spread the weights so languages and configs score clearly apart
        generator = torch.Generator().manual_seed(5)
        for param in model.parameters():
            if param.dim() >= 2:
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    repo = root / f"models--{entry.hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / entry.revision
    model.save_pretrained(str(snapshot))
    tokenizer.save_pretrained(str(snapshot))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(entry.revision)


def write_fake_masked_lm(root: Path, name: str, texts: list[str]) -> None:
    """A tiny BertForMaskedLM with a word-level [CLS]/[SEP] tokenizer, as registry model ``name``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    from qfair.registry import models as registry

    entry = registry()[name]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({word for text in texts for word in text.split()})
    vocab = {token: index for index, token in enumerate(specials + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, cls_token="[CLS]", sep_token="[SEP]",
                                        pad_token="[PAD]", mask_token="[MASK]", unk_token="[UNK]")
    torch.manual_seed(3)
    model = BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64,
                                       max_position_embeddings=64, initializer_range=0.3, pad_token_id=0))
    repo = root / f"models--{entry.hub_id.replace('/', '--')}"
    model.save_pretrained(str(repo / "snapshots" / entry.revision))
    tokenizer.save_pretrained(str(repo / "snapshots" / entry.revision))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(entry.revision)


def paper_params(paper: dict, flores: Path) -> dict:
    params = copy.deepcopy(paper)
    params["corpus"]["languages"] = list(LANGS)
    params["corpus"]["flores"]["data_dir"] = str(flores)
    params["model"].update(name="bloom-560m", dtype="float32")
    params["train"]["threads"] = 1
    params["eval"].update(device="cpu", dtype="float32", bootstrap_resamples=200, batch_tokens=4096,
                          max_tokens=4096)
    params["compress"].update(configs=list(SWEEP), items_per_language=20, calibration_items=8,
                              bootstrap_resamples=200)
    params["analysis"].update(permutation_resamples=199, bootstrap_resamples=200)
    params["interpretability"].update(items_per_language=12, null_resamples=199)
    params["tokenizers"] = []  # external tokenizers come from package registries; not needed here
    parse_params(params)  # the cut profile is still a valid paper profile
    return params


class PaperRepo:
    def __init__(self, root: Path, env: dict[str, str], params: dict) -> None:
        self.root, self.env, self.params = root, env, params

    def run(self, *args: str, cwd: Path | None = None, check: bool = True, timeout: int = 600):
        result = subprocess.run(args, cwd=cwd or self.root, env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        output = result.stdout + result.stderr
        if check:
            assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{output[-6000:]}"
        return result.returncode, output

    def scratch(self, tmp: Path, shared: tuple[str, ...], **changes: dict) -> Path:
        """A folder that shares this run's ``shared`` outputs, with params sections updated."""
        work = tmp / f"scratch-{len(list(tmp.glob('scratch-*')))}"
        work.mkdir()
        for name in shared:
            (work / name).symlink_to(self.root / name)
        params = copy.deepcopy(self.params)
        for section, update in changes.items():
            params[section] = {**params[section], **update}
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
        return work

    def stage(self, stage: str, work: Path, check: bool = False) -> tuple[int, str]:
        return self.run(sys.executable, str(self.root / "stages" / f"{stage}.py"), cwd=work, check=check)

    def stage_with(self, stage: str, tmp: Path, **changes: dict) -> tuple[int, str]:
        """Run one stage script on this run's outputs with params sections updated."""
        return self.stage(stage, self.scratch(tmp, ("data", "models", "results", "metrics"), **changes))

    def csv(self, relative: str) -> pd.DataFrame:
        return pd.read_csv(self.root / relative)

    def json(self, relative: str):
        return json.loads((self.root / relative).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory: pytest.TempPathFactory, paper: dict) -> PaperRepo:
    base = tmp_path_factory.mktemp("paper")
    root = base / "repo"
    for relative in _source_files():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target)
    texts = write_flores_fixture(base / "flores")
    every = [t for lang in texts.values() for t in lang]
    write_fake_hub(base / "hub", "bloom-560m", every)
    write_fake_masked_lm(base / "hub", "mbert", every)
    params = paper_params(paper, base / "flores")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True),
                                      encoding="utf-8")
    env = dict(os.environ)
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(root),
               DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(base / "dvc-site-cache"), GIT_CONFIG_NOSYSTEM="1",
               HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(base / "hub"), HF_DATASETS_CACHE=str(base / "datasets"),
               HF_DATASETS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", MKL_DYNAMIC="FALSE",
               OMP_DYNAMIC="FALSE")
    for name in ("VIRTUAL_ENV", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        env.pop(name, None)
    subprocess.run(["git", "init", "-q"], cwd=root, env=env, check=True)
    return PaperRepo(root, env, params)


@pytest.fixture(scope="module")
def repro(paper_repo: PaperRepo) -> list[str]:
    _, output = paper_repo.run("dvc", "repro", "mechanisms", "snapshot", timeout=900)
    return re.findall(r"Running stage '([^']+)'", output)


def _finite(frame: pd.DataFrame, skip: tuple[str, ...] = ()) -> bool:
    numeric = frame.drop(columns=[c for c in skip if c in frame.columns]).select_dtypes("number")
    return bool(np.isfinite(numeric.to_numpy(dtype=float)).all())


@pytest.mark.slow
def test_paper_profile_runs_every_stage_up_to_the_snapshot(paper_repo: PaperRepo, repro: list[str]) -> None:
    assert set(repro) == {"validate_params", "prepare_corpus", "train_tokenizer", "train_model", "evaluate",
                          "compress_sweep", "compare_configs",
                          "weight_census", "activation_profile", "interpretability", "mechanisms",
                          "snapshot"}
    root = paper_repo.root
    assert (root / "models/paper/final/model.safetensors").is_file()
    assert not (root / "models/embedded").exists()
    assert list((root / "models/paper/checkpoints").iterdir()) == []  # bloom-560m lists no step revisions
    train = paper_repo.json("metrics/train.json")
    assert train["hub_id"] == "bigscience/bloom-560m" and train["steps"] == 0


@pytest.mark.slow
def test_paper_evaluation(paper_repo: PaperRepo, repro: list[str]) -> None:
    metrics = paper_repo.json("metrics/eval.json")
    assert set(metrics) == {"dev", "test"}
    for split, entry in metrics.items():
        assert sorted(entry["bits_per_byte"]) == sorted(LANGS), split
        assert all(math.isfinite(v) and 0 < v < 20 for v in entry["bits_per_byte"].values())
        assert entry["scoring"] == "causal bits per byte" and entry["unigram_fitted_on"] == "dev"
    table = paper_repo.csv("results/eval/per_language.csv")
    assert len(table) == 2 * len(LANGS) and _finite(table, skip=("resource_level",))
    levels = table.drop_duplicates("language").set_index("language")["resource_level"]
    assert levels[levels.isna()].index.tolist() == WITHOUT_SHARE
    assert levels["yor_Latn"] == pytest.approx(math.log(share_tables()["bloom"].shares["yor_Latn"] / 100))
    assert (table["bpb_ci_low"] <= table["bits_per_byte"]).all()


@pytest.mark.slow
def test_paper_sweep(paper_repo: PaperRepo, repro: list[str]) -> None:
    per_language = paper_repo.csv("results/sweep/per_language.csv")
    assert set(per_language["config"]) == set(SWEEP) and set(per_language["language"]) == set(LANGS)
    assert _finite(per_language, skip=("resource_level",))
    without = per_language.loc[per_language["resource_level"].isna(), "language"].unique().tolist()
    assert without == WITHOUT_SHARE
    disparity = paper_repo.csv("results/sweep/disparity.csv")
    assert set(disparity["config"]) == set(SWEEP) and _finite(disparity)
    ratio = pd.to_numeric(disparity["tercile_ratio"], errors="coerce")
    assert (ratio.notna() | disparity["tercile_ratio"].eq("undefined")).all()
    sweep = paper_repo.json("metrics/sweep.json")
    assert sweep["languages"] == len(LANGS) and sweep["configs"] == len(SWEEP)
    assert sweep["resource_level"]["languages_without_level"] == WITHOUT_SHARE
    # The configs were applied: 3-bit RTN moves the (untrained) model's NLL far more than 8-bit RTN.
    rel = per_language.pivot(index="language", columns="config", values="rel_degradation").abs()
    assert rel["rtn-w3-ch-sym"].mean() > 5 * rel["rtn-w8-ch-sym"].mean()


@pytest.mark.slow
def test_paper_census_activations_and_ledger(paper_repo: PaperRepo, repro: list[str]) -> None:
    heads = paper_repo.csv("results/census/attention_heads.csv")
    assert len(heads) == 4 * 2 and _finite(heads)
    assert _finite(paper_repo.csv("results/census/tensors.csv"), skip=("layer",))  # empty: no layer
    assert _finite(paper_repo.csv("results/activations/layers.csv"))
    languages = paper_repo.csv("results/analysis/languages.csv")
    assert languages.loc[languages["resource_level"].isna(), "language"].tolist() == WITHOUT_SHARE
    assert paper_repo.csv("results/analysis/checkpoints.csv").empty
    ledger = paper_repo.json("results/hypotheses.json")
    assert ledger["resource_level"]["languages_without_level"] == WITHOUT_SHARE
    records = {r["id"]: r for r in ledger["hypotheses"]}
    for rule in ("EXP-001", "EXP-001b"):
        assert records[rule]["n"] == len(LANGS) - 1 and records[rule]["left_out"] == WITHOUT_SHARE
        # Five languages: the smallest attainable p may be above alpha / m (NOT TESTABLE).
        assert records[rule]["verdict"] in {"SUPPORTED", "REJECTED", "INCONCLUSIVE", "NOT TESTABLE"}
        assert 0 < records[rule]["min_p"] <= 1
    for rule in ("EXP-007", "EXP-008", "EXP-033", "REAL-001"):
        assert records[rule]["n"] == len(LANGS) and "left_out" not in records[rule]
    assert records["EXP-027"]["verdict"] == "NOT RUN"
    assert all(math.isfinite(r["value"]) for r in ledger["hypotheses"] if "value" in r)


@pytest.mark.slow
def test_paper_snapshot(paper_repo: PaperRepo, repro: list[str]) -> None:
    text = (paper_repo.root / "results/SNAPSHOT.md").read_text(encoding="utf-8")
    assert text.startswith("# Results snapshot (paper profile)")
    assert "`bigscience/bloom-560m`" in text and "not trained here" in text
    assert "BLOOM architecture" not in text and "training loss" not in text
    assert "| eng_Latn | Latn | n/a |" in text
    assert f"(n={len(LANGS) - 1}; without eng_Latn)" in text  # EXP-001's languages
    assert "fitted on dev itself" in text
    rows = [line for line in text.splitlines() if re.match(r"\| [a-z]{3}_[A-Z][a-z]{3} \|", line)]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows][-1] == "eng_Latn"  # no share: last


@pytest.mark.slow
def test_tokenizer_premium_on_flores(paper_repo: PaperRepo, repro: list[str], tmp_path: Path) -> None:
    """FLORES+ has no UDHR split: the premium covers the test split, with the model's tokenizer."""
    paper_repo.run(sys.executable, "stages/tokenizer_premium.py")
    table = paper_repo.csv("results/tokenizers/premium.csv")
    assert set(table["split"]) == {"test"} and set(table["tokenizer"]) == {"bloom-560m"}
    assert set(table["language"]) == set(LANGS) and _finite(table)
    assert table.set_index("language").loc["eng_Latn", "premium"] == 1.0


@pytest.mark.slow
def test_sweep_refuses_what_it_cannot_do(paper_repo: PaperRepo, repro: list[str], tmp_path: Path) -> None:
    code, output = paper_repo.stage_with("compress_sweep", tmp_path,
                                         compress={"configs": [*SWEEP, "laaciq-resource-w4-ch"]})
    assert code != 0 and "laaciq-resource-w4-ch" in output and "['eng_Latn']" in output


@pytest.mark.slow
def test_masked_lm_is_evaluated_by_pseudo_log_likelihood(paper_repo: PaperRepo, repro: list[str],
                                                         tmp_path: Path) -> None:
    """mbert (kind masked_lm): materialized like any hub model, scored by PLL in the evaluate stage."""
    from pll_reference import score_items_pll_naive
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from qfair.corpus.store import read_split

    work = paper_repo.scratch(tmp_path, ("data",), model={"name": "mbert"})
    for stage in ("train_tokenizer", "train_model", "evaluate"):
        paper_repo.stage(stage, work, check=True)
    metrics = json.loads((work / "metrics/eval.json").read_text(encoding="utf-8"))
    assert metrics["test"]["scoring"].startswith("pseudo-log-likelihood")
    items = pd.read_csv(work / "results/eval/items.csv", dtype={"item_id": str})
    assert _finite(items) and (items["nll"] > 0).all()
    # The stage's numbers are the PLL of the materialized model (checked on a few items).
    folder = work / "models/paper/final"
    model = AutoModelForMaskedLM.from_pretrained(str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    test = read_split(work / "data/corpus", "test")["yor_Latn"]
    rows = items[(items["split"] == "test") & (items["language"] == "yor_Latn")].head(3)
    expected = score_items_pll_naive(model, tokenizer, [test[i] for i in rows["item_id"]]).nll
    np.testing.assert_allclose(rows["nll"].to_numpy(), expected, rtol=1e-4)
    # The sweep cannot score a masked LM and says so before loading it.
    code, output = paper_repo.stage("compress_sweep", work)
    assert code != 0 and "model.name: 'mbert' is a masked LM" in output


# Keys of the paper's text whose data the paper profile does not produce: each reads "n/a".
ABSENT_KEYS = ("train/final-loss", "train/final-dev-loss", "corpus/share-min", "corpus/train-items",
               "corpus/udhr-languages", "eval/udhr/languages", "disp/rtn-w4-tensor-sym/range",
               "census/first-checkpoint-kurtosis", "hyp/EXP-027/p-holm", "tok/qfair/mean", "set/hidden")


@pytest.mark.slow
def test_paper_profile_report_and_pdf(paper_repo: PaperRepo, repro: list[str]) -> None:
    from qfair.report.texcheck import defined_keys, missing_keys

    paper_repo.run("dvc", "repro", "report", timeout=600)
    root = paper_repo.root
    numbers = (root / "paper/generated/numbers.tex").read_text(encoding="utf-8")
    for key in ABSENT_KEYS:
        assert rf"\@namedef{{qf@num@{key}}}{{n/a}}" in numbers, key
    defined = defined_keys(numbers)
    assert r"\@namedef{qf@num@disp/rtn-w4-ch-sym/range}{n/a}" not in numbers  # produced: a value
    assert "hyp/EXP-999/value" not in defined and "disp/rtn-w7-ch-sym/range" not in defined
    assert "published checkpoint \\texttt{bigscience/bloom-560m}" in numbers  # text/model-description
    assert missing_keys(root / "paper") == {}
    table = (root / "paper/generated/tables/per_language.tex").read_text(encoding="utf-8")
    assert "pretraining share" in table
    assert re.search(r"^eng\\_Latn & English & Latn & n/a &", table, re.M)  # no published share
    assert table.strip().splitlines()[-3].startswith("eng")  # without a share: last
    if not all(shutil.which(tool) for tool in ("latexmk", "pdflatex", "bibtex", "pdftotext")):
        pytest.skip("TeX or pdftotext is not installed; the report was checked, the PDF is not built")
    paper_repo.run("dvc", "repro", "paper", timeout=600)
    _, text = paper_repo.run("pdftotext", "paper/build/main.pdf", "-")
    assert "??" not in text
    assert "not produced by the paper profile" in text and "bigscience/bloom-560m" in text
