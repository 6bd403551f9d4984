"""CONTRIBUTING.md's example packages, as written: its marked code blocks are written to a folder, installed
with pip and run end to end through the `w2sbench` entry-point group, with the documented command."""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SMALL_FAIRNESS, install_packages
from w2sbench.results import load_results

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = {"w2sbench-example": "example_plugin", "w2sbench-sharpen": "strategy_plugin"}
_BLOCK = re.compile(r"<!-- example: (\S+) -->\n```[a-z]*\n(.*?)```", re.S)
_RUN = re.compile(r"<!-- example-run -->\n```[a-z]*\n(.*?)```", re.S)


def _doc() -> str:
    return (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")


def example_files() -> dict[str, str]:
    """{path in the example folder: text} of every block marked ``<!-- example: PATH -->``."""
    return {path: text for path, text in _BLOCK.findall(_doc())}


def example_commands() -> list[list[str]]:
    """The shell lines of the block marked ``<!-- example-run -->``, split into words."""
    (block,) = _RUN.findall(_doc())
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def test_the_examples_are_complete_packages_and_match_the_fixtures():
    files = example_files()
    packages = {path.split("/", 1)[0] for path in files}
    assert packages == set(FIXTURES)
    for path, text in files.items():
        package, inner = path.split("/", 1)
        fixture = ROOT / "tests" / "fixtures" / FIXTURES[package] / inner
        assert fixture.read_text(encoding="utf-8") == text, f"CONTRIBUTING.md's {path} differs from {fixture}"
        if path.endswith(".py"):
            compile(text, path, "exec")  # whole modules, not excerpts
    for package in packages:
        assert f"{package}/pyproject.toml" in files and any(p.startswith(f"{package}/") and p.endswith(".py") for p in files)
    install, listing, run = example_commands()
    assert install[:2] == ["pip", "install"] and sorted(install[2:]) == sorted(f"./{p}" for p in packages)
    assert listing == ["w2sbench", "plugins"] and run[:2] == ["w2sbench", "run"] and "--data-dir" in run


@pytest.mark.slow
def test_the_documented_packages_install_and_run_as_written(tiny_models, data_dir, tmp_path):
    folder = tmp_path / "examples"
    for path, text in example_files().items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text, encoding="utf-8")
    install, listing, run = example_commands()
    cli, env = install_packages([folder / p.removeprefix("./") for p in install[2:]], tmp_path)
    listed = subprocess.run([*cli, *listing[1:]], env=env, capture_output=True, text=True, check=True).stdout
    assert "w2sbench-example" in listed and "w2sbench-sharpen" in listed
    out = tmp_path / "run"
    # The documented command on the tiny pair, one seed and the tests' small sizes (later flags win).
    args = [str(data_dir) if a == "/path/to/mirror" else a for a in run[1:]]
    small = ["--pair", f"{tiny_models['bert']}:{tiny_models['bert-big']}", "--finetune", "head", "--seeds", "0",
             "--out", str(out), "--quiet", *SMALL_FAIRNESS]
    done = subprocess.run([*cli, *args, *small], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    props = load_results(out)["properties"]
    cells = props["label-balance"]["cells"]
    assert {"vanilla", "hard-labels", "sharpened", "two-teachers", "two-teachers:teachers"} <= set(cells)
    assert "positive_rate_error" in cells["hard-labels"]["summary"]
    recorded = props["label-balance"]["data"]["sources"]
    assert recorded == {"sst2/train.tsv": hashlib.sha256((data_dir / "sst2" / "train.tsv").read_bytes()).hexdigest()}
    assert cells["two-teachers"]["references"]["weak"] == "two-teachers:teachers"
    assert props["fairness"]["cells"]["sharpened"]["design"] == {"regularize_weak": False, "regularize_strong": False, "plain": False}
