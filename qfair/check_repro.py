"""Did this machine reproduce the committed results? One verdict after ``dvc repro``.

DVC's lock records the hash of every stage output (weights, tables, figures, the paper's
generated files). The regenerated ``dvc.lock`` is compared with the committed one (``git show
HEAD:dvc.lock``): equal hashes mean byte-identical outputs. For a differing output that git
tracks, the files are compared with their committed versions and the largest numeric change is
reported; a changed hypothesis verdict is named. Outputs that record the run rather than the
result (stage wall times, the checklist that quotes them, the PDF) are left out: ``VOLATILE``.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from qfair import paths

# Outputs that differ on every run by design: wall times (stages, C-004's cost per language), the
# machine, and what quotes them.
VOLATILE = (f"{paths.TIMINGS.as_posix()}/", f"{paths.PAPER_PDF.parent.as_posix()}/",
            paths.COST.as_posix(), paths.COST_METRICS.as_posix())
# Inside a compared output (paper/generated/), the files that quote them.
VOLATILE_FILES = ((paths.PAPER_GENERATED / "tables" / "checklist.tex").as_posix(),)
LEDGER = paths.HYPOTHESES.as_posix()
# The run record whose software facts are compared when outputs differ (qfair.runinfo.software_facts).
TRAINING_FACTS = (paths.TIMINGS / "train_model.json").as_posix()
SOFTWARE_KEYS = ("python", "torch", "torch_commit", "torch_record_sha256", "torch_cpu_capability", "libc")


@dataclass
class FileChange:
    path: str
    detail: str


@dataclass
class Comparison:
    compared: int = 0
    changed: list[FileChange] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)  # "EXP-001: INCONCLUSIVE -> SUPPORTED"
    software: list[str] = field(default_factory=list)  # "torch_commit: abc -> def" (training run's facts)

    @property
    def identical(self) -> bool:
        return not self.changed and not self.verdicts


def _git(root: Path, *args: str) -> bytes | None:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def lock_outputs(lock: dict) -> dict[str, str]:
    """``{output path: hash}`` of every stage in a parsed dvc.lock."""
    hashes = {}
    for stage in (lock or {}).get("stages", {}).values():
        for out in stage.get("outs", []):
            hashes[out["path"]] = out.get("md5") or out.get("hash") or ""
    return hashes


def _numbers(value: object, prefix: str = "") -> dict[str, float]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _numbers(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _numbers(item, f"{prefix}{i}.").items()}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {prefix.rstrip("."): float(value)}
    return {}


def _largest_change(old: dict[str, float], new: dict[str, float]) -> str:
    keys = old.keys() & new.keys()
    worst = max(keys, key=lambda k: abs(new[k] - old[k]), default=None)
    if worst is None or old[worst] == new[worst]:
        return "numbers equal; text or layout differs"
    delta = new[worst] - old[worst]
    relative = abs(delta) / abs(old[worst]) if old[worst] else math.inf
    return f"largest change {worst}: {old[worst]:.6g} -> {new[worst]:.6g} (relative {relative:.2g})"


def describe_change(path: str, old: bytes, new: bytes) -> str:
    """How a committed file and its regenerated version differ, in one phrase."""
    try:
        if path.endswith(".json"):
            return _largest_change(_numbers(json.loads(old)), _numbers(json.loads(new)))
        if path.endswith(".csv"):
            a, b = pd.read_csv(io.BytesIO(old)), pd.read_csv(io.BytesIO(new))
            if a.shape != b.shape or list(a.columns) != list(b.columns):
                return f"shape {a.shape} -> {b.shape}"
            numeric = [c for c in a.select_dtypes("number").columns if c in b.select_dtypes("number")]
            flat = {f"{c}[{i}]": float(v) for c in numeric for i, v in enumerate(a[c]) if pd.notna(v)}
            flat_new = {f"{c}[{i}]": float(v) for c in numeric for i, v in enumerate(b[c]) if pd.notna(v)}
            return _largest_change(flat, flat_new)
    except (ValueError, UnicodeDecodeError) as error:
        return f"differs (not comparable as numbers: {error})"
    return f"bytes differ ({len(old)} -> {len(new)} bytes)"


def _verdicts(text: bytes | None) -> dict[str, str]:
    if not text:
        return {}
    return {h["id"]: h.get("verdict", "") for h in json.loads(text).get("hypotheses", [])}


def _tracked_files(root: Path, output: str) -> list[str]:
    listed = _git(root, "ls-files", "--", output)
    return [p for p in (listed or b"").decode().splitlines() if p]


def compare(root: Path | str = ".", ref: str = "HEAD") -> Comparison:
    """Compare the regenerated outputs under ``root`` with those committed at ``ref``."""
    root = Path(root)
    committed_lock = _git(root, "show", f"{ref}:dvc.lock")
    if committed_lock is None:
        raise FileNotFoundError(f"no dvc.lock at {ref} in {root}: nothing committed to compare with")
    old = lock_outputs(yaml.safe_load(committed_lock))
    new = lock_outputs(yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")))
    result = Comparison()
    for path in sorted(old.keys() | new.keys()):
        if path.startswith(VOLATILE):
            continue
        result.compared += 1
        if old.get(path) == new.get(path):
            continue
        if path not in old or path not in new:
            result.changed.append(FileChange(path, "not committed" if path not in old else "not produced"))
            continue
        files = [f for f in _tracked_files(root, path) if f not in VOLATILE_FILES]
        if not _tracked_files(root, path):  # DVC-cached (weights, item tables): only its hash is committed
            result.changed.append(FileChange(path, f"hash {old[path][:12]} -> {new[path][:12]}"))
        for name in files:
            before = _git(root, "show", f"{ref}:{name}")
            after = (root / name).read_bytes() if (root / name).is_file() else None
            if before != after:
                result.changed.append(FileChange(name, "missing" if after is None else
                                                 describe_change(name, before or b"", after)))
    before = _verdicts(_git(root, "show", f"{ref}:{LEDGER}"))
    after = _verdicts((root / LEDGER).read_bytes() if (root / LEDGER).is_file() else None)
    result.verdicts = [f"{key}: {before.get(key, '-')} -> {after.get(key, '-')}"
                       for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)]
    result.software = software_differences(_git(root, "show", f"{ref}:{TRAINING_FACTS}"),
                                           (root / TRAINING_FACTS).read_bytes()
                                           if (root / TRAINING_FACTS).is_file() else None)
    return result


def software_differences(committed: bytes | None, regenerated: bytes | None) -> list[str]:
    """Software facts of the training run that differ between the committed and this run.

    A fact the committed run did not record yet reads ``unrecorded``: the difference cannot be ruled out.
    """
    if committed is None or regenerated is None:
        return []
    before, after = json.loads(committed), json.loads(regenerated)
    return [f"{key}: {before.get(key, 'unrecorded')} -> {after.get(key, 'unrecorded')}"
            for key in SOFTWARE_KEYS if before.get(key) != after.get(key)]


def report(result: Comparison, ref: str = "HEAD") -> str:
    """The verdict a reviewer reads at the end of ``dvc repro``."""
    if result.identical:
        return (f"check-repro: IDENTICAL - all {result.compared} stage outputs match the results "
                f"committed at {ref} byte for byte (wall times excluded)")
    lines = [f"check-repro: DIFFERENT - {len(result.changed)} file(s) differ from {ref}"]
    lines += [f"  {change.path}: {change.detail}" for change in result.changed]
    lines.append("  verdicts changed: " + ("; ".join(result.verdicts) if result.verdicts else "none"))
    if result.software:
        lines.append("  software differs from the committed training run (a likely cause): "
                     + "; ".join(result.software))
    return "\n".join(lines)
