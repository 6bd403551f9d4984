"""The house stays as built: ruff (pyflakes, import order, bugbear, pyupgrade, the core-never-imports-a-plugin
rule) and mypy on the core and the built-in plugins, both configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_passes():
    done = _run("ruff", "check", "w2sbench", "plugins", "tests", "benchmarks", "scripts")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_layering_rule_catches_a_core_module_importing_a_plugin(tmp_path):
    offender = ROOT / "w2sbench" / "_lint_probe.py"
    offender.write_text("from w2sbench_plugins.fairness import Fairness\n\n__all__ = ['Fairness']\n")
    try:
        done = _run("ruff", "check", str(offender.relative_to(ROOT)))
    finally:
        offender.unlink()
    assert done.returncode == 1 and "TID251 `w2sbench_plugins` is banned" in done.stdout


def test_mypy_passes_on_the_core_and_the_built_in_plugins():
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr
