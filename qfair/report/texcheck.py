"""Static checks of the hand-written LaTeX: no typed-in results, only generated inputs.

The paper may state a result only through ``\\qfnum{key}``, a generated table or a generated
figure. :func:`literal_numbers` finds digits that are not part of an allowed pattern (experiment
ids, lengths, labels, config names, single digits in mathematics); :func:`input_targets` lists the
files the LaTeX reads, so a test can check that each is hand-written prose or a stage output.
"""

from __future__ import annotations

import re
from pathlib import Path

# Arguments that are names, not prose: their digits never count.
NAME_ARGUMENTS = re.compile(
    r"\\(?:qfnum|label|ref|eqref|cref|Cref|autoref|cite[tp]?|citep|citet|input|include|includegraphics"
    r"|bibliography|bibliographystyle|usepackage|documentclass|graphicspath|pdftrailerid)\*?"
    r"(?:\[[^\]]*\])?\{(?:[^{}]|\{[^{}]*\})*\}"
)
# Digits that are not results: experiment ids, LaTeX lengths, the bit width a hypothesis is
# pre-registered at ("4-bit"), names of standards, data types, tokenizers and config names.
ALLOWED = re.compile(
    r"(?:EXP|REAL)-\d+[a-z]?(?:/\d+)?"
    r"|\b[2-8]-bit\b|\bSHA-256\b|\bUTF-8\b|\b(?:cl100k|o200k)\b"
    r"|\b[BCD]-\d+[a-z]?"
    r"|\d*\.?\d+\s*(?:\\(?:linewidth|textwidth|columnwidth|baselineskip)|pt|em|ex|mm|cm|in)\b"
    r"|\\texttt\{[a-z][a-z0-9.]*(?:-[a-z0-9.]+)*\}"  # a config name (w4a8, smoothquant-a0.5-w4a8-tensor)
    r"|\b(?:int8|nf4|fp4|bf16|fp16|float32|LLM\.int8\(\)|GPT3\.int8\(\))"
    r"|\\pdfinfoomitdate=1"
    r"|\\(?:renewcommand|setcounter)\{\\?[A-Za-z]+\}\{[\d.]+\}"  # float placement parameters
)
MATH = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\[.*?\\\]|\\begin\{(equation|align)\*?\}.*?\\end\{\1\*?\}", re.S)
DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
INPUTS = re.compile(r"\\(input|include|includegraphics|bibliography)(?:\[[^\]]*\])?\{([^{}]+)\}")
QFNUM = re.compile(r"\\qfnum\{([^{}]+)\}")


def strip_comments(tex: str) -> str:
    """Drop LaTeX comments (an unescaped ``%`` to the end of the line)."""
    return "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in tex.splitlines())


def literal_numbers(tex: str) -> list[str]:
    """Numbers typed into ``tex`` that are not allowed patterns.

    Inside mathematics, single digits (exponents, constants of a formula) are allowed; a decimal
    or multi-digit number is reported there too.
    """
    text = NAME_ARGUMENTS.sub(" ", strip_comments(tex))
    text = ALLOWED.sub(" ", text)
    found = []
    for match in MATH.finditer(text):
        found += [d for d in DIGITS.findall(match.group(0)) if len(d) > 1]
    found += DIGITS.findall(MATH.sub(" ", text))
    return found


def quoted_keys(tex: str) -> list[str]:
    """Every ``\\qfnum`` key the LaTeX uses."""
    return QFNUM.findall(strip_comments(tex))


def input_targets(tex: str) -> list[tuple[str, str]]:
    """``(command, argument)`` of every file-reading command (``\\input``, ``\\includegraphics``...)."""
    targets = []
    for command, argument in INPUTS.findall(strip_comments(tex)):
        for part in argument.split(","):
            targets.append((command, part.strip()))
    return targets


def defined_keys(numbers_tex: str) -> set[str]:
    """Keys defined by a generated ``numbers.tex``."""
    return set(re.findall(r"\\@namedef\{qf@num@([^{}]+)\}", numbers_tex))


def hand_written_sources(paper_dir: Path) -> list[Path]:
    """The LaTeX written by hand: ``paper/*.tex`` and ``paper/sections/*.tex``."""
    return sorted([*paper_dir.glob("*.tex"), *(paper_dir / "sections").glob("*.tex")])


def missing_keys(paper_dir: Path) -> dict[str, list[str]]:
    """Keys the hand-written LaTeX quotes that ``generated/numbers.tex`` does not define, per file."""
    defined = defined_keys((paper_dir / "generated" / "numbers.tex").read_text(encoding="utf-8"))
    problems = {}
    for path in hand_written_sources(paper_dir):
        unknown = sorted(set(quoted_keys(path.read_text(encoding="utf-8"))) - defined)
        if unknown:
            problems[str(path)] = unknown
    return problems
