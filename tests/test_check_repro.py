"""`qfair check-repro`: one verdict comparing regenerated outputs with the committed ones."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from qfair import check_repro
from qfair.cli import main as cli


def _lock(hashes: dict[str, str]) -> str:
    return yaml.safe_dump({"schema": "2.0", "stages": {"s": {"cmd": "x", "outs": [
        {"path": path, "hash": "md5", "md5": md5} for path, md5 in hashes.items()]}}})


def _repo(tmp_path: Path) -> Path:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    (tmp_path / "results").mkdir()
    (tmp_path / "results/table.csv").write_text("language,rel_degradation\nen,0.10\nfr,0.20\n")
    (tmp_path / "results/hypotheses.json").write_text(json.dumps(
        {"hypotheses": [{"id": "EXP-001", "value": -0.37, "verdict": "INCONCLUSIVE"}]}))
    (tmp_path / "results/timings").mkdir()
    (tmp_path / "results/timings/train.json").write_text('{"seconds": 10}')
    (tmp_path / "dvc.lock").write_text(_lock({"results/table.csv": "a1", "results/hypotheses.json": "b1",
                                              "results/timings/train.json": "c1", "models/final": "d1"}))
    git("add", "-A")
    git("commit", "-qm", "results")
    return tmp_path


def test_identical_when_only_wall_times_differ(tmp_path, capsys):
    root = _repo(tmp_path)
    (root / "results/timings/train.json").write_text('{"seconds": 99}')
    (root / "dvc.lock").write_text(_lock({"results/table.csv": "a1", "results/hypotheses.json": "b1",
                                          "results/timings/train.json": "c2", "models/final": "d1"}))
    result = check_repro.compare(root)
    assert result.identical and result.compared == 3
    assert "IDENTICAL" in check_repro.report(result)


def test_names_changed_files_their_largest_change_and_verdicts(tmp_path, monkeypatch, capsys):
    root = _repo(tmp_path)
    (root / "results/table.csv").write_text("language,rel_degradation\nen,0.10\nfr,0.25\n")
    (root / "results/hypotheses.json").write_text(json.dumps(
        {"hypotheses": [{"id": "EXP-001", "value": -0.5, "verdict": "SUPPORTED"}]}))
    (root / "dvc.lock").write_text(_lock({"results/table.csv": "a2", "results/hypotheses.json": "b2",
                                          "results/timings/train.json": "c1", "models/final": "d2"}))
    result = check_repro.compare(root)
    text = check_repro.report(result)
    assert not result.identical
    assert "results/table.csv: largest change rel_degradation[1]: 0.2 -> 0.25" in text
    assert "models/final: hash d1 -> d2" in text  # DVC-cached: only its hash is committed
    assert "EXP-001: INCONCLUSIVE -> SUPPORTED" in text
    monkeypatch.chdir(root)
    assert cli(["check-repro"]) == 0 and cli(["check-repro", "--strict"]) == 1
    assert "DIFFERENT - 3 file(s)" in capsys.readouterr().out


def test_without_a_committed_lock_it_says_so(tmp_path, monkeypatch, capsys):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    assert cli(["check-repro"]) == 2
    assert "no dvc.lock at HEAD" in capsys.readouterr().err


def test_names_the_software_that_differs_from_the_committed_training_run(tmp_path):
    root = _repo(tmp_path)
    facts = {"seconds": 10, "torch": "2.13.0+cpu", "torch_commit": "aaa", "torch_record_sha256": "r1"}
    (root / "results/timings/train_model.json").write_text(json.dumps(facts))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "facts"], cwd=root, check=True)
    (root / "results/timings/train_model.json").write_text(json.dumps({**facts, "seconds": 11,
                                                                      "torch_record_sha256": "r2"}))
    (root / "results/table.csv").write_text("language,rel_degradation\nen,0.10\nfr,0.25\n")
    (root / "dvc.lock").write_text(_lock({"results/table.csv": "a2", "results/hypotheses.json": "b1",
                                          "results/timings/train.json": "c1", "models/final": "d1"}))
    text = check_repro.report(check_repro.compare(root))
    assert "software differs from the committed training run" in text
    assert "torch_record_sha256: r1 -> r2" in text and "torch_commit" not in text


def test_a_fact_the_committed_run_did_not_record_reads_unrecorded():
    differences = check_repro.software_differences(b'{"torch": "2.13.0"}',
                                                   b'{"torch": "2.13.0", "libc": "glibc 2.36"}')
    assert differences == ["libc: unrecorded -> glibc 2.36"]
    assert check_repro.software_differences(None, b"{}") == []


def test_machine_facts_identify_the_torch_build():
    from qfair.runinfo import software_facts

    facts = software_facts()
    assert set(facts) == {"torch_commit", "torch_record_sha256", "torch_cpu_capability", "libc"}
    assert facts["torch_commit"] and len(facts["torch_record_sha256"] or "") == 16
    json.dumps(facts)  # recorded in the stage timings
