"""Profiles: every profiles/*.yaml validates, params.yaml is the committed embedded profile, and
``python -m qfair.profile`` switches atomically only to a valid profile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qfair.params import ParamsError, load_params
from qfair.profile import PROFILES, ProfileError, available, main, switch
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
    methods = {parse_config(name).family for name in params.compress.configs}
    assert {"rtn", "aciq", "laaciq", "bnb"} <= methods


def test_switch_validates_then_copies_bytes(tmp_path: Path) -> None:
    target = tmp_path / "params.yaml"
    target.write_bytes((PROFILES / "embedded.yaml").read_bytes())
    assert switch("paper", target=target) == (PROFILES / "paper.yaml", None)
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


# --- issue 10: a hand-edited params.yaml is not overwritten without --force ---------------------

def _hand_edited(tmp_path: Path) -> Path:
    target = tmp_path / "params.yaml"
    text = (PROFILES / "embedded.yaml").read_text(encoding="utf-8")
    target.write_text(text.replace("steps: 400", "steps: 800"), encoding="utf-8")
    return target


def test_switch_refuses_a_hand_edited_params_file(tmp_path: Path) -> None:
    target = _hand_edited(tmp_path)
    before = target.read_bytes()
    with pytest.raises(ProfileError) as info:
        switch("paper", target=target)
    message = str(info.value)
    assert str(target) in message and "--force" in message and "params.yaml.bak" in message
    assert target.read_bytes() == before
    assert not (tmp_path / "params.yaml.bak").exists()


def test_switch_with_force_keeps_a_backup(tmp_path: Path) -> None:
    target = _hand_edited(tmp_path)
    before = target.read_bytes()
    source, backup = switch("paper", target=target, force=True)
    assert backup == tmp_path / "params.yaml.bak" and backup.read_bytes() == before
    assert target.read_bytes() == (PROFILES / "paper.yaml").read_bytes() == source.read_bytes()
    # a profile is not hand-edited: switching back needs no --force and writes no backup
    assert switch("embedded", target=target) == (PROFILES / "embedded.yaml", None)
    assert backup.read_bytes() == before


def test_switch_to_a_missing_params_file(tmp_path: Path) -> None:
    target = tmp_path / "params.yaml"
    assert switch("embedded", target=target)[1] is None
    assert target.read_bytes() == (PROFILES / "embedded.yaml").read_bytes()


def test_cli_refuses_a_hand_edited_params_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = _hand_edited(tmp_path)
    before = target.read_bytes()
    assert main(["paper"], target=target) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("qfair profile: error: ") and "--force" in err[0] and str(target) in err[0]
    assert err[1:] == ["  (QFAIR_DEBUG=1 shows the traceback)"]
    assert target.read_bytes() == before


def test_cli_force_says_where_the_backup_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = _hand_edited(tmp_path)
    before = target.read_bytes()
    assert main(["paper", "--force"], target=target) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "params.yaml.bak") in out
    assert (tmp_path / "params.yaml.bak").read_bytes() == before
    assert yaml.safe_load(target.read_text(encoding="utf-8"))["profile"] == "paper"


def test_cli_error_is_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    """As a stage: exit 2 and one line naming the key; QFAIR_DEBUG=1 gives the traceback."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    broken = (PROFILES / "paper.yaml").read_text().replace("name: bloom-560m", "name: bloom-9000")
    (folder / "paper.yaml").write_text(broken)
    code = ("import sys; from pathlib import Path; from qfair.profile import main; "
            f"sys.exit(main(['paper'], Path({str(folder)!r}), Path({str(tmp_path / 'params.yaml')!r})))")
    env = {key: value for key, value in os.environ.items() if key != "QFAIR_DEBUG"}
    env["PYTHONPATH"] = str(REPO)

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True,
                              text=True, timeout=120, check=False)

    plain = run()
    assert plain.returncode == 2, plain.stderr
    lines = plain.stderr.splitlines()
    assert lines[0].startswith("qfair profile: error: ") and "model.name" in lines[0], plain.stderr
    assert len(lines) == 2 and "Traceback" not in plain.stderr
    debug = run(QFAIR_DEBUG="1")
    assert debug.returncode not in (0, 2) and "Traceback" in debug.stderr and "model.name" in debug.stderr
    assert not (tmp_path / "params.yaml").exists()
