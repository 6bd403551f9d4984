"""Strategies as plugins: transfer losses pinned against hand-computed values, curation, teachers and cells."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from w2sbench.errors import W2SBenchError
from w2sbench.files import source_hash
from w2sbench.interfaces import Strategy, Teacher, TransferLoss, reference_cells
from w2sbench.teachers import GuardedLoss, strategy_columns, teacher_label
from w2sbench.training.losses import (
    AuxConfLoss,
    LogConfLoss,
    ProductLoss,
    prior_threshold_labels,
    ramp,
    weighted_cross_entropy,
)
from w2sbench_plugins.strategies import VANILLA, WEAK_TFT, WEAK_WTS_TFT, ConfidenceFilter, ensemble, w2sbench_register_strategies

# Four rows whose strong probabilities of class 0 are 0.8, 0.6, 0.3, 0.1.
P0 = [0.8, 0.6, 0.3, 0.1]
LOGITS = torch.tensor([[math.log(p / (1 - p)), 0.0] for p in P0])
# Soft weak labels; their class-1 prior is (0.1 + 0.4 + 0.2 + 0.3) / 4 = 0.25.
WEAK = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.7, 0.3]])
ONES = torch.ones(4)


def _ce(target_rows: list[list[float]], weights: list[float] | None = None) -> float:
    """Weighted mean cross-entropy of the rows above, by hand."""
    weights = weights or [1.0] * 4
    rows = [-(t[0] * math.log(p) + t[1] * math.log(1 - p)) for t, p in zip(target_rows, P0)]
    return sum(w * r for w, r in zip(weights, rows)) / sum(weights)


def test_weighted_cross_entropy_uses_row_weights():
    weights = [1.0, 0.0, 2.0, 1.0]
    got = weighted_cross_entropy(LOGITS, WEAK, torch.tensor(weights))
    assert float(got) == pytest.approx(_ce(WEAK.tolist(), weights), rel=1e-6)
    assert float(weighted_cross_entropy(LOGITS, WEAK, torch.zeros(4))) == 0.0


def test_warm_up_ramps_linearly_instead_of_jumping():
    # the reference's coefficient is step_frac during the warm-up, then jumps to 1; here it ramps to the weight
    assert [ramp(p, 0.1, 0.5) for p in (0.0, 0.05, 0.1, 0.5, 1.0)] == [0.0, 0.25, 0.5, 0.5, 0.5]
    assert ramp(0.0, 0.0, 0.5) == 0.5


def test_hardening_thresholds_at_the_class_prior():
    probs = torch.softmax(LOGITS, -1)
    # prior 0.25: threshold = 0.25-quantile of p0 = 0.1 + 0.75 * (0.3 - 0.1) = 0.25; only p0 = 0.1 is below
    assert prior_threshold_labels(probs, 0.25).tolist() == [[1, 0], [1, 0], [1, 0], [0, 1]]
    # prior 0.5: threshold = 0.45; p0 = 0.3 and 0.1 are below
    assert prior_threshold_labels(probs, 0.5).tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]


@pytest.mark.parametrize("progress, coef", [(0.0, 0.0), (0.05, 0.25), (0.5, 0.5)])
def test_aux_conf_loss_by_hand(progress, coef):
    hard = [[1, 0], [1, 0], [1, 0], [0, 1]]  # thresholded at the weak labels' prior 0.25
    target = [[(1 - coef) * w + coef * h for w, h in zip(wr, hr)] for wr, hr in zip(WEAK.tolist(), hard)]
    got = AuxConfLoss(aux_weight=0.5, warmup=0.1)(LOGITS, WEAK, ONES, progress)
    assert float(got) == pytest.approx(_ce(target), rel=1e-6)


def test_aux_conf_gradient_does_not_flow_through_the_hardened_target():
    logits = LOGITS.clone().requires_grad_(True)
    AuxConfLoss()(logits, WEAK, ONES, 1.0).backward()
    coef = 0.5
    hard = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    target = (1 - coef) * WEAK + coef * hard
    expected = (torch.softmax(LOGITS, -1) - target) / 4  # d mean CE / d logits with a constant target
    assert torch.allclose(logits.grad, expected, atol=1e-6)


def test_product_loss_by_hand():
    target = []
    for (w0, w1), p in zip(WEAK.tolist(), P0):
        a, b = p * w0, (1 - p) * w1
        target.append([a / (a + b), b / (a + b)])
    assert float(ProductLoss()(LOGITS, WEAK, ONES, 0.3)) == pytest.approx(_ce(target), rel=1e-6)


def test_product_loss_of_opposed_certain_experts_is_finite():
    logits = torch.tensor([[200.0, -200.0]])
    got = ProductLoss()(logits, torch.tensor([[0.0, 1.0]]), torch.ones(1), 0.0)
    assert torch.isfinite(got) and float(got) == 0.0


def test_log_conf_loss_balances_the_batch_by_hand():
    labels = [0.1, 0.4, 0.2, 0.3]
    odds = [math.log(x + 1e-7) - math.log(1 - x + 1e-7) for x in labels]
    mean = sum(odds) / 4
    balanced = [1 / (1 + math.exp(-(o - mean))) for o in odds]
    hard = [[1, 0], [1, 0], [0, 1], [0, 1]]  # prior 0.5 after balancing: threshold 0.45
    coef = 0.5 * 0.02 / 0.1
    target = [[(1 - coef) * (1 - y) + coef * h[0], (1 - coef) * y + coef * h[1]] for y, h in zip(balanced, hard)]
    got = LogConfLoss(aux_weight=0.5, warmup=0.1)(LOGITS, WEAK, ONES, 0.02)
    assert float(got) == pytest.approx(_ce(target), rel=1e-6)


def test_log_conf_without_balancing_equals_aux_conf():
    for progress in (0.0, 0.04, 0.7):
        a = LogConfLoss(balance_batch=False)(LOGITS, WEAK, ONES, progress)
        b = AuxConfLoss()(LOGITS, WEAK, ONES, progress)
        assert float(a) == pytest.approx(float(b), rel=1e-6)


def test_prior_losses_refuse_more_than_two_classes():
    with pytest.raises(W2SBenchError, match="two classes"):
        AuxConfLoss()(torch.zeros(2, 3), torch.full((2, 3), 1 / 3), torch.ones(2), 0.0)


def test_confidence_filter_keeps_the_top_fraction():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.6, 0.4]])
    targets, weights = ConfidenceFilter("cf", "", False, False, keep=0.5).curate([probs])
    assert targets is probs
    assert weights.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_ensemble_averages_and_an_ensemble_of_one_is_the_weak_model():
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1], size=5)
    one = ensemble(k=1)
    assert one.teacher_list() == VANILLA.teacher_list() == (Teacher(regularized=False),)
    assert reference_cells(one) == reference_cells(VANILLA) == ("weak", "ceiling")
    targets, weights = one.curate([p])
    assert targets.tobytes() == VANILLA.curate([p])[0].tobytes() == p.tobytes()
    assert weights.tolist() == [1.0] * 5
    q = rng.dirichlet([1, 1], size=5)
    assert np.array_equal(ensemble(k=2).curate([p, q])[0], (p + q) / 2)


def test_default_ensemble_teachers_and_reference_cell():
    three = ensemble()
    labels = [teacher_label(t) for t in three.teacher_list()]
    assert labels == ["weak", "weak seed+1 A 1/2", "weak seed+2 A 2/2"]
    assert reference_cells(three) == ("ensemble:teachers", "ceiling")


def test_paper_strategies_keep_their_shape():
    for s in (VANILLA, WEAK_TFT, WEAK_WTS_TFT):
        assert s.loss is None and s.teachers == () and s.in_default_run
    assert [reference_cells(s) for s in (VANILLA, WEAK_TFT, WEAK_WTS_TFT)] == [
        ("weak", "ceiling"), ("weak-reg", "ceiling"), ("weak-reg", "ceiling-reg")
    ]


def test_every_transfer_method_is_registered_with_the_paper_regularization_choices():
    registered = {s.name: s for s in w2sbench_register_strategies()}
    for method in ("aux-conf", "product", "log-conf", "ensemble", "confidence-filter"):
        plain, weak, both = registered[method], registered[f"{method}+weak-tft"], registered[f"{method}+weak-wts-tft"]
        assert [strategy_columns(s)[0] for s in (plain, weak, both)] == ["none", "weak", "both"]
        assert not plain.in_default_run and type(weak) is type(plain)
    assert all(t.regularized for t in registered["ensemble+weak-tft"].teacher_list())
    assert reference_cells(registered["ensemble+weak-wts-tft"]) == ("ensemble+weak-wts-tft:teachers", "ceiling-reg")
    assert strategy_columns(registered["confidence-filter"]) == ("none", "1", "soft xent, ConfidenceFilter", "no")


class _NaNLoss(TransferLoss):
    name = "nan"

    def __call__(self, logits, targets, weights, progress):
        return logits.sum() * float("nan")


def test_a_non_finite_loss_is_stopped_naming_the_package():
    guarded = GuardedLoss(Strategy("broken", "", False, False, loss=_NaNLoss()), "someplugin")
    assert guarded.config == {"loss": f"{__name__}._NaNLoss", "code": source_hash([__name__])}
    with pytest.raises(W2SBenchError, match=r'Strategy "broken" \(plugin "someplugin", package tests\).*nan'):
        guarded(LOGITS, WEAK, ONES, 0.0)


class _PerRowLoss(TransferLoss):
    name = "per-row"

    def __call__(self, logits, targets, weights, progress):
        return -(targets * torch.log_softmax(logits, -1)).sum(-1)


def test_a_loss_returning_per_row_values_is_told_to_reduce_them():
    guarded = GuardedLoss(Strategy("unreduced", "", False, False, loss=_PerRowLoss()), "p", package="w2sbench-x 1.0")
    with pytest.raises(W2SBenchError, match=r"package w2sbench-x 1.0\).*a tensor of shape \(4,\), not a scalar") as info:
        guarded(LOGITS, WEAK, ONES, 0.0)
    assert "Correct the transfer loss of w2sbench-x 1.0" in info.value.fix and '"unreduced" out of --strategies' in info.value.fix


def test_editing_a_loss_module_changes_its_cache_key(tmp_path, monkeypatch):
    import importlib

    (tmp_path / "w2sbench_editloss.py").write_text(
        "from w2sbench.plugin_api import TransferLoss\nclass L(TransferLoss):\n    def __call__(self, lo, t, w, p):\n        return lo.sum()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("w2sbench_editloss")
    strategy = Strategy("edited", "", False, False, loss=module.L())
    before = GuardedLoss(strategy, "p").config
    (tmp_path / "w2sbench_editloss.py").write_text(
        "from w2sbench.plugin_api import TransferLoss\nclass L(TransferLoss):\n    def __call__(self, lo, t, w, p):\n        return lo.mean()\n"
    )
    after = GuardedLoss(strategy, "p").config
    assert before["loss"] == after["loss"] == "w2sbench_editloss.L" and before["code"] != after["code"]


def test_a_plain_function_as_loss_is_refused_where_the_strategy_is_made():
    def my_loss(logits, targets, weights, progress):
        return logits.sum()

    with pytest.raises(TypeError, match=r'Strategy "fn": loss must be a TransferLoss, got the function .*my_loss\. Subclass'):
        Strategy("fn", "", False, False, loss=my_loss)
    with pytest.raises(ValueError, match=r'transfer must be "soft" or "hard", got \'argmax\''):
        Strategy("t", "", False, False, transfer="argmax")
    with pytest.raises(TypeError, match=r"teachers must be Teacher objects, got 1"):
        Strategy("t", "", False, False, teachers=(1,))


class _FakePipeline:
    """Records the stages ``train_strategy`` asks for; every teacher predicts ``self.probs`` on split B."""

    def __init__(self, probs: np.ndarray) -> None:
        from types import SimpleNamespace

        self.probs = probs
        self.settings = SimpleNamespace(options={"toy": {"weak_train_size": 4, "transfer_size": 4, "val_size": 2, "max_length": 8}})
        self.plugins = SimpleNamespace(strategies=SimpleNamespace(owners={}))
        self.trained: list[tuple[str, list[str], np.ndarray, dict]] = []

    def train_stage(self, role, data, targets, reg, seed, num_labels, max_length, label, **extra):
        from pathlib import Path

        self.trained.append((role, data.ids, np.asarray(targets), extra))
        return {"role": role, "seed": seed}, Path(label)

    def predict_stage(self, key, path, role, data):
        return self.probs


class _Toy:
    name = "toy"

    def regularizer(self, options):
        from w2sbench.interfaces import NoRegularizer

        return NoRegularizer()


@dataclass(frozen=True)
class _DownWeight(Strategy):
    def curate(self, teacher_probabilities):
        targets, _ = super().curate(teacher_probabilities)
        return targets, np.array([1.0, 0.5, 0.0, 2.0])


def _train(strategy: Strategy, probs: np.ndarray) -> tuple[_FakePipeline, tuple]:
    from w2sbench.interfaces import Examples, NoRegularizer, PropertyData
    from w2sbench.teachers import train_strategy

    pool = Examples([f"r{i}" for i in range(10)], [f"t{i}" for i in range(10)], np.arange(10) % 2)
    data = PropertyData(train=pool, tests={"t": pool}, main_test="t")
    b = pool.subset([0, 1, 2, 3])
    fake = _FakePipeline(probs)
    train_strategy(fake, _Toy(), data, 0, strategy, b, NoRegularizer())
    return fake, fake.trained[-1]


def test_paper_strategies_train_on_the_weak_labels_with_the_plain_cross_entropy():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.6, 0.4]])
    fake, (role, ids, targets, extra) = _train(VANILLA, probs)
    assert role == "strong" and ids == ["r0", "r1", "r2", "r3"] and targets.tobytes() == probs.tobytes()
    assert extra == {"transfer_loss": None, "weights": None}
    assert [t[0] for t in fake.trained] == ["weak", "strong"]


def test_rows_of_weight_zero_are_left_out_and_other_weights_reach_a_weighted_loss():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.6, 0.4]])
    _, (_, ids, targets, extra) = _train(ConfidenceFilter("cf", "", False, False), probs)
    assert ids == ["r0", "r2"] and targets.tolist() == [[0.9, 0.1], [0.2, 0.8]]
    assert extra == {"transfer_loss": None, "weights": None}
    _, (_, ids, _, extra) = _train(_DownWeight("dw", "", False, False), probs)
    assert ids == ["r0", "r1", "r3"] and extra["weights"].tolist() == [1.0, 0.5, 2.0]
    assert extra["transfer_loss"].config == {
        "loss": "w2sbench.training.losses.CrossEntropyLoss",
        "code": source_hash(["w2sbench.training.losses"]),
    }


def test_ensemble_teachers_train_on_their_part_of_split_a_with_their_seed():
    fake, _ = _train(ensemble(), np.full((4, 2), 0.5))
    weak = [(t[1], t[3]) for t in fake.trained if t[0] == "weak"]
    assert len(weak) == 3
    (a_all, _), (a_first, _), (a_second, _) = weak
    assert len(a_all) == 4 and a_first == a_all[:2] and a_second == a_all[2:]


def test_listing_names_every_strategy_whole_with_its_settings(capsys, monkeypatch):
    from w2sbench.cli import main

    monkeypatch.delenv("COLUMNS", raising=False)
    capsys.readouterr()
    assert main(["list", "strategies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("│ aux-conf+weak-wts-tft "))
    assert [c.strip() for c in row.strip("│").split("│")] == ["aux-conf+weak-wts-tft", "both", "1", "soft", "no"]


def test_with_regularization_composes_the_papers_variants_from_the_plugin_api():
    from w2sbench.plugin_api import Strategy, with_regularization

    base = Strategy("mine", "my loss", regularize_weak=False, regularize_strong=False)
    weak, both = with_regularization(base, "weak"), with_regularization(base, "both")
    assert (weak.name, weak.regularize_weak, weak.regularize_strong) == ("mine+weak-tft", True, False)
    assert (both.name, both.regularize_weak, both.regularize_strong) == ("mine+weak-wts-tft", True, True)
    assert both.description == "my loss; regularized as weak-wts-tft"
    with pytest.raises(ValueError, match='phases is "strong"; use "weak"'):
        with_regularization(base, "strong")
