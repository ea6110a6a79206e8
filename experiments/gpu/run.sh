#!/usr/bin/env bash
# The whole GPU run in one command (see experiments/gpu/README.md):
#   bash experiments/gpu/run.sh --out "$OUT"            # on the GPU machine
#   bash experiments/gpu/run.sh --cpu --tiny --skip-install --out /tmp/rehearsal   # rehearsal
# Installs the carried wheels and the project (no network), runs the benchmarks, the
# many-draws measurement and every Luo study at paper scale within a wall-clock budget, and
# packs everything into <out>/gpu_results.tar.gz. Options: run.sh --help.
# Needs only python3 with torch before the install step (no hydra).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
elif command -v python3 >/dev/null 2>&1; then
  PY="python3"
elif command -v python >/dev/null 2>&1; then
  PY="python"
else
  echo "error: no python3 or python on PATH (set PYTHON=/path/to/python)" >&2
  exit 1
fi
cd "$REPO"
exec "$PY" experiments/gpu/run_all.py "$@"
