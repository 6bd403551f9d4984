"""The real pretrained offline models (installed from PyPI) through every fine-tune mode."""

from __future__ import annotations

import pytest

from w2sbench.cli import main
from w2sbench.results import load_results

TINY = [
    "--metrics", "fairness", "--quiet",
    "--option", "fairness.weak_train_size=60", "--option", "fairness.transfer_size=60",
    "--option", "fairness.val_size=10", "--option", "fairness.test_size=80", "--option", "fairness.max_length=32",
    "--train", "full.epochs=1", "--train", "lora.epochs=1", "--train", "head.epochs=5",
]


@pytest.mark.slow
@pytest.mark.parametrize("finetune", ["head", "head:lora", "head:full"])
def test_default_pair_runs_in_every_mode(finetune, data_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--seeds", "0", "--pair", "default", "--finetune", finetune, "--data-dir", str(data_dir), "--out", str(out), *TINY]) == 0
    results = load_results(out)
    assert results["models"]["weak"]["name"] == "minilm-l0" and results["models"]["strong"]["name"] == "minilm-l6"
    assert len(results["models"]["strong"]["sha256"]) == 64
    cells = results["properties"]["fairness"]["cells"]
    assert all(0.0 <= c["summary"]["accuracy"]["mean"] <= 1.0 for c in cells.values())


@pytest.mark.slow
def test_default_cpu_settings_use_partial_fine_tuning(data_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--seeds", "0", "--data-dir", str(data_dir), "--out", str(out), *TINY[:-6]]) == 0
    settings = load_results(out)["settings"]
    assert (settings["finetune_weak"], settings["finetune_strong"]) == ("head", "full")
    assert settings["train"]["full"]["trainable_layers"] == 2


@pytest.mark.slow
def test_encoder_weak_decoder_strong_from_gguf(data_dir, tmp_path):
    """SmolLM2-135M ships as a Q4_1 GGUF: dequantized once, then used like any decoder."""
    out = tmp_path / "run"
    assert main(["run", "--seeds", "0", "--pair", "minilm-l0:smollm2-135m", "--finetune", "head", "--data-dir", str(data_dir),
                 "--out", str(out), "--strategies", "vanilla", *TINY]) == 0
    results = load_results(out)
    assert results["models"]["strong"]["gguf_file"].endswith(".gguf")
    assert set(results["properties"]["fairness"]["cells"]) >= {"weak", "ceiling", "vanilla"}
