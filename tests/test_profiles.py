"""Profiles: every profiles/*.yaml validates, params.yaml is the committed embedded profile, and
``python -m qfair.profile`` switches atomically only to a valid profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfair.params import ParamsError, load_params
from qfair.profile import PROFILES, available, main, switch
from qfair.quant.configs import parse_config
from qfair.registry import flores_languages, script_of

REPO = Path(__file__).resolve().parents[1]


def test_profiles_exist() -> None:
    assert {"embedded", "paper"} <= set(available())


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_profile_validates(path: Path) -> None:
    assert load_params(path).profile == path.stem


def test_params_yaml_is_the_embedded_profile() -> None:
    """params.yaml and profiles/embedded.yaml are byte-identical, so the two cannot drift."""
    assert (REPO / "params.yaml").read_bytes() == (PROFILES / "embedded.yaml").read_bytes()


def test_paper_profile_covers_what_the_study_needs() -> None:
    params = load_params(PROFILES / "paper.yaml")
    codes = params.corpus.languages
    table = flores_languages()
    assert len(codes) >= 40
    assert len({script_of(code) for code in codes}) >= 10
    assert len({table[code].family for code in codes}) >= 8
    assert params.model.source == "hub" and params.eval.device == "cuda" and params.eval.dtype == "bfloat16"
    assert set(params.eval.splits) == {"dev", "test"}
    methods = {parse_config(name).method for name in params.compress.configs}
    assert {"rtn", "aciq", "laaciq", "bnb"} <= methods


def test_switch_validates_then_copies_bytes(tmp_path: Path) -> None:
    target = tmp_path / "params.yaml"
    target.write_text("old\n")
    switch("paper", target=target)
    assert target.read_bytes() == (PROFILES / "paper.yaml").read_bytes()
    switch("embedded", target=target)
    assert target.read_bytes() == (PROFILES / "embedded.yaml").read_bytes()


def test_invalid_profile_leaves_params_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    broken = (PROFILES / "paper.yaml").read_text().replace("name: bloom-560m", "name: bloom-9000")
    (folder / "paper.yaml").write_text(broken)
    (folder / "other.yaml").write_text((PROFILES / "embedded.yaml").read_text())
    target = tmp_path / "params.yaml"
    target.write_text("unchanged\n")
    with pytest.raises(ParamsError, match=r"model\.name"):
        switch("paper", folder=folder, target=target)
    with pytest.raises(ParamsError, match="does not match"):
        switch("other", folder=folder, target=target)
    with pytest.raises(ParamsError, match="not found"):
        switch("nope", folder=folder, target=target)
    assert target.read_text() == "unchanged\n"


def test_cli_refuses_an_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    before = (REPO / "params.yaml").read_bytes()
    assert main(["no-such-profile"]) == 2
    assert "available" in capsys.readouterr().err
    assert (REPO / "params.yaml").read_bytes() == before
