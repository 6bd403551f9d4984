"""Shared fixtures: the offline data mirror, tiny models, and an isolated plugin set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_models import make_tiny_bert, make_tiny_neox
from w2sbench.training import precision

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The offline dataset mirror beside the checkout (../shared/data); tests need it."""
    path = Path(os.environ.get("W2SBENCH_DATA_DIR", SHARED_DATA))
    assert (path / "adult" / "adult.data").is_file(), f"the offline data mirror is missing at {path}"
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "bert": make_tiny_bert(root / "tiny-bert", layers=1, hidden=32),
        "bert-big": make_tiny_bert(root / "tiny-bert-big", layers=2, hidden=48),
        "neox": make_tiny_neox(root / "tiny-neox", layers=2, hidden=32),
    }


@pytest.fixture(scope="session")
def _dequantized_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of dequantized GGUF weights for the whole session: dequantizing SmolLM2 takes about 40 s
    and its result is keyed by the GGUF file's hash, so tests sharing it share nothing else."""
    return tmp_path_factory.mktemp("dequantized")


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, _dequantized_weights: Path) -> None:
    """Each test gets its own cache dir (but the session's dequantized weights), offline hub, and a fresh
    plugin set."""
    from w2sbench.plugin_manager import reset_plugins

    cache = tmp_path_factory.mktemp("w2s-cache")  # beside tmp_path: tests list what they write there
    (cache / "dequantized").symlink_to(_dequantized_weights, target_is_directory=True)
    monkeypatch.setenv("W2SBENCH_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("W2SBENCH_DISABLE_PLUGINS", raising=False)
    # Every task in the test's own process (tests/test_worker_pool.py asks for worker processes).
    monkeypatch.setenv("W2SBENCH_WORKERS", "1")
    # Training precision "auto" is bf16 on CPUs with native bf16 and fp32 elsewhere: pin fp32 so the expected
    # values do not depend on the CI machine's CPU flags. bf16 is tested where a test asks for it (test_speed).
    monkeypatch.setattr(precision, "CPU_AUTO_BF16", False)
    reset_plugins(None)
    yield
    reset_plugins(None)


SMALL_FAIRNESS = [
    "--option", "fairness.weak_train_size=120",
    "--option", "fairness.transfer_size=120",
    "--option", "fairness.val_size=20",
    "--option", "fairness.test_size=150",
    "--option", "fairness.max_length=48",
]


def install_fixture_package(name: str, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """pip-install ``tests/fixtures/<name>`` into a private folder, as a user installs a plugin package;
    returns the ``w2sbench`` command and the environment in which that package is importable."""
    return install_packages([Path(__file__).parent / "fixtures" / name], tmp_path)


def install_packages(folders: list[Path], tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """pip-install package folders into one private folder (``install_fixture_package`` for any folder)."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), *map(str, folders)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(Path(__file__).parents[1])]), "COLUMNS": "200"}
    return [sys.executable, "-m", "w2sbench.cli"], env


def adult_accuracy_from_predictions(run_dir: Path, data_dir: Path) -> dict[tuple[int, str], float]:
    """``{(seed, cell): accuracy}`` of a fairness run, recomputed from its predictions file and adult.test's
    labels (the share of test rows whose argmax class is the label): what a run's accuracy must equal."""
    import numpy as np

    from w2sbench.results import iter_predictions
    from w2sbench_plugins.fairness import load_adult

    labels = {r["_id"]: int(r["income"] == ">50K") for r in load_adult(str(data_dir / "adult" / "adult.test"), "test")}
    return {
        (r["seed"], r["cell"]): float(np.mean([labels[i] == int(np.argmax(p)) for i, p in zip(r["ids"], r["probabilities"], strict=True)]))
        for r in iter_predictions(run_dir)
        if r["property"] == "fairness" and r["test_set"] == "adult_test"
    }
