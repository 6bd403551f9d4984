"""The fairness plugin: loader against the mirror, metrics on hand-computed cases, the regularizer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import DataContext, PenaltyContext
from w2sbench_plugins.fairness import Fairness, GroupFairnessPenalty, group_metrics, load_adult, serialize_row


def test_loader_reads_the_mirror(data_dir, tmp_path):
    metric = Fairness()
    data = metric.load_data(DataContext(data_dir, tmp_path), metric.options({"test_size": "0"}))
    # Every test row is held out: training rows duplicating one of the 16,281 test texts are dropped too.
    assert data.resources["hygiene"]["train_rows_read"] == 32561 and len(data.tests["adult_test"]) == 16281
    assert len(data.train) == data.resources["hygiene"]["train_rows_kept"]
    assert 0.2 < data.train.labels.mean() < 0.3  # ~24% earn >50K
    assert data.train.texts[0] == (
        "39 years old, State gov, Bachelors, Never married, Adm clerical, Not in family, White, Male, "
        "capital gain 2174, capital loss 0, 40 hours a week, from United States"
    )
    verbose = metric.load_data(DataContext(data_dir, tmp_path), metric.options({"serialization": "verbose"}))
    assert "sex: Male" in verbose.train.texts[0] and "77516" not in verbose.train.texts[0]  # no fnlwgt
    assert set(np.unique(data.train.attributes["sex"])) == {0, 1}


def test_adult_duplicates_are_removed_and_counted(data_dir, tmp_path):
    # Issue 14: with the compact serialization 390 of the 2,000 default test texts occur in the training pool,
    # and 604 training texts (2,123 rows) occur with both labels.
    metric = Fairness()
    data = metric.load_data(DataContext(data_dir, tmp_path), metric.options())
    assert data.resources["hygiene"] == {
        "train_rows_read": 32561,
        "conflicting_label_texts": 604,
        "conflicting_label_rows_dropped": 2123,
        "test_rows_duplicated_in_train": 390,
        "test_rows_duplicated_in_train.adult_test": 390,
        "train_rows_dropped_as_test_duplicates": 546,
        "train_rows_kept": 29892,
    }
    assert len(data.train) == 29892 and not set(data.train.texts) & set(data.tests["adult_test"].texts)
    seen: dict[str, int] = {}
    for text, label in zip(data.train.texts, data.train.labels.tolist(), strict=True):
        assert seen.setdefault(text, label) == label  # no text left with both labels


def test_group_metrics_equal_fairlearn_when_every_rate_is_defined():
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    rng = np.random.default_rng(3)
    labels, predicted, groups = rng.integers(0, 2, 500), rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    m = group_metrics(labels, predicted, groups)
    assert math.isclose(m["demographic_parity_difference"], demographic_parity_difference(labels, predicted, sensitive_features=groups))
    assert math.isclose(m["equalized_odds_difference"], equalized_odds_difference(labels, predicted, sensitive_features=groups))


def test_group_metrics_with_one_group_absent_are_undefined_not_zero():
    # Issue 14: with one group present fairlearn reports 0.0 ("perfectly fair"); these are undefined.
    labels = np.array([1, 0, 1, 0])
    with pytest.warns(UserWarning, match="undefined group rates"):
        m = group_metrics(labels, np.array([1, 0, 0, 0]), np.array([0, 0, 0, 0]))
    assert m["demographic_parity_difference"] is None and m["equalized_odds_difference"] is None
    assert m["equal_opportunity_difference"] is None and m["predictive_parity_difference"] is None
    assert m["positive_rate_group1"] is None and m["positive_rate_group0"] == 0.25


def test_group_without_positives_leaves_tpr_gaps_undefined():
    # group 1 has no positive labels: its TPR is undefined, so equal opportunity and equalized odds are too;
    # demographic parity is defined (3/4 vs 1/4 positive predictions).
    labels = np.array([0, 0, 0, 0, 1, 1, 0, 0])
    groups = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    predicted = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    with pytest.warns(UserWarning, match="true_positive_rate of group 1"):
        m = group_metrics(labels, predicted, groups)
    assert m["demographic_parity_difference"] == 0.5
    assert m["equal_opportunity_difference"] is None and m["equalized_odds_difference"] is None
    assert m["predictive_parity_difference"] == 1.0  # precision 0/3 vs 1/1


def test_malformed_file_is_reported(tmp_path):
    bad = tmp_path / "adult.data"
    bad.write_text("39, State-gov, 77516\n")
    with pytest.raises(W2SBenchError, match="has 3 columns"):
        load_adult(str(bad), "train")


def test_missing_values_are_spelled_out():
    row = {c: "x" for c in ("age", "workclass", "education", "marital-status", "occupation", "relationship", "race",
                            "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country")}
    row["workclass"] = "?"
    assert "workclass: unknown" in serialize_row(row, "verbose")
    assert ", unknown," in serialize_row(row)


def test_group_metrics_hand_computed():
    labels = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    groups = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    predicted = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    m = group_metrics(labels, predicted, groups)
    assert math.isclose(m["demographic_parity_difference"], 0.5)  # 1/4 vs 3/4
    assert math.isclose(m["equal_opportunity_difference"], 0.5)  # TPR 1/2 vs 1
    assert math.isclose(m["equalized_odds_difference"], 0.5)  # max(TPR gap .5, FPR gap .5)
    assert math.isclose(m["predictive_parity_difference"], 1 / 3)  # precision 1 vs 2/3


def test_demographic_parity_penalty_is_the_gap_in_mean_positive_probability():
    logits = torch.log(torch.tensor([[0.2, 0.8], [0.4, 0.6], [0.9, 0.1], [0.7, 0.3]]))
    ctx = PenaltyContext(logits, torch.eye(2)[[1, 1, 0, 0]], {"sex": torch.tensor([1, 1, 0, 0])}, [])
    value = GroupFairnessPenalty("demographic_parity", 2.0, "sex").penalty(ctx)
    assert math.isclose(float(value), 2.0 * (0.7 - 0.2), rel_tol=1e-5)


def test_penalty_lowers_demographic_parity_difference(tiny_models, data_dir, tmp_path):
    """Trained on real Adult features, the penalised head has a smaller DPD than the plain one."""
    from w2sbench.interfaces import NoRegularizer
    from w2sbench.models import fetch_model, load_backbone, resolve_model
    from w2sbench.plugin_manager import Plugins
    from w2sbench.training import Classifier, default_train_config, train_classifier

    metric = Fairness()
    options = metric.options({"test_size": "400"})
    data = metric.load_data(DataContext(data_dir, tmp_path), options)
    train = data.train.subset(np.random.default_rng(0).permutation(len(data.train))[:600])
    spec = resolve_model(str(tiny_models["bert-big"]), Plugins())
    tokenizer, backbone = load_backbone(spec, fetch_model(spec))
    # Bag-of-words features (48 wide, the tiny model's hidden size) carry "sex: Female" and the income signal.
    from sklearn.feature_extraction.text import HashingVectorizer

    bow = HashingVectorizer(n_features=48, alternate_sign=False, norm="l2")
    cache = {t: f for t, f in zip(train.texts, bow.transform(train.texts).toarray().astype(np.float32))}
    test = data.tests["adult_test"]
    test_x = bow.transform(test.texts).toarray().astype(np.float32)

    def dpd(regularizer) -> float:
        torch.manual_seed(0)
        clf = Classifier(backbone, tokenizer, 2, 64)
        train_classifier(clf, "head", train.texts, np.eye(2)[train.labels], train.attributes, regularizer,
                         default_train_config("head"), 0, features=lambda ts: np.stack([cache[t] for t in ts]))
        logits = clf.head(clf.norm(torch.as_tensor(test_x)))
        return group_metrics(test.labels, logits.argmax(1).numpy(), test.attributes["sex"])["demographic_parity_difference"]

    plain = dpd(NoRegularizer())
    fair = dpd(GroupFairnessPenalty("demographic_parity", 5.0, "sex"))
    assert fair < plain - 0.02, (plain, fair)


def test_phase_weights_override_the_shared_weight():
    metric = Fairness()
    shared = metric.regularizer(metric.options())
    assert shared.for_training("weak", "head") is shared and shared.for_training("strong", "full") is shared
    split = metric.regularizer(metric.options({"weak_weight": "2", "strong_weight": "0.25"}))
    assert split.for_training("weak", "head").weight == 2.0
    assert split.for_training("strong", "lora").weight == 0.25
    assert split.for_training("strong", "lora").config()["weight"] == 0.25  # the trained model's cache key follows
    only_weak = metric.regularizer(metric.options({"weak_weight": "0"}))
    assert only_weak.for_training("weak", "head").weight == 0.0
    assert only_weak.for_training("strong", "head").weight == 0.5
    with pytest.raises(W2SBenchError, match='"fairness.weight" got "-1", which is outside its range: a finite number >= 0'):
        metric.options({"weight": "-1"})  # refused when the option is read, before any regularizer is built


@pytest.mark.slow
def test_run_trains_each_phase_with_its_weight(tiny_models, data_dir, tmp_path):
    from tests.conftest import SMALL_FAIRNESS
    from w2sbench.cli import main

    out = tmp_path / "run"
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    args = ["run", "--seeds", "0", "--pair", pair, "--properties", "fairness", "--strategies", "weak-wts-tft", "--finetune", "head",
            "--data-dir", str(data_dir), "--out", str(out), "--quiet", *SMALL_FAIRNESS,
            "--option", "fairness.weak_weight=3", "--option", "fairness.strong_weight=0.25"]
    assert main(args) == 0
    keys = [json.loads(p.read_text()) for p in (out / "cache" / "train").glob("*/key.json")]
    weights: dict[str, list[float]] = {}
    for key in keys:
        weights.setdefault(key["mode"] + json.dumps(key["model"], sort_keys=True), []).append(key["regularizer"]["weight"])
    # one model trains weak (plain, weak-reg), the other strong (ceiling, ceiling-reg, weak-wts-tft)
    assert sorted(sorted(w) for w in weights.values()) == [[0.0, 0.25, 0.25], [0.0, 3.0]]
