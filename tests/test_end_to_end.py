"""End-to-end runs of the real pipeline on tiny models and the offline data mirror."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SMALL_FAIRNESS, adult_accuracy_from_predictions, install_fixture_package
from w2sbench.cli import main
from w2sbench.results import iter_predictions, load_results

CELLS = {"weak", "weak-reg", "ceiling", "ceiling-reg", "vanilla", "weak-tft", "weak-wts-tft"}


def _run(tiny_models, data_dir, out: Path, *extra: str) -> int:
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    return main(["run", "--seeds", "0", "--pair", pair, "--properties", "fairness", "--data-dir", str(data_dir), "--out", str(out), "--quiet", *SMALL_FAIRNESS, *extra])


@pytest.mark.slow
def test_run_writes_every_cell_and_rerun_is_served_from_cache(tiny_models, data_dir, tmp_path):
    out = tmp_path / "run"
    assert _run(tiny_models, data_dir, out, "--finetune", "head:full", "--seeds", "0,1") == 0
    first = load_results(out)
    prop = first["properties"]["fairness"]
    assert set(prop["cells"]) == CELLS
    assert first["timing"]["stages_computed"] > 0
    # where the time went: every computed stage counted under its property and kind, with its seconds
    spent = first["timing"]["stages"]["fairness"]
    assert set(spent) == {"train", "predict"} and all(e["seconds"] > 0 for e in spent.values())
    assert sum(e["computed"] for e in spent.values()) == first["timing"]["stages_computed"]
    assert spent["train"]["computed"] == 2 * len(CELLS)  # each cell trained once per seed
    recomputed = adult_accuracy_from_predictions(out, data_dir)
    assert len(recomputed) == 2 * len(CELLS)
    for (seed, cell), accuracy in recomputed.items():
        scores = prop["cells"][cell]["seeds"][str(seed)]
        assert scores["accuracy"] == accuracy, (seed, cell)
        assert "demographic_parity_difference" in scores
    assert prop["cells"]["weak-wts-tft"]["references"] == {"weak": "weak-reg", "ceiling": "ceiling-reg"}
    assert set(prop["cells"]["vanilla"]["gap_recovered"]) >= {"accuracy", "demographic_parity_difference"}
    assert first["models"]["weak"]["sha256"] and first["models"]["strong"]["sha256"]
    records = list(iter_predictions(out))
    assert len(records) == 2 * len(CELLS)
    assert all(len(r["ids"]) == len(r["probabilities"]) == 150 for r in records)

    assert _run(tiny_models, data_dir, out, "--finetune", "head:full", "--seeds", "0,1") == 0
    second = load_results(out)
    assert second["timing"]["stages_computed"] == 0 and second["timing"]["stages"] == {"fairness": {}}
    # timing is the re-run's own; its history keeps the cold run's time and stage counts
    assert second["timing"]["history"][0] == first["timing"]["history"][0]
    assert [h["stages_computed"] for h in second["timing"]["history"]] == [first["timing"]["stages_computed"], 0]
    assert second["properties"] == first["properties"]  # the second run read fairness' prepared data
    assert [p.name.split("-")[0] for p in (out / "cache" / "prepared-data").iterdir()] == ["fairness"]


@pytest.mark.slow
def test_shared_stages_are_trained_once(tiny_models, data_dir, tmp_path):
    out = tmp_path / "run"
    assert _run(tiny_models, data_dir, out, "--finetune", "head") == 0
    trained = list((out / "cache" / "train").iterdir())
    # weak, weak-reg, ceiling, ceiling-reg, and one strong model per strategy: 7, not 9
    assert len(trained) == 7


def test_report_rerenders_from_results_file(tiny_models, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(tiny_models, data_dir, out, "--finetune", "head") == 0
    capsys.readouterr()
    assert main(["report", str(out), "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    for cell in CELLS:
        assert cell in text
    assert main(["report", str(out), "--json", "--bootstrap", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["metrics"] == ["fairness"]


@pytest.mark.slow
def test_third_party_plugin_installed_with_pip_runs(tiny_models, data_dir, tmp_path):
    cli, env = install_fixture_package("example_plugin", tmp_path)
    listed = subprocess.run([*cli, "plugins"], env=env, capture_output=True, text=True, check=True).stdout
    assert "w2sbench-example" in listed and "0.2.0" in listed
    strategies = subprocess.run([*cli, "list", "strategies"], env=env, capture_output=True, text=True, check=True).stdout
    assert "hard-labels" in strategies
    out = tmp_path / "run"
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    done = subprocess.run(
        [*cli, "run", "--seeds", "0", "--pair", pair, "--properties", "label-balance", "--strategies", "vanilla,hard-labels",
         "--finetune", "head", "--data-dir", str(data_dir), "--out", str(out), "--quiet"],
        env=env, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    cells = load_results(out)["properties"]["label-balance"]["cells"]
    assert {"vanilla", "hard-labels"} <= set(cells)
    assert "positive_rate_error" in cells["hard-labels"]["summary"]


@pytest.mark.slow
def test_partial_fine_tuning_predicts_with_the_saved_model(tiny_models, data_dir, tmp_path):
    """Partial fine-tuning trains and predicts through cached frozen-layer states; the saved parameters alone
    (top layers and the model's own head, run as a plain full forward) must give the same predictions, or a
    resumed run (another process) would evaluate a different model than the one it trained."""
    import numpy as np
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from w2sbench.files import stable_hash
    from w2sbench.interfaces import DataContext
    from w2sbench.training.classifier import Classifier
    from w2sbench_plugins.fairness import Fairness

    out = tmp_path / "run"
    assert _run(tiny_models, data_dir, out, "--finetune", "head:full", "--train", "full.trainable_layers=1",
                "--strategies", "vanilla") == 0
    options = dict(o.removeprefix("fairness.").split("=") for o in SMALL_FAIRNESS if o.startswith("fairness."))
    metric = Fairness()
    test = metric.load_data(DataContext(data_dir, tmp_path / "dl"), metric.options(options)).tests["adult_test"]
    predicted = {}
    for path in (out / "cache" / "predict").glob("*/key.json"):
        key = json.loads(path.read_text())
        if key["data"] == test.fingerprint():
            predicted[key["model_stage"]] = np.load(path.parent / "probabilities.npy")
    checked = 0
    for path in (out / "cache" / "train").glob("*/key.json"):
        key = json.loads(path.read_text())
        if key["mode"] != "full":
            continue
        model = Classifier(AutoModel.from_pretrained(tiny_models["bert-big"]), AutoTokenizer.from_pretrained(tiny_models["bert-big"]),
                           2, key["max_length"])
        model.load_state_dict(load_file(str(path.parent / "trainable.safetensors")), strict=False)
        np.testing.assert_allclose(model.predict_proba(test.texts), predicted[stable_hash(key)], atol=2e-3)
        checked += 1
    assert checked == 3  # ceiling, ceiling-reg, vanilla
