"""The ``adversarial`` trust property: AdvGLUE loader, scores, adversarial augmentation, live attacks, end to end."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch

from w2sbench.cli import main
from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import DataContext, Examples, PenaltyContext, PropertyData
from w2sbench.results import iter_predictions, load_results
from w2sbench_plugins._sst2 import fixed_subset, load_sst2
from w2sbench_plugins.adversarial import Adversarial, AdversarialAugmentation, attack_scores, load_advglue_sst2, run_attack
from w2sbench_plugins.adversarial._perturbations import CHARACTER_EDITS, perturb_texts


def _ctx(data_dir, tmp_path) -> DataContext:
    return DataContext(data_dir=data_dir, cache_dir=tmp_path / "downloads")


def test_loaders_read_the_mirror(data_dir, tmp_path):
    metric = Adversarial()
    data = metric.load_data(_ctx(data_dir, tmp_path), metric.options())
    # SST-2 train: 67,349 rows; 5 short phrases occur with both labels (10 rows dropped); no test text is a train text.
    assert data.resources["hygiene"] == {
        "train_rows_read": 67349,
        "conflicting_label_texts": 5,
        "conflicting_label_rows_dropped": 10,
        "test_rows_duplicated_in_train": 0,
        "test_rows_duplicated_in_train.sst2_dev": 0,
        "test_rows_duplicated_in_train.advglue_original": 0,
        "test_rows_duplicated_in_train.advglue_modified": 0,
        "train_rows_dropped_as_test_duplicates": 0,
        "train_rows_kept": 67339,
    }
    assert len(data.train) == 67339
    assert len(data.tests["sst2_dev"]) == 872
    original, modified = data.tests["advglue_original"], data.tests["advglue_modified"]
    assert len(original) == len(modified) == 131
    assert np.array_equal(original.labels, modified.labels)
    for text in original.texts + modified.texts:
        assert "Sentence:" not in text and "Tell me the answer" not in text and text
    assert sum(a != b for a, b in zip(original.texts, modified.texts, strict=True)) >= 120
    assert modified.texts[0].startswith("it 's an uneven treat that bores fun")
    assert original.texts[0].startswith("it 's an offbeat treat that pokes fun")
    assert "TextFooler" in set(modified.attributes["method"].tolist())


def test_bad_options_are_reported(data_dir, tmp_path):
    metric = Adversarial()
    with pytest.raises(W2SBenchError, match="deepwordbug"):
        metric.load_data(_ctx(data_dir, tmp_path), metric.options({"attacks": "deepwordbugg"}))
    with pytest.raises(W2SBenchError, match="views"):
        metric.regularizer(metric.options({"views": "0"}))


def test_attack_scores_hand_computed():
    scores = attack_scores(["successful", "failed", "failed", "skipped", "successful"])
    assert scores == pytest.approx({"success_rate": 2 / 4, "accuracy_under_attack": 2 / 5, "clean_accuracy": 4 / 5})
    assert attack_scores(["skipped", "skipped"]) == {"success_rate": None, "accuracy_under_attack": 0.0, "clean_accuracy": 0.0}


def test_advglue_scores_hand_computed():
    def examples(labels: list[int]) -> Examples:
        return Examples([str(i) for i in range(len(labels))], ["x"] * len(labels), np.array(labels))

    data = PropertyData(
        train=examples([0, 1]),
        tests={"sst2_dev": examples([0, 1]), "advglue_original": examples([0, 1, 1, 0]), "advglue_modified": examples([0, 1, 1, 0])},
        main_test="sst2_dev",
    )
    probabilities = {
        "sst2_dev": np.eye(2)[[0, 1]],
        "advglue_original": np.eye(2)[[0, 1, 1, 1]],  # 3/4
        "advglue_modified": np.eye(2)[[1, 1, 0, 1]],  # 1/4
    }
    metric = Adversarial()
    scores = metric.evaluate(data, probabilities, metric.options())
    assert scores == pytest.approx({"advglue_original_accuracy": 0.75, "advglue_robust_accuracy": 0.25, "advglue_accuracy_drop": 0.5})


def test_worst_of_k_penalty_hand_computed():
    clean = torch.zeros(2, 2)
    views = [torch.tensor([[2.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 3.0]])]
    targets = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    ctx = PenaltyContext(logits=clean, targets=targets, attributes={}, view_logits=views)
    # Row 0: the first view is worse (CE of softmax([2, 0]) at class 1); row 1: the second view is
    # better, so the first one (CE = log 2) counts.
    row0 = math.log(1 + math.exp(2.0))
    expected = 0.5 * (row0 + math.log(2.0))
    assert float(AdversarialAugmentation(3.0, 2, 0.1, CHARACTER_EDITS).penalty(ctx)) == pytest.approx(3.0 * expected, rel=1e-5)


@pytest.mark.slow
def test_adversarial_augmentation_raises_accuracy_on_perturbed_inputs(tiny_models):
    from tests.regularizer_toys import accuracy, toy_sentiment, train_toy

    texts, labels = toy_sentiment(200, seed=0)
    test_texts, test_labels = toy_sentiment(200, seed=1)
    perturbed = perturb_texts(test_texts, 99, ("delete",), 1.0)
    plain = train_toy(tiny_models["bert"], texts, labels, None)
    augmented = train_toy(tiny_models["bert"], texts, labels, AdversarialAugmentation(1.0, 2, 1.0, ("delete",)))
    before = accuracy(plain, perturbed, test_labels)
    after = accuracy(augmented, perturbed, test_labels)
    assert after > before + 0.08, (before, after)
    assert accuracy(augmented, test_texts, test_labels) > 0.9  # clean accuracy is kept


@pytest.mark.slow
def test_live_attacks_give_sane_rates(tiny_models, monkeypatch):
    from tests.regularizer_toys import toy_sentiment, train_toy

    texts, labels = toy_sentiment(200, seed=0)
    model = train_toy(tiny_models["bert"], texts, labels, None)
    attack_texts, attack_labels = toy_sentiment(12, seed=5)
    attack_labels[:2] = 1 - attack_labels[:2]  # two examples the model gets wrong: they must be skipped
    examples = Examples([str(i) for i in range(12)], attack_texts, attack_labels)
    correct = model.predict_proba(attack_texts).argmax(1) == attack_labels
    for recipe in ("deepwordbug", "pruthi"):
        outcomes = run_attack(model, examples, recipe, query_budget=100, seed=0)
        assert len(outcomes) == 12
        # textattack skips exactly the examples the model already gets wrong.
        assert [o == "skipped" for o in outcomes] == (~correct).tolist()
        scores = attack_scores(outcomes)
        assert scores["clean_accuracy"] == pytest.approx(correct.mean())
        # Every correctly classified example is attacked; each success flips one of them.
        flipped = outcomes.count("successful")
        assert scores["success_rate"] == flipped / correct.sum()
        assert scores["accuracy_under_attack"] == (correct.sum() - flipped) / 12
        # The toy model keys on one sentiment word, so a one-word character edit flips some examples.
        assert "successful" in outcomes
        assert outcomes == run_attack(model, examples, recipe, query_budget=100, seed=0)  # deterministic per seed
        assert outcomes == run_attack(model, examples, recipe, query_budget=100, seed=0, memoize_words=False)
        # stopping a greedy step at its first success keeps every outcome and (Pruthi) saves queries
        queried = {}
        for stop in (True, False):
            with _counted_texts(model) as texts:
                assert outcomes == run_attack(model, examples, recipe, query_budget=100, seed=0, stop_early=stop)
            queried[stop] = texts[0]
        if recipe == "pruthi":
            assert queried[True] < queried[False]
            # a new attack (the next model of a run) reads the sentences' candidates built before, in this process
            import textattack

            monkeypatch.setattr(textattack.Attack, "_get_transformations_uncached",
                                _refusing_sentences(textattack.Attack._get_transformations_uncached))
            assert outcomes == run_attack(model, examples, recipe, query_budget=100, seed=0)
        else:  # DeepWordBug's search (word importance ranking) is not a greedy search: unchanged
            assert queried[True] == queried[False]


def _refusing_sentences(build):
    """textattack's candidate builder that fails when asked for an attacked sentence's own candidates (a text
    that is not itself a perturbation)."""

    def built(self, current_text, *args, **kwargs):
        assert "previous_attacked_text" in current_text.attack_attrs, "a sentence's candidates built again"
        return build(self, current_text, *args, **kwargs)

    return built


@contextlib.contextmanager
def _counted_texts(model):
    """The number of texts ``model.predict_proba`` is asked for while the block runs (one-element list)."""
    texts, predict = [0], model.predict_proba

    def counting(batch, *args, **kwargs):
        texts[0] += len(batch)
        return predict(batch, *args, **kwargs)

    model.predict_proba = counting
    try:
        yield texts
    finally:
        del model.predict_proba


def test_memoized_word_splitting_gives_textattacks_words_and_is_undone():
    from textattack.shared import attacked_text
    from textattack.shared.utils import words_from_text

    from w2sbench_plugins.adversarial._word_split import memoized_word_splitting

    texts = ["It's a 'well-made', un*funny film.", "  spaces   and\ttabs ", "@home -- x_y", "", "naïve café", "It's"]
    with memoized_word_splitting():
        patched = attacked_text.words_from_text
        assert patched is not words_from_text
        for text in texts * 2:  # the second pass is answered from the cache
            assert patched(text) == words_from_text(text)
        first = patched("a b")
        first.append("mutated")  # a caller that changes the list it got does not change the next answer
        assert patched("a b") == ["a", "b"]
        assert patched("a b c", ["b"]) == words_from_text("a b c", ["b"]) == ["a", "c"]
    assert attacked_text.words_from_text is words_from_text


@pytest.mark.slow
def test_run_reports_every_adversarial_metric(tiny_models, data_dir, tmp_path):
    out = tmp_path / "run"
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    small = ["weak_train_size=80", "transfer_size=80", "val_size=10", "test_size=40", "max_length=32", "attack_examples=3", "query_budget=30"]
    args = ["run", "--seeds", "0", "--pair", pair, "--properties", "adversarial", "--strategies", "vanilla", "--finetune", "head",
            "--data-dir", str(data_dir), "--out", str(out), "--quiet"]
    for option in small:
        args += ["--option", f"adversarial.{option}"]
    assert main(args) == 0
    prop = load_results(out)["properties"]["adversarial"]
    assert prop["primary_trust_metric"] == "advglue_robust_accuracy"
    assert prop["data"]["tests"]["advglue_modified"]["rows"] == 131
    expected = {m.name for m in Adversarial.metrics} | {"accuracy", "auroc"}
    # Recomputed from the predictions file and the benchmark's labels: AdvGLUE accuracy, and the attacked
    # examples (the fixed 3 of the 40 dev rows) the model classified correctly before the attack.
    sets = [*load_advglue_sst2(str(data_dir / "advglue" / "AdvGLUE.json")), load_sst2(data_dir / "sst2" / "dev.tsv", "dev")]
    labels = {i: y for examples in sets for i, y in zip(examples.ids, examples.labels.tolist(), strict=True)}
    predicted = {(r["cell"], r["test_set"]): [labels[i] == int(np.argmax(p)) for i, p in zip(r["ids"], r["probabilities"], strict=True)]
                 for r in iter_predictions(out)}
    for cell, entry in prop["cells"].items():
        scores = entry["seeds"]["0"]
        assert expected <= set(scores), (cell, expected - set(scores))
        assert scores["advglue_robust_accuracy"] == np.mean(predicted[(cell, "advglue_modified")])
        clean = int(np.sum(np.asarray(predicted[(cell, "sst2_dev")])[fixed_subset(40, 3)]))
        for attack in ("deepwordbug", "pruthi"):
            rate, after = scores[f"{attack}_success_rate"], scores[f"{attack}_accuracy_under_attack"]
            assert (rate is None) if clean == 0 else math.isclose(after * 3, clean * (1 - rate)), (cell, attack, clean, rate, after)
        assert scores["accuracy_under_attack"] == np.mean([scores["deepwordbug_accuracy_under_attack"], scores["pruthi_accuracy_under_attack"]])
        # live scores carry the plugin's bootstrap standard error over the 3 attacked sentences (LiveScores)
        assert isinstance(entry["stderr"]["0"]["accuracy_under_attack"], float), cell


def test_attack_standard_errors_resample_the_attacked_sentences_jointly():
    from w2sbench_plugins.adversarial import attack_stderr

    outcomes = ["successful"] * 30 + ["failed"] * 50 + ["skipped"] * 20
    se = attack_stderr({"deepwordbug": outcomes, "pruthi": list(outcomes)}, seed=0)
    # the same sentences resampled for both attacks: two identical attacks average to the same spread
    assert se["attack_success_rate"] == se["deepwordbug_success_rate"] == se["pruthi_success_rate"]
    assert se["accuracy_under_attack"] == se["deepwordbug_accuracy_under_attack"]
    # accuracy under attack is a share of all 100 sentences: about the binomial sqrt(0.5 x 0.5 / 100)
    assert math.isclose(se["accuracy_under_attack"], 0.05, rel_tol=0.1)
    # success rate is a share of the 80 attacked ones: about sqrt(0.375 x 0.625 / 80) = 0.054
    assert math.isclose(se["attack_success_rate"], math.sqrt(0.375 * 0.625 / 80), rel_tol=0.12)
    assert attack_stderr({"pruthi": ["skipped"] * 5}, seed=0)["pruthi_success_rate"] is None  # nothing attacked
