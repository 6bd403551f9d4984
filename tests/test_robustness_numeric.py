"""Non-finite numbers (issue 13, item 1) and DP-SGD accounting (item 4).

Training that meets a NaN/Infinity stops with the cell and the setting to change; nothing
non-finite is cached or written; score functions refuse non-finite probabilities; every
Poisson-sampled DP-SGD batch, an empty one included, is a step the accountant counts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from w2sbench.cli import main
from w2sbench.design import task_scores
from w2sbench.errors import W2SBenchError
from w2sbench.files import atomic_write_json
from w2sbench.interfaces import NoRegularizer, PenaltyContext, Regularizer
from w2sbench.stage_cache import StageCache
from w2sbench.training.config import TrainConfig
from w2sbench.training.dp import dp_delta
from w2sbench.training.trainer import train_classifier
from w2sbench_plugins.privacy import DPSGD

ISSUE_SIZES = [
    "--option", "fairness.weak_train_size=40", "--option", "fairness.transfer_size=40",
    "--option", "fairness.val_size=10", "--option", "fairness.test_size=50",
]


def _issue_run(tiny_models, data_dir, out: Path, lr: str) -> list[str]:
    return [
        "run", "--quiet", "--data-dir", str(data_dir), "--pair", f"{tiny_models['bert']}:{tiny_models['bert-big']}",
        "--properties", "fairness", "--strategies", "vanilla", "--finetune", "head", "--train", f"head.lr={lr}",
        *ISSUE_SIZES, "--out", str(out),
    ]


def _non_finite_json(folder: Path) -> list[Path]:
    bad = []
    for path in folder.rglob("*.json"):
        try:
            json.loads(path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError:
            bad.append(path)
    return bad


def test_diverged_training_names_cell_and_setting_and_caches_nothing(tiny_models, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(_issue_run(tiny_models, data_dir, out, "1e6"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert "error: Training fairness s0 weak (head mode) met a non-finite loss" in err
    assert "fix: Lower the learning rate (--train head.lr, now 1e+06)" in err
    assert "nothing of this stage was cached" in err
    assert "Traceback" not in err and "this is a bug" not in err
    cache = Path(os.environ["W2SBENCH_CACHE"])  # the test's own (tests/conftest.py)
    assert not (cache / "train").exists() or not any((cache / "train").iterdir())
    assert not (out / "results.json").exists()
    assert _non_finite_json(tmp_path) == _non_finite_json(cache) == []
    # the same command fails the same way (nothing non-finite was cached to crash on) ...
    assert main(_issue_run(tiny_models, data_dir, out, "1e6")) == 2
    assert "met a non-finite loss" in capsys.readouterr().err
    # ... and after the setting changes, the stage trains (the run computed nothing: no --reconfigure needed)
    assert main(_issue_run(tiny_models, data_dir, out, "1e-3")) == 0, capsys.readouterr().err
    assert (out / "results.json").is_file() and _non_finite_json(tmp_path) == _non_finite_json(cache) == []


def _head_training(targets: np.ndarray, regularizer: Regularizer, lr: float = 1e-2, epochs: int = 2, batch: int = 4):
    from torch import nn

    from w2sbench.training.classifier import Classifier

    class _Stub(Classifier):
        def __init__(self) -> None:  # only what head mode touches
            nn.Module.__init__(self)
            self.norm = nn.LayerNorm(3, elementwise_affine=False)
            self.head = nn.Linear(3, 2)

        @property
        def device(self) -> torch.device:
            return torch.device("cpu")

    n = len(targets)
    feats = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    texts = [f"row {i}" for i in range(n)]
    lookup = dict(zip(texts, feats, strict=True))
    return train_classifier(
        _Stub(), "head", texts, targets, {}, regularizer, TrainConfig(epochs=epochs, lr=lr, batch_size=batch), seed=0,
        features=lambda t: np.stack([lookup[x] for x in t]),
    )


def test_non_finite_targets_are_refused_before_training():
    targets = np.eye(2)[[0, 1, 0, 1]]
    targets[2] = [np.nan, np.nan]
    with pytest.raises(W2SBenchError, match=r"met a non-finite target \(1 of 4 rows\) before the first step"):
        _head_training(targets, NoRegularizer())


class _NaNGradient(Regularizer):
    """A penalty whose value is 0 but whose gradient is NaN (the derivative of sqrt at 0)."""

    name = "nan-gradient"
    weight = 1.0

    def penalty(self, ctx: PenaltyContext) -> torch.Tensor:
        return torch.sqrt(((ctx.logits - ctx.logits.detach()) ** 2).sum())


def test_non_finite_gradient_stops_training_with_the_weight_named():
    with pytest.raises(W2SBenchError, match=r"met a non-finite gradient at epoch 1, step 1") as info:
        _head_training(np.eye(2)[[0, 1, 0, 1]], _NaNGradient())
    assert "--train head.lr, now 0.01" in info.value.fix


def test_score_functions_refuse_non_finite_probabilities():
    probs = np.array([[0.2, 0.8], [np.nan, np.nan], [0.5, np.inf]])
    with pytest.raises(W2SBenchError) as info:
        task_scores(np.array([1, 0, 1]), probs)
    assert info.value.problem == (
        "The predicted probabilities for the main test set hold non-finite values (2 of 3 rows): the model diverged "
        "during training."
    )


def test_no_json_writer_writes_nan(tmp_path):
    with pytest.raises(W2SBenchError, match=r"Refusing to write run.json: the value at /options/fairness/weight is not finite"):
        atomic_write_json(tmp_path / "run.json", {"options": {"fairness": {"weight": float("nan")}}})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,write", [
    ("report.json", lambda d: (d / "report.json").write_text(json.dumps({"final_loss": float("nan")}))),
    ("probabilities.npy", lambda d: np.save(d / "probabilities.npy", np.array([[0.5, np.inf]]))),
])
def test_stage_cache_refuses_non_finite_files(tmp_path, name, write):
    cache = StageCache(tmp_path / "cache")
    with pytest.raises(W2SBenchError, match=f"Refusing to cache the train stage: {name} holds a non-finite value"):
        cache.compute("train", {"k": 1}, write)
    assert cache.get("train", {"k": 1}) is None
    assert not (tmp_path / "cache" / "train").exists() or list((tmp_path / "cache" / "train").iterdir()) == []


# --------------------------------------------------------------------------- DP-SGD accounting (item 4)


def test_every_poisson_batch_is_a_counted_step_10_rows_batch_2_20_epochs():
    from opacus.accountants import RDPAccountant

    captured = {}
    original = RDPAccountant.step

    def spy(self, *, noise_multiplier, sample_rate):
        captured.setdefault("sigma", noise_multiplier)
        captured["q"] = sample_rate
        captured["n"] = captured.get("n", 0) + 1
        return original(self, noise_multiplier=noise_multiplier, sample_rate=sample_rate)

    RDPAccountant.step = spy
    try:
        report = _head_training(np.eye(2)[np.arange(10) % 2], DPSGD(8.0, None, 1.0), lr=1e-2, epochs=20, batch=2)
    finally:
        RDPAccountant.step = original
    assert report.steps == 100 and captured["n"] == 100 and captured["q"] == pytest.approx(0.2)
    assert report.delta == pytest.approx(1 / 1000)  # the default 1 / (100 N)
    reference = RDPAccountant()
    reference.history = [(captured["sigma"], 0.2, 100)]
    assert report.epsilon == pytest.approx(reference.get_epsilon(1 / 1000), rel=1e-12)
    assert 7.5 < report.epsilon <= 8.0


def test_delta_defaults_well_below_one_over_n_and_refuses_at_least_that():
    assert dp_delta(None, 1) == pytest.approx(0.01)
    assert dp_delta(0.0, 96) == pytest.approx(1 / 9600)
    assert dp_delta(1e-5, 1000) == 1e-5
    with pytest.raises(W2SBenchError, match=r"DP-SGD delta 1 is not below 1/N = 1 for the 1 training rows"):
        dp_delta(1.0, 1)
    with pytest.raises(W2SBenchError, match=r"DP-SGD delta 0.01 is not below 1/N = 0.01 for the 100 training rows"):
        dp_delta(0.01, 100)


def test_privacy_option_delta_at_least_one_over_n_is_refused_before_running():
    from w2sbench_plugins.privacy import Privacy

    metric = Privacy()
    with pytest.raises(W2SBenchError) as info:
        metric.regularizer(metric.options({"delta": "0.001", "weak_train_size": "1000", "transfer_size": "500"}))
    assert info.value.problem == (
        "privacy.delta is 0.001; it must be below 1/N = 0.001 (N = 1000, the largest DP-SGD training split), "
        "or 0 for the default 1/(100 N)."
    )
