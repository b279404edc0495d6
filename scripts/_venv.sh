# Sourced by scripts/run and scripts/test: make .venv with Python 3.11+ and install medpay into it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
  PY="$(command -v python3.11 || command -v python3)"
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "medpay needs Python 3.11+" >&2; exit 1; }
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,dev,load,otel]"
