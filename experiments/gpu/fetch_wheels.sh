#!/usr/bin/env bash
# Fetch the three pure-Python wheels the GPU machine lacks (hydra-core, omegaconf,
# antlr4-python3-runtime) into .whl/ at the repository root (git-ignored), on a machine that
# can reach a package index. Carry .whl to the GPU machine; experiments/gpu/run.sh installs
# them there with --no-index. The versions are those of the project's development venv;
# override with HYDRA_VERSION, OMEGACONF_VERSION, ANTLR_VERSION, the folder with WHEEL_DIR,
# the interpreter with PYTHON.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
WHEEL_DIR="${WHEEL_DIR:-$REPO/.whl}"
HYDRA_VERSION="${HYDRA_VERSION:-1.3.8}"
OMEGACONF_VERSION="${OMEGACONF_VERSION:-2.3.1}"
ANTLR_VERSION="${ANTLR_VERSION:-4.9.3}"  # omegaconf 2.3 pins antlr4-python3-runtime==4.9.*

mkdir -p "$WHEEL_DIR"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$WHEEL_DIR" \
  "hydra-core==$HYDRA_VERSION" "omegaconf==$OMEGACONF_VERSION"
# antlr4-python3-runtime 4.9.3 is published as a source archive only: take its wheel if the
# index has one, else build the (pure-Python, py3-none-any) wheel from the source archive.
if ! "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$WHEEL_DIR" \
  "antlr4-python3-runtime==$ANTLR_VERSION" 2>/dev/null; then
  "$PYTHON" -m pip wheel --quiet --no-deps -w "$WHEEL_DIR" "antlr4-python3-runtime==$ANTLR_VERSION"
fi

missing=0
for pattern in "hydra_core-$HYDRA_VERSION-" "omegaconf-$OMEGACONF_VERSION-" \
  "antlr4_python3_runtime-$ANTLR_VERSION-"; do
  if ! compgen -G "$WHEEL_DIR/${pattern}*none-any.whl" >/dev/null; then
    echo "error: no pure-Python wheel ${pattern}*.whl in $WHEEL_DIR" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 1
ls -1 "$WHEEL_DIR"/*.whl
