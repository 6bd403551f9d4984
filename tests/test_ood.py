"""The ``ood`` trust property: SST-2 / DecodingTrust style loaders, scores, consistency regularizer, end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from w2sbench.cli import main
from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import DataContext, Examples, PenaltyContext, PropertyData
from w2sbench.results import load_results
from w2sbench_plugins.adversarial._perturbations import EDITS, perturb_texts
from w2sbench_plugins.ood import OOD, STYLES, ConsistencyPenalty, style_test_name


def _ctx(data_dir, tmp_path) -> DataContext:
    return DataContext(data_dir=data_dir, cache_dir=tmp_path / "downloads")


def test_loaders_read_the_mirror(data_dir, tmp_path):
    metric = OOD()
    data = metric.load_data(_ctx(data_dir, tmp_path), metric.options({"test_size": "0"}))
    hygiene = data.resources["hygiene"]  # 5 short phrases with both labels (10 rows); no test text in train
    assert (hygiene["train_rows_read"], hygiene["conflicting_label_rows_dropped"], hygiene["train_rows_kept"]) == (67349, 10, 67339)
    assert hygiene["test_rows_duplicated_in_train"] == 0 and len(data.train) == 67339
    assert set(data.tests) == {"sst2_dev"} | {style_test_name(s) for s in STYLES}
    dev = data.tests["sst2_dev"]
    assert len(dev) == 872
    assert set(np.unique(dev.labels).tolist()) == {0, 1}
    for style in STYLES:
        test = data.tests[style_test_name(style)]
        assert len(test) == 872
        # Each style is a rewrite of the same dev sentence: the labels line up row by row.
        assert np.array_equal(test.labels, dev.labels)
    assert data.tests["style_augment"].texts[0] == "it is a charming and often affecting journey ."
    assert set(data.sources) == {"sst2/train.tsv", "sst2/dev.tsv", "decodingtrust/ood/style.json"}


def test_without_a_mirror_sst2_is_extracted_from_the_glue_zip(data_dir, tmp_path):
    import zipfile

    from w2sbench_plugins._sst2 import load_sst2, sst2_file

    downloads = tmp_path / "downloads"
    (downloads / "sst2").mkdir(parents=True)
    # A zip already in the download cache is used as downloaded (no network in tests).
    with zipfile.ZipFile(downloads / "sst2" / "SST-2.zip", "w") as zf:
        zf.write(data_dir / "sst2" / "dev.tsv", "SST-2/dev.tsv")
    path = sst2_file(DataContext(data_dir=None, cache_dir=downloads), "dev")
    assert path == downloads / "sst2" / "dev.tsv"
    assert load_sst2(path, "dev").texts == load_sst2(data_dir / "sst2" / "dev.tsv", "dev").texts
    with pytest.raises(W2SBenchError, match="SST-2.zip"):
        sst2_file(DataContext(data_dir=None, cache_dir=downloads), "train")


def test_test_size_takes_the_same_rows_from_every_set(data_dir, tmp_path):
    metric = OOD()
    data = metric.load_data(_ctx(data_dir, tmp_path), metric.options({"test_size": "50", "styles": "bible_p0,tweet_p0.6"}))
    assert set(data.tests) == {"sst2_dev", "style_bible_p0", "style_tweet_p0_6"}
    ids = [i.split("-")[-1] for i in data.tests["sst2_dev"].ids]
    assert len(ids) == 50
    assert [i.split("-")[-1] for i in data.tests["style_tweet_p0_6"].ids] == ids


def test_bad_options_are_reported(data_dir, tmp_path):
    metric = OOD()
    with pytest.raises(W2SBenchError, match="shake_p0"):
        metric.load_data(_ctx(data_dir, tmp_path), metric.options({"styles": "shake_p1"}))
    with pytest.raises(W2SBenchError, match="divergence"):
        metric.regularizer(metric.options({"divergence": "js"}))
    with pytest.raises(W2SBenchError, match="edits"):
        metric.regularizer(metric.options({"edits": "typo"}))


def test_scores_on_a_hand_computed_case():
    def examples(labels: list[int]) -> Examples:
        return Examples([str(i) for i in range(len(labels))], ["x"] * len(labels), np.array(labels))

    def probs(predicted: list[int]) -> np.ndarray:
        return np.eye(2)[predicted] * 0.8 + 0.1

    data = PropertyData(
        train=examples([0, 1]),
        tests={"sst2_dev": examples([0, 1, 1, 0]), "style_bible_p0": examples([0, 1, 1, 0]), "style_tweet_p0_6": examples([0, 1, 1, 0])},
        main_test="sst2_dev",
    )
    probabilities = {
        "sst2_dev": probs([0, 1, 1, 1]),  # 3/4
        "style_bible_p0": probs([1, 1, 0, 1]),  # 1/4
        "style_tweet_p0_6": probs([0, 1, 0, 0]),  # 3/4
    }
    metric = OOD()
    scores = metric.evaluate(data, probabilities, metric.options({"styles": "bible_p0,tweet_p0.6"}))
    assert scores == pytest.approx(
        {"id_accuracy": 0.75, "accuracy_bible_p0": 0.25, "accuracy_tweet_p0_6": 0.75, "ood_accuracy": 0.5, "id_ood_gap": 0.25}
    )
    assert {m.name for m in metric.metrics} >= set(scores)


def test_consistency_penalty_values():
    clean = torch.tensor([[2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    view = torch.tensor([[0.0, 0.0], [0.0, 1.0]], requires_grad=True)
    ctx = PenaltyContext(logits=clean, targets=torch.eye(2), attributes={}, view_logits=[view])
    p = 1 / (1 + math.exp(-2.0))  # softmax([2, 0])[0]
    kl_pq = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    kl_qp = 0.5 * math.log(0.5 / p) + 0.5 * math.log(0.5 / (1 - p))
    symmetric = ConsistencyPenalty(2.0, "symmetric_kl", 1, 0.1, EDITS).penalty(ctx)
    assert float(symmetric.detach()) == pytest.approx(2.0 * 0.5 * (kl_pq + kl_qp) / 2, rel=1e-5)  # the second row agrees: 0
    one_way = ConsistencyPenalty(1.0, "kl", 1, 0.1, EDITS).penalty(ctx)
    assert float(one_way.detach()) == pytest.approx(kl_pq / 2, rel=1e-5)
    one_way.backward()
    assert clean.grad is None  # KL(clean || perturbed) pulls only the perturbed prediction
    assert view.grad is not None
    assert ConsistencyPenalty(1.0, "kl", 1, 0.1, EDITS).penalty(PenaltyContext(clean, torch.eye(2), {}, [])) is None


@pytest.mark.slow  # the first textattack import takes ~8 s
def test_views_are_deterministic_perturbed_copies():
    texts = ["a wonderful and moving film", "the plot is dull and predictable", "ok"]
    reg = ConsistencyPenalty(1.0, "symmetric_kl", 2, 0.3, EDITS)
    views = reg.views(texts, seed=3)
    assert len(views) == 2 and all(len(v) == len(texts) for v in views)
    assert views[0] != texts and views[0] != views[1]
    assert views == ConsistencyPenalty(1.0, "symmetric_kl", 2, 0.3, EDITS).views(texts, seed=3)
    assert views != reg.views(texts, seed=4)
    assert reg.config() != ConsistencyPenalty(1.0, "symmetric_kl", 1, 0.3, EDITS).config()


@pytest.mark.slow
def test_consistency_penalty_lowers_clean_perturbed_disagreement(tiny_models):
    """Fully fine-tuned on a toy sentiment task, the regularized model changes its prediction less
    when inputs are perturbed."""
    from tests.regularizer_toys import perturbed_disagreement, toy_sentiment, train_toy

    texts, labels = toy_sentiment(200, seed=0)
    test_texts, _ = toy_sentiment(200, seed=1)
    perturbed = perturb_texts(test_texts, 99, ("delete",), 1.0)
    plain = train_toy(tiny_models["bert"], texts, labels, None)
    regularized = train_toy(tiny_models["bert"], texts, labels, ConsistencyPenalty(1.0, "symmetric_kl", 1, 0.3, ("delete",)))
    before = perturbed_disagreement(plain, test_texts, perturbed)
    after = perturbed_disagreement(regularized, test_texts, perturbed)
    assert after < 0.85 * before, (before, after)


@pytest.mark.slow
def test_run_reports_every_ood_metric(tiny_models, data_dir, tmp_path):
    out = tmp_path / "run"
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    small = ["weak_train_size=80", "transfer_size=80", "val_size=10", "test_size=40", "max_length=32"]
    args = ["run", "--seeds", "0", "--pair", pair, "--properties", "ood", "--strategies", "vanilla", "--finetune", "head",
            "--data-dir", str(data_dir), "--out", str(out), "--quiet"]
    for option in small:
        args += ["--option", f"ood.{option}"]
    assert main(args) == 0
    prop = load_results(out)["properties"]["ood"]
    assert prop["primary_trust_metric"] == "ood_accuracy"
    expected = {m.name for m in OOD.metrics} | {"accuracy", "auroc"}
    for cell, entry in prop["cells"].items():
        scores = entry["seeds"]["0"]
        assert expected <= set(scores), (cell, expected - set(scores))
        assert scores["id_ood_gap"] == pytest.approx(scores["id_accuracy"] - scores["ood_accuracy"])
        assert scores["id_accuracy"] == scores["accuracy"]
    assert prop["data"]["tests"]["style_shake_p0_6"]["rows"] == 40
    # The regularized weak model differs from the plain one.
    assert prop["cells"]["weak-reg"]["train"]["0"]["final_loss"] != prop["cells"]["weak"]["train"]["0"]["final_loss"]
