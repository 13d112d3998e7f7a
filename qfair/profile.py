"""Switch the pipeline's profile: ``python -m qfair.profile paper`` (or ``embedded``).

A profile is a complete params file in profiles/<name>.yaml. Switching validates it with the
params schema first and only then replaces params.yaml atomically, byte for byte, so DVC sees
exactly the committed profile (``dvc status`` then shows which stages the switch invalidates).
A params.yaml that matches no profile (hand-edited) is not overwritten unless ``--force`` is
given; then it is kept as params.yaml.bak first.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from qfair.errors import QfairError
from qfair.io import write_text
from qfair.params import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"


class ProfileError(QfairError):
    """A profile switch that would lose work; the message says how to go ahead."""


def available(folder: Path = PROFILES) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.yaml"))


def backup_path(target: Path) -> Path:
    """Where ``--force`` keeps a hand-edited params file: params.yaml -> params.yaml.bak."""
    return target.with_name(target.name + ".bak")


def is_hand_edited(target: Path, folder: Path = PROFILES) -> bool:
    """True if ``target`` exists and is byte-identical to no profile in ``folder``."""
    if not target.is_file():
        return False
    content = target.read_bytes()
    return all(content != path.read_bytes() for path in sorted(folder.glob("*.yaml")))


def switch(name: str, folder: Path = PROFILES, target: Path = ROOT / "params.yaml",
           force: bool = False) -> tuple[Path, Path | None]:
    """Validate profiles/<name>.yaml and copy it over ``target``.

    Returns the profile's path and the backup written (None when ``target`` was a profile).
    Raises :class:`ProfileError` if ``target`` matches no profile and ``force`` is False.
    """
    source = folder / f"{name}.yaml"
    if not source.is_file():
        raise ParamsError(f"profile {name!r}: {source} not found; available: {available(folder)}")
    params = load_params(source)
    if params.profile != name:
        raise ParamsError(f"{source}: profile: {params.profile!r} does not match the file name {name!r}")
    backup = None
    if is_hand_edited(target, folder):
        if not force:
            raise ProfileError(
                f"{target} differs from every profile in {folder} (hand-edited?) and would be lost; "
                f"save it as a profile in {folder}/, or rerun with --force to overwrite it "
                f"(it is kept as {backup_path(target).name})")
        backup = backup_path(target)
        write_text(backup, target.read_text(encoding="utf-8"))  # before the target changes
    write_text(target, source.read_text(encoding="utf-8"))
    return source, backup


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def main(argv: list[str] | None = None, folder: Path = PROFILES, target: Path = ROOT / "params.yaml") -> int:
    """The command line; an expected error is one line on stderr and exit status 2, as in a stage
    (qfair.stage.run_stage), with the traceback only when QFAIR_DEBUG=1."""
    parser = argparse.ArgumentParser(prog="python -m qfair.profile", description=__doc__.splitlines()[0])
    parser.add_argument("name", help=f"profile to switch to ({', '.join(available(folder))})")
    parser.add_argument("--force", action="store_true",
                        help="overwrite a params.yaml that matches no profile (kept as params.yaml.bak)")
    args = parser.parse_args(argv)
    try:
        source, backup = switch(args.name, folder, target, force=args.force)
    except QfairError as error:
        if os.environ.get("QFAIR_DEBUG") == "1":
            raise
        print(f"qfair profile: error: {error}", file=sys.stderr)
        print("  (QFAIR_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    if backup is not None:
        print(f"{_shown(target)} matched no profile: kept as {_shown(backup)}")
    print(f"{_shown(target)} <- {_shown(source)} (validated); run `dvc status` / `dvc repro`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
