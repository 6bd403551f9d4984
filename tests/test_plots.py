"""Report figures from real tiny runs: per-property bars and trade-off, and the size plot across runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SMALL_FAIRNESS
from w2sbench.cli import main
from w2sbench.results import load_results

pytestmark = pytest.mark.slow


def _check_image(path: Path) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 500
    assert pixels[..., :3].std() > 0.05  # something was drawn


def test_plots_for_one_run_and_across_strong_sizes(tiny_models, data_dir, tmp_path):
    runs = []
    for strong in ("bert-big", "neox"):
        out = tmp_path / f"run-{strong}"
        pair = f"{tiny_models['bert']}:{tiny_models[strong]}"
        assert main(["run", "--seeds", "0", "--pair", pair, "--properties", "fairness", "--finetune", "head", "--data-dir", str(data_dir),
                     "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet", *SMALL_FAIRNESS]) == 0
        runs.append(out)
    sizes = {load_results(r)["models"]["strong"]["params"] for r in runs}
    assert len(sizes) == 2 and {load_results(r)["models"]["strong"]["family"] for r in runs} == {"local"}

    single = tmp_path / "plots-one"
    assert main(["report", str(runs[0]), "--plots", str(single), "--quiet", "--bootstrap", "10"]) == 0
    names = sorted(p.name for p in single.iterdir())
    assert names == ["fairness-scores.png", "fairness-scores.svg", "fairness-tradeoff.png", "fairness-tradeoff.svg"]
    for png in single.glob("*.png"):
        _check_image(png)
    svg = (single / "fairness-tradeoff.svg").read_text()
    assert "<svg" in svg and "weak-wts-tft" in svg and "bootstrap over test examples" in svg

    both = tmp_path / "plots-both"
    assert main(["report", *map(str, runs), "--plots", str(both), "--quiet", "--bootstrap", "0"]) == 0
    names = {p.name for p in both.iterdir()}
    assert {"scaling-local-fairness.png", "scaling-local-fairness.svg", "run-neox-fairness-scores.png"} <= names
    _check_image(both / "scaling-local-fairness.png")
    assert "strong model parameters" in (both / "scaling-local-fairness.svg").read_text()
