"""Shared fixtures: a tiny synthetic parallel corpus, a tiny BPE tokenizer and a tiny BLOOM.

Everything here is built in memory from handwritten word lists through the library's own
functions (no network, no download cache), so the fixtures are fast and fully offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from qfair.corpus.build import (
    Corpus,
    clean_all,
    split_parallel,
    subsample,
    training_counts,
    write_corpus,
)
from qfair.corpus.languages import resolve_languages
from qfair.models.load import build_bloom
from qfair.models.tokenizer import train_bpe

# The models here are tiny: one thread is faster than several, and far faster when the machine is
# busy (intra-op threads of a tiny op then wait on each other). Also keeps results reproducible.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
TINY_LOCALES = ["en", "fr_FR", "hi_IN", "yo", "zh_Hans"]

# Parallel word lists: word k of one language translates word k of English.
_WORDS = {
    "en": ["open", "the", "file", "settings", "channel", "learner", "device", "import",
           "export", "lesson", "quiz", "resource", "class", "report"],
    "fr_FR": ["ouvrir", "le", "fichier", "paramètres", "chaîne", "apprenant", "appareil",
              "importer", "exporter", "leçon", "quiz", "ressource", "classe", "rapport"],
    "hi_IN": ["खोलें", "का", "फ़ाइल", "सेटिंग्स", "चैनल", "शिक्षार्थी", "डिवाइस", "आयात",
              "निर्यात", "पाठ", "प्रश्नोत्तरी", "संसाधन", "कक्षा", "रिपोर्ट"],
    "yo": ["ṣí", "náà", "fáìlì", "ètò", "ìkànnì", "akẹ́kọ̀ọ́", "ẹ̀rọ", "gbé wọlé", "gbé jáde",
           "ẹ̀kọ́", "ìdánwò", "ohun èlò", "kíláàsì", "ìròyìn"],
    "zh_Hans": ["打开", "的", "文件", "设置", "频道", "学习者", "设备", "导入", "导出", "课程",
                "测验", "资源", "班级", "报告"],
}
_CANCEL = {"en": "Cancel", "fr_FR": "Annuler", "hi_IN": "रद्द करें", "yo": "Fagilé",
           "zh_Hans": "取消"}
_PLURAL = {
    "en": "You have {count, plural, one {# lesson} other {# lessons}} left",
    "fr_FR": "Il vous reste {count, plural, one {# leçon} other {# leçons}}",
    "hi_IN": "आपके पास {count, plural, one {# पाठ} other {# पाठ}} बाकी हैं",
    "yo": "Ó ku {count, plural, one {# ẹ̀kọ́} other {# ẹ̀kọ́}} fún ọ",
    "zh_Hans": "你还有 {count, plural, other {# 节课}}",
}
N_SYNTHETIC = 160


def synthetic_raw(n_items: int = N_SYNTHETIC) -> dict[str, dict[str, str]]:
    """``{locale: {id: raw text}}`` shaped like Kolibri catalogues, with the usual dirt in it."""
    rng = np.random.default_rng(2024)
    raw: dict[str, dict[str, str]] = {loc: {} for loc in TINY_LOCALES}
    for index in range(n_items):
        picks = rng.integers(0, len(_WORDS["en"]), size=int(rng.integers(3, 9)))
        for loc in TINY_LOCALES:
            raw[loc][f"mod::item_{index:04d}"] = " ".join(_WORDS[loc][k] for k in picks)
    for loc in TINY_LOCALES:
        # One source string under two ids (must stay together in one split).
        raw[loc]["common::cancel_a"] = _CANCEL[loc]
        raw[loc]["common::cancel_b"] = _CANCEL[loc]
        raw[loc]["common::plural"] = _PLURAL[loc]
        raw[loc]["common::only_placeholder"] = "{name}"
        raw[loc]["common::spaces"] = f"  {_CANCEL[loc]}\u200f \t now  "
        if loc != "en":
            raw[loc]["common::untranslated"] = "Untranslated string"
            raw[loc]["common::pseudo"] = "crwdns394181:0crwdne394181:0"
            raw[loc]["common::empty"] = ""
    raw["en"]["common::untranslated"] = "Untranslated string"
    raw["en"]["common::pseudo"] = "Pseudo"
    raw["en"]["common::empty"] = "Empty"
    return raw


@dataclass
class TinyCorpus:
    corpus: Corpus
    folder: Path
    manifest: dict
    raw: dict[str, dict[str, str]]
    cleaned: dict[str, dict[str, str]]

    @property
    def splits(self) -> dict[str, dict[str, dict[str, str]]]:
        return self.corpus.splits

    def texts(self, split: str) -> list[str]:
        return [text for loc in sorted(self.splits[split])
                for text in self.splits[split][loc].values()]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> TinyCorpus:
    raw = synthetic_raw()
    languages = resolve_languages(TINY_LOCALES)
    cleaned, dropped = clean_all(raw, languages, "en", "token")
    splits = split_parallel(cleaned, cleaned["en"], 0.15, 0.15, seed=3)
    available = {loc: len(items) for loc, items in splits["train"].items()}
    counts = training_counts(TINY_LOCALES, available, "zipf", 0.8, 0.3, 7, {})
    splits["train"] = {loc: subsample(splits["train"][loc], counts[loc], 3 + i)
                       for i, loc in enumerate(TINY_LOCALES)}
    corpus = Corpus(languages=languages, splits=splits, dropped=dropped)
    folder = tmp_path_factory.mktemp("tiny_corpus")
    info = write_corpus(corpus, {"train": {"source": "synthetic"}}, folder)
    return TinyCorpus(corpus=corpus, folder=folder, manifest=info, raw=raw, cleaned=cleaned)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_corpus: TinyCorpus):
    texts = tiny_corpus.texts("train") + tiny_corpus.texts("dev")
    return train_bpe(texts, vocab_size=300, min_frequency=1)


@pytest.fixture(scope="session")
def make_bloom(tiny_tokenizer):
    """Factory of freshly initialised tiny BLOOMs (hidden 32, 2 layers, 2 heads)."""

    def make(seed: int = 0, dropout: float = 0.0):
        tok = tiny_tokenizer
        return build_bloom(len(tok), hidden_size=32, n_layer=2, n_head=2, dropout=dropout,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.pad_token_id, seed=seed)

    return make


@pytest.fixture(scope="session")
def tiny_model(make_bloom):
    """A tiny BLOOM in eval mode; tests must not modify it."""
    model = make_bloom(seed=1).eval()
    # A freshly initialised BLOOM has near-uniform outputs; spread the weights a little so that
    # scores differ clearly between tokens (makes the equality tests meaningful).
    with torch.no_grad():
        generator = torch.Generator().manual_seed(5)
        for param in model.parameters():
            if param.dim() >= 2:
                param.add_(torch.randn(param.shape, generator=generator) * 0.2)
    return model


@pytest.fixture(scope="session")
def tiny_stream(tiny_corpus: TinyCorpus, tiny_tokenizer) -> torch.Tensor:
    from qfair.models.train import token_stream

    ids = tiny_tokenizer(tiny_corpus.texts("train"), add_special_tokens=False)["input_ids"]
    return token_stream(ids, tiny_tokenizer.bos_token_id, tiny_tokenizer.eos_token_id, seed=0)
