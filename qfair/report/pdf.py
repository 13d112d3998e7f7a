"""Build the paper's PDF with latexmk and refuse a PDF with undefined references or citations."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from qfair.errors import QfairError
from qfair.io import atomic_path
from qfair.report.texcheck import missing_keys

TEX_PACKAGES = (
    "latexmk",
    "texlive-latex-base",
    "texlive-latex-recommended",
    "texlive-latex-extra",
    "texlive-science",
    "lmodern",
)
UNDEFINED = re.compile(
    r"(Reference|Citation) `([^']+)' on page \d+ undefined|There were undefined (references|citations)"
)


class TexMissingError(QfairError, RuntimeError):
    """latexmk/pdflatex are not installed."""


class LatexBuildError(QfairError, RuntimeError):
    """The build failed or left undefined references or citations."""


def check_tex() -> None:
    missing = [tool for tool in ("latexmk", "pdflatex", "bibtex") if shutil.which(tool) is None]
    if missing:
        raise TexMissingError(
            f"TeX is not installed ({', '.join(missing)} not found), so the paper stage cannot build "
            "the PDF. "
            f"Install the Debian packages {' '.join(TEX_PACKAGES)} (bash scripts/setup.sh --with-tex does it "
            "as root), or run `dvc repro report` to stop before the PDF."
        )


def undefined_items(log: str) -> list[str]:
    """Undefined references and citations that a LaTeX log reports."""
    return sorted({match.group(2) or match.group(0) for match in UNDEFINED.finditer(log)})


def build_pdf(paper_dir: Path | str, target: Path | str, main: str = "main.tex") -> Path:
    """Run latexmk on ``paper_dir/main`` in a scratch directory; write the PDF to ``target``.

    The build is reproducible (no dates in the PDF: SOURCE_DATE_EPOCH is fixed) and fails on any
    LaTeX error, undefined reference or undefined citation. On failure the log is kept next to
    ``target`` as ``main.log``.
    """
    check_tex()
    paper_dir, target = Path(paper_dir).resolve(), Path(target)
    unknown = missing_keys(paper_dir)
    if unknown:
        listed = "; ".join(f"{path}: {', '.join(keys)}" for path, keys in unknown.items())
        raise LatexBuildError(f"the paper quotes numbers the report stage did not generate ({listed}); "
                              "is a config or hypothesis the text names missing from params.yaml?")
    env = dict(os.environ, SOURCE_DATE_EPOCH="0", FORCE_SOURCE_DATE="1")
    with tempfile.TemporaryDirectory(prefix="qfair-latex-") as scratch:
        command = [
            "latexmk",
            "-pdf",
            "-interaction=nonstopmode",
            "-halt-on-error",
            f"-output-directory={scratch}",
            main,
        ]
        result = subprocess.run(command, cwd=paper_dir, env=env, capture_output=True, text=True, check=False)
        log_path = Path(scratch) / Path(main).with_suffix(".log")
        log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""
        problems = undefined_items(log)
        if result.returncode != 0 or problems:
            target.parent.mkdir(parents=True, exist_ok=True)
            kept = target.parent / log_path.name
            kept.write_text(log or result.stdout + result.stderr, encoding="utf-8")
            detail = (
                f"undefined: {', '.join(problems)}" if problems else (result.stdout + result.stderr)[-2000:]
            )
            raise LatexBuildError(f"latexmk failed on {paper_dir / main} (log: {kept}); {detail}")
        with atomic_path(target) as temporary:
            shutil.copyfile(Path(scratch) / Path(main).with_suffix(".pdf"), temporary)
    return target


def render_page(pdf: Path | str, target: Path | str, page: int = 1, dpi: int = 100) -> Path:
    """Render one page of ``pdf`` to a PNG with poppler's ``pdftoppm`` (a preview for the README)."""
    if shutil.which("pdftoppm") is None:
        raise TexMissingError("pdftoppm not found: install the Debian package poppler-utils")
    target = Path(target)
    with tempfile.TemporaryDirectory(prefix="qfair-page-") as scratch:
        stem = Path(scratch) / "page"
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile",
                        str(pdf), str(stem)], check=True, capture_output=True)
        with atomic_path(target) as temporary:
            shutil.copyfile(stem.with_suffix(".png"), temporary)
    return target
