"""docker/Dockerfile and its lock: pinned base, non-root user, hash-locked CUDA environment, hadolint clean.

No Docker engine exists on the build or CI machines, so these read the files the image is built from;
hadolint runs when its binary is installed (scripts/lint_docker.sh installs it, CI runs that first).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
CPU_LOCK = REPO / "requirements" / "lock-cpu.txt"
CUDA_LOCK = REPO / "requirements" / "lock-cuda.txt"
LINT_LOCK = REPO / "requirements" / "lint.txt"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")
# The python3 each Ubuntu base ships; the lock must be resolved for the same one.
UBUNTU_PYTHON = {"ubuntu22.04": "3.10", "ubuntu24.04": "3.12"}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def requirement_entries(text: str) -> list[str]:
    """The requirement entries of a requirements file, each with its continuation lines joined."""
    entries: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        entries.append((pending + stripped).strip())
        pending = ""
    if pending:
        entries.append(pending.strip())
    return [entry for entry in entries if not entry.startswith("-")]


def pins(text: str) -> dict[str, str]:
    """{normalized name: version} for the ``name==version`` entries of a requirements file."""
    result: dict[str, str] = {}
    for entry in requirement_entries(text):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", entry)
        assert match, f"not an exact pin: {entry[:80]!r}"
        result[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def _base_image(dockerfile: list[tuple[str, str]]) -> str:
    froms = [args.split()[0] for keyword, args in dockerfile if keyword == "FROM"]
    assert froms, "docker/Dockerfile has no FROM"
    return froms[-1]


def test_instructions_parser_joins_continuations_and_drops_comments() -> None:
    text = "# c\nFROM a:1\nRUN x \\\n    && y\n# c\nUSER 5\n"
    assert instructions(text) == [("FROM", "a:1"), ("RUN", "x && y"), ("USER", "5")]


def test_requirement_entries_joins_hashes_and_skips_comments() -> None:
    text = "# header\na==1 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via b\nb==2\n"
    assert requirement_entries(text) == ["a==1 --hash=sha256:" + "0" * 64, "b==2"]


def test_base_images_are_pinned_by_exact_tag_and_digest(dockerfile: list[tuple[str, str]]) -> None:
    for keyword, args in dockerfile:
        if keyword != "FROM":
            continue
        image = args.split()[0]
        assert "$" not in image, f"FROM {image}: the base must be literal so that it is reviewable"
        name, _, digest = image.partition("@")
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"FROM {image}: not pinned by digest"
        repo, _, tag = name.rpartition(":")
        assert repo and tag and tag != "latest", f"FROM {image}: needs an exact tag, not latest"
        assert re.match(r"\d+\.\d+\.\d+-", tag), f"FROM {image}: tag is not an exact version"


def test_runs_as_a_fixed_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    users = [args for keyword, args in dockerfile if keyword == "USER"]
    assert users, "docker/Dockerfile has no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"USER {users[-1]} is root"
    runs = " ".join(args for keyword, args in dockerfile if keyword == "RUN")
    created = re.search(r"useradd\s.*?--uid\s+(\d+)\s.*?(\w+)\s*(?:&&|$)", runs)
    assert created, "the user is not created with a fixed --uid"
    uid, name = created[1], created[2]
    assert user in {uid, name}, f"USER {user} is not the user created with --uid {uid} ({name})"


def test_image_installs_a_hash_locked_requirements_file(dockerfile: list[tuple[str, str]]) -> None:
    runs = [args for keyword, args in dockerfile if keyword == "RUN"]
    locks = [m[1] for args in runs for m in re.finditer(r"--require-hashes\s+-r\s+(\S+)", args)]
    assert locks == ["requirements/lock-cuda.txt"], f"pip --require-hashes installs {locks}"
    copies = [args for keyword, args in dockerfile if keyword == "COPY"]
    assert any("requirements/lock-cuda.txt" in args for args in copies), "the lock is never copied in"


@pytest.mark.parametrize("lock", [CUDA_LOCK, LINT_LOCK], ids=lambda path: path.name)
def test_every_locked_requirement_has_a_sha256_hash(lock: Path) -> None:
    entries = requirement_entries(lock.read_text(encoding="utf-8"))
    assert entries, f"{lock.name} has no requirements"
    unhashed = [entry.split()[0] for entry in entries if not HASH.search(entry)]
    assert not unhashed, f"{lock.name}: requirements without --hash=sha256: {unhashed}"
    unpinned = [entry.split()[0] for entry in entries if "==" not in entry.split()[0]]
    assert not unpinned, f"{lock.name}: requirements not pinned with ==: {unpinned}"


def test_cuda_lock_has_every_cpu_pin_at_the_same_version() -> None:
    cpu, cuda = pins(CPU_LOCK.read_text(encoding="utf-8")), pins(CUDA_LOCK.read_text(encoding="utf-8"))
    assert {"torch", "transformers"} <= cpu.keys()
    differ = {name: (version, cuda.get(name)) for name, version in cpu.items() if cuda.get(name) != version}
    assert not differ, f"lock-cuda.txt differs from lock-cpu.txt (cpu, cuda): {differ}; regenerate it"


def test_cuda_lock_is_the_cuda_build_for_the_base_images_cuda_and_python(
    dockerfile: list[tuple[str, str]],
) -> None:
    text = CUDA_LOCK.read_text(encoding="utf-8")
    cuda = pins(text)
    assert "nvidia-cudnn-cu13" in cuda and "triton" in cuda, "lock-cuda.txt lacks torch's CUDA packages"
    tag = _base_image(dockerfile).split("@")[0].rpartition(":")[2]
    base_cuda = ".".join(tag.split("-")[0].split(".")[:2])
    toolkit = ".".join(cuda["cuda-toolkit"].split(".")[:2])
    assert base_cuda == toolkit, f"base image CUDA {base_cuda}, torch's cuda-toolkit {cuda['cuda-toolkit']}"
    distro = tag.rsplit("-", 1)[1]
    assert distro in UBUNTU_PYTHON, f"base distro {distro}: add its python3 version to UBUNTU_PYTHON"
    resolved_for = re.search(r"--python-version\s+(\S+)", text)
    assert resolved_for, "lock-cuda.txt does not record the Python it was resolved for"
    assert resolved_for[1] == UBUNTU_PYTHON[distro], (
        f"lock-cuda.txt resolved for Python {resolved_for[1]}, base {distro} ships {UBUNTU_PYTHON[distro]}"
    )


def test_no_secret_is_baked_into_the_image(dockerfile: list[tuple[str, str]]) -> None:
    secret = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY", re.IGNORECASE)
    baked = [f"{keyword} {args}" for keyword, args in dockerfile
             if keyword in {"ENV", "ARG", "LABEL"} and secret.search(args)]
    assert not baked, f"secrets must be passed at run time (docker run -e HF_TOKEN): {baked}"


def test_dockerignore_keeps_the_host_venv_and_dvc_cache_out() -> None:
    patterns = [line.strip().strip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".venv", ".dvc/cache", ".dvc/config.local"):
        assert any(fnmatch(path, pattern) for pattern in patterns), f".dockerignore does not exclude {path}"
    assert not any(fnmatch(".dvc", pattern) or fnmatch(".git", pattern) for pattern in patterns), (
        "DVC needs .dvc and .git inside the image"
    )


def test_every_ignored_hadolint_rule_states_a_reason() -> None:
    lines = (REPO / ".hadolint.yaml").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        rule = re.fullmatch(r"\s*-\s*(DL\d{4}|SC\d{4})\s*", line)
        if rule:
            comments = " ".join(lines[max(0, number - 6):number])
            assert rule[1] in comments, f".hadolint.yaml ignores {rule[1]} without a comment saying why"


def _hadolint() -> str | None:
    local = REPO / ".venv" / "bin" / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


needs_hadolint = pytest.mark.skipif(
    _hadolint() is None, reason="hadolint not installed (bash scripts/lint_docker.sh installs it)"
)


@needs_hadolint
def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--config", str(REPO / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_hadolint
def test_hadolint_fails_a_dockerfile_running_as_root_from_latest(tmp_path: Path) -> None:
    # Guards the test above: the same binary and config must reject a bad Dockerfile.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\n", encoding="utf-8")
    result = subprocess.run(
        [_hadolint(), "--no-color", "--config", str(REPO / ".hadolint.yaml"), str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0 and "DL3007" in result.stdout, result.stdout + result.stderr
