"""Switch the pipeline's profile: ``python -m qfair.profile paper`` (or ``embedded``).

A profile is a complete params file in profiles/<name>.yaml. Switching validates it with the
params schema first and only then replaces params.yaml atomically, byte for byte, so DVC sees
exactly the committed profile (``dvc status`` then shows which stages the switch invalidates).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qfair.io import write_text
from qfair.params import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"


def available(folder: Path = PROFILES) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.yaml"))


def switch(name: str, folder: Path = PROFILES, target: Path = ROOT / "params.yaml") -> Path:
    """Validate profiles/<name>.yaml and copy it over ``target``; return the profile's path."""
    source = folder / f"{name}.yaml"
    if not source.is_file():
        raise ParamsError(f"profile {name!r}: {source} not found; available: {available(folder)}")
    params = load_params(source)
    if params.profile != name:
        raise ParamsError(f"{source}: profile: {params.profile!r} does not match the file name {name!r}")
    write_text(target, source.read_text(encoding="utf-8"))
    return source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qfair.profile", description=__doc__.splitlines()[0])
    parser.add_argument("name", help=f"profile to switch to ({', '.join(available())})")
    args = parser.parse_args(argv)
    try:
        source = switch(args.name)
    except ParamsError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"params.yaml <- {source.relative_to(ROOT)} (validated); run `dvc status` / `dvc repro`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
