"""The real pretrained offline models (installed from PyPI) through every fine-tune mode."""

from __future__ import annotations

import pytest

from tests.conftest import adult_accuracy_from_predictions
from w2sbench.cli import main
from w2sbench.results import load_results

TINY = [
    "--properties", "fairness", "--quiet",
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
    recomputed = adult_accuracy_from_predictions(out, data_dir)  # one seed: the mean is seed 0's accuracy
    assert {cell: c["summary"]["accuracy"]["mean"] for cell, c in cells.items()} == {cell: recomputed[(0, cell)] for cell in cells}


def test_default_cpu_settings_use_partial_fine_tuning():
    """What a default run on a CPU records (results.json's settings are these; runs in every mode above)."""
    from w2sbench.plugin_manager import get_plugins
    from w2sbench.runner import RunRequest, prepare

    settings, _ = prepare(RunRequest(device="cpu"), get_plugins())
    assert (settings.finetune_weak, settings.finetune_strong) == ("head", "full")
    assert settings.train["full"]["trainable_layers"] == 2


@pytest.mark.slow
def test_encoder_weak_decoder_strong_from_gguf(data_dir, tmp_path):
    """SmolLM2-135M ships as a Q4_1 GGUF: dequantized once, then used like any decoder."""
    out = tmp_path / "run"
    assert main(["run", "--seeds", "0", "--pair", "minilm-l0:smollm2-135m", "--finetune", "head", "--data-dir", str(data_dir),
                 "--out", str(out), "--strategies", "vanilla", *TINY]) == 0
    results = load_results(out)
    assert results["models"]["strong"]["gguf_file"].endswith(".gguf")
    assert set(results["properties"]["fairness"]["cells"]) >= {"weak", "ceiling", "vanilla"}


def test_decoder_pair_is_smollm2_embeddings_to_smollm2():
    from w2sbench.models import resolve_pair
    from w2sbench.plugin_manager import get_plugins

    pair = resolve_pair("decoder", get_plugins())
    assert (pair.weak.name, pair.strong.name) == ("smollm2-135m-l0", "smollm2-135m")
    assert (pair.weak.num_layers, pair.strong.num_layers) == (0, None)
    assert pair.weak.gguf_file == pair.strong.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    # 28,311,552 tied embedding parameters + 30 layers of 3,540,096 + a 576-wide final norm.
    assert (pair.weak.params, pair.strong.params) == (28_312_128, 134_515_008)
    assert pair.cpu_finetune == "head:full" and pair.cpu_train["full"] == {"trainable_layers": 2, "epochs": 3, "lr": 1e-3}
    assert pair.cpu_options == {"adversarial": {"radius": 0.01}}


@pytest.mark.parametrize(
    ("extra", "radius"),
    [
        ({}, 0.01),  # the pair's CPU option
        ({"options": {"adversarial": {"radius": "0.03"}}}, 0.03),  # the user's --option wins
        ({"finetune": "head:full"}, 0.05),  # chosen modes: the pair's CPU settings (training and options) do not apply
    ],
)
def test_decoder_pair_cpu_options_set_the_adversarial_radius(extra, radius):
    from w2sbench.plugin_manager import get_plugins
    from w2sbench.runner import RunRequest, prepare

    settings, _ = prepare(RunRequest(pair="decoder", metrics="adversarial,ood", device="cpu", **extra), get_plugins())
    assert settings.options["adversarial"]["radius"] == radius
    assert settings.options["ood"] == get_plugins().trust_properties.get("ood").options()  # other properties untouched
    assert settings.train["full"]["lr"] == (5e-5 if "finetune" in extra else 1e-3)  # 5e-5: the full mode's own default


@pytest.mark.slow
def test_decoder_pair_runs_privacy_with_address_extraction(data_dir, tmp_path):
    """Privacy's address extraction is the decoder-only metric: the strong SmolLM2 generates addresses."""
    out = tmp_path / "run"
    tiny = ["--option", "privacy.weak_train_size=30", "--option", "privacy.transfer_size=40", "--option", "privacy.val_size=10",
            "--option", "privacy.test_size=20", "--option", "privacy.mia_size=10", "--option", "privacy.reference_size=40",
            "--option", "privacy.extraction_size=5", "--option", "privacy.max_new_tokens=4", "--option", "privacy.max_length=32",
            "--option", "privacy.extraction_shots=1", "--option", "privacy.context_chars=100",
            "--train", "head.epochs=5"]
    # head:head keeps this a CI-sized check of the decoder path (real SmolLM2 weights, GGUF, extraction);
    # the pair's own head:full is what `w2sbench run --pair decoder` uses.
    assert main(["run", "--pair", "decoder", "--properties", "privacy", "--strategies", "vanilla", "--seeds", "0",
                 "--finetune", "head:head", "--data-dir", str(data_dir), "--out", str(out), "--quiet", *tiny]) == 0
    results = load_results(out)
    assert results["models"]["weak"]["num_layers"] == 0 and results["models"]["strong"]["gguf_file"].endswith(".gguf")
    cells = results["properties"]["privacy"]["cells"]
    for cell in ("weak", "ceiling", "vanilla"):  # every decoder cell is asked for addresses: 5 prompts each
        for metric in ("extraction_zero_shot", "extraction_few_shot", "extraction_context_members"):
            rate = cells[cell]["seeds"]["0"][metric]
            assert rate is not None and round(rate * 5, 9) == round(rate * 5), (cell, metric, rate)
