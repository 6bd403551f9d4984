"""Strategies end to end on the tiny models: shared teachers, cache reuse, reference cells, plugin packages."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SMALL_FAIRNESS, install_fixture_package
from w2sbench import hookimpl
from w2sbench.cli import main
from w2sbench.interfaces import Strategy, TransferLoss
from w2sbench.leaderboard import make_validator, validate_files
from w2sbench.plugin_manager import Plugins, reset_plugins
from w2sbench.results import iter_predictions, load_results
from w2sbench_plugins.strategies import ensemble


class _NaNLoss(TransferLoss):
    name = "nan"

    def __call__(self, logits, targets, weights, progress):
        return (logits * float("nan")).sum()


class _InCode:
    """Strategies registered in code for these tests: an ensemble of one and a strategy whose loss is NaN."""

    @hookimpl
    def w2sbench_register_strategies(self) -> list[Strategy]:
        return [ensemble(k=1, name="ensemble-1"), Strategy("nan-loss", "a broken loss", False, False, loss=_NaNLoss())]


@pytest.fixture
def in_code_strategies():
    reset_plugins(Plugins(extra_plugins=[("in-code", _InCode())]))
    yield
    reset_plugins(None)


def _run(tiny_models, data_dir, out: Path, strategies: str) -> int:
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    return main(["run", "--pair", pair, "--properties", "fairness", "--data-dir", str(data_dir), "--out", str(out), "--quiet",
                 "--finetune", "head", "--strategies", strategies, "--seeds", "0", *SMALL_FAIRNESS])


def _trained(out: Path) -> list[dict]:
    """The key of every train stage that computed.log lists, in order."""
    lines = (out / "cache" / "computed.log").read_text().split()
    return [json.loads((out / "cache" / line / "key.json").read_text()) for line in lines if line.startswith("train/")]


@pytest.mark.slow
def test_teachers_are_trained_once_and_a_rerun_computes_nothing(tiny_models, data_dir, tmp_path, in_code_strategies):
    out = tmp_path / "run"
    strategies = "vanilla,weak-tft,weak-wts-tft,ensemble,aux-conf,ensemble-1"
    assert _run(tiny_models, data_dir, out, strategies) == 0
    keys = _trained(out)
    by_model = Counter(json.dumps(k["model"], sort_keys=True) for k in keys)
    # weak models: weak, weak-reg and the ensemble's two other members (its first member is `weak` itself);
    # strong: ceiling, ceiling-reg, vanilla, weak-tft, weak-wts-tft, ensemble, aux-conf (ensemble-1 is vanilla)
    assert sorted(by_model.values()) == [4, 7]
    assert len({json.dumps(k, sort_keys=True) for k in keys}) == len(keys)
    assert sum("transfer_loss" in k for k in keys) == 1  # aux-conf's; the paper strategies' keys are unchanged

    result = load_results(out)
    cells = result["properties"]["fairness"]["cells"]
    assert cells["ensemble:teachers"]["role"] == "teachers"
    assert cells["ensemble"]["references"] == {"weak": "ensemble:teachers", "ceiling": "ceiling"}
    assert cells["ensemble-1"]["references"] == cells["vanilla"]["references"] == {"weak": "weak", "ceiling": "ceiling"}
    assert len(cells["ensemble:teachers"]["train"]["0"]["teachers"]) == 3
    records = {r["cell"]: r["probabilities"] for r in iter_predictions(out)}
    assert records["ensemble-1"] == records["vanilla"]  # an ensemble of one is the weak model, bit for bit
    assert set(records) == set(cells)

    assert _run(tiny_models, data_dir, out, strategies) == 0
    assert load_results(out)["timing"]["stages_computed"] == 0

    path = tmp_path / "sub" / "lab.json"
    path.parent.mkdir()
    assert main(["leaderboard", "export", str(out), "--to", str(path)]) == 0
    (checked,) = validate_files([path], make_validator(data_dir, None))
    assert checked.problems == []


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_naming_the_package(tiny_models, data_dir, tmp_path, in_code_strategies, capsys):
    assert _run(tiny_models, data_dir, tmp_path / "run", "nan-loss") != 0
    err = capsys.readouterr().err
    assert 'Strategy "nan-loss" (plugin "in-code", package tests)' in err and "nan" in err


@pytest.mark.slow
def test_third_party_strategy_package_runs(tiny_models, data_dir, tmp_path):
    cli, env = install_fixture_package("strategy_plugin", tmp_path)
    listed = subprocess.run([*cli, "list", "strategies"], env=env, capture_output=True, text=True, check=True).stdout
    assert "sharpened" in listed and "two-teachers" in listed
    out = tmp_path / "run"
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    done = subprocess.run(
        [*cli, "run", "--pair", pair, "--properties", "fairness", "--strategies", "vanilla,sharpened,two-teachers",
         "--finetune", "head", "--seeds", "0", "--data-dir", str(data_dir), "--out", str(out), "--quiet", *SMALL_FAIRNESS],
        env=env, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    results = load_results(out)
    cells = results["properties"]["fairness"]["cells"]
    assert {"vanilla", "sharpened", "two-teachers", "two-teachers:teachers"} <= set(cells)
    assert cells["two-teachers"]["references"]["weak"] == "two-teachers:teachers"
    assert "accuracy" in cells["sharpened"]["gap_recovered"]
    losses = [k["transfer_loss"] for k in _trained(out) if "transfer_loss" in k]
    source = Path(__file__).parent / "fixtures" / "strategy_plugin" / "w2sbench_sharpen" / "__init__.py"
    sharpened = {"loss": "w2sbench_sharpen.SharpenedLoss", "temperature": 0.5, "code": hashlib.sha256(source.read_bytes()).hexdigest()[:20]}
    assert losses == [sharpened]
    recorded = results["strategies"]
    assert {k: recorded["sharpened"][k] for k in ("plugin", "package", "version", "loss")} == {
        "plugin": "sharpen", "package": "w2sbench-sharpen", "version": "0.1.0", "loss": sharpened,
    }
    assert recorded["two-teachers"]["teachers"] == [
        {"seed_offset": 0, "part": [0, 1], "regularized": False}, {"seed_offset": 1, "part": [0, 1], "regularized": False},
    ]
    assert recorded["vanilla"]["loss"] is None and recorded["vanilla"]["package"] == "w2sbench"
