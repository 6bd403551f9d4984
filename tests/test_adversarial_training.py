"""Input-space adversarial training: the perturbation search, the regularizer's per-mode choice, and
that training with it lowers the worst-case loss (full fine-tuning and partial fine-tuning on cached states)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.regularizer_toys import toy_sentiment
from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import EmbeddingAdversary, NoRegularizer, Regularizer
from w2sbench.training.adversarial import adversarial_loss, worst_case_perturbation
from w2sbench.training.classifier import Classifier
from w2sbench.training.config import default_train_config
from w2sbench.training.trainer import train_classifier
from w2sbench_plugins.adversarial import Adversarial, AdversarialAugmentation, EmbeddingAdversarialTraining


def _classifier(model_dir: Path) -> Classifier:
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    return Classifier(AutoModel.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir), 2, 32)


def _xent(logits: torch.Tensor, labels: np.ndarray) -> float:
    return float(torch.nn.functional.cross_entropy(logits.float(), torch.as_tensor(labels)))


def test_perturbation_stays_in_each_tokens_ball_and_raises_the_loss():
    torch.manual_seed(0)
    weights = torch.randn(8, 2)
    inputs = torch.randn(4, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]])
    targets = torch.eye(2)[torch.tensor([0, 1, 1, 0])]

    def logits_of(x: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).float()
        return torch.tanh((x * m).sum(1) / m.sum(1)) @ weights

    for steps in (1, 3):
        adversary = EmbeddingAdversary(radius=0.2, steps=steps)
        delta = worst_case_perturbation(logits_of, inputs, mask, targets, adversary)
        norms, limits = delta.norm(dim=-1), 0.2 * inputs.norm(dim=-1)
        assert torch.all(norms <= limits + 1e-5)
        assert torch.all(norms[mask == 0] == 0)  # padding is never perturbed
        if steps == 1:  # one normalised step of the full radius lands on the ball's edge
            assert torch.allclose(norms[mask == 1], limits[mask == 1], rtol=1e-4)
        xent = lambda x: float(-(targets * torch.log_softmax(logits_of(x), -1)).sum(-1).mean())  # noqa: E731
        random = torch.randn_like(inputs)
        random = random / random.norm(dim=-1, keepdim=True) * limits.unsqueeze(-1) * mask.unsqueeze(-1)
        assert xent(inputs + delta) > xent(inputs + random) > 0
        assert xent(inputs + delta) > xent(inputs)
    weighted = adversarial_loss(logits_of, inputs, mask, targets, EmbeddingAdversary(0.2, 1, weight=3.0))
    unit = adversarial_loss(logits_of, inputs, mask, targets, EmbeddingAdversary(0.2, 1, weight=1.0))
    assert float(weighted) == pytest.approx(3 * float(unit), rel=1e-5)


def test_method_is_chosen_per_fine_tune_mode_and_bad_choices_are_named():
    metric = Adversarial()
    auto = metric.regularizer(metric.options())
    assert isinstance(auto.for_training("weak", "head"), AdversarialAugmentation)
    for mode in ("lora", "full"):
        chosen = auto.for_training("strong", mode)
        assert isinstance(chosen, EmbeddingAdversarialTraining)
        assert chosen.adversary == EmbeddingAdversary(radius=0.05, steps=1, weight=1.0)
        # part of the trained model's cache key, under the radius's old name so that cached models keep their keys
        assert chosen.config()["adversary"] == {"epsilon": 0.05, "steps": 1, "weight": 1.0}
    forced = metric.regularizer(metric.options({"method": "augmentation"}))
    assert isinstance(forced.for_training("strong", "full"), AdversarialAugmentation)
    embedding_only = metric.regularizer(metric.options({"method": "embedding"}))
    with pytest.raises(W2SBenchError, match="head mode"):
        embedding_only.for_training("weak", "head")
    with pytest.raises(W2SBenchError, match="Unknown adversarial training method"):
        metric.regularizer(metric.options({"method": "embeding"}))
    with pytest.raises(W2SBenchError, match="radius"):
        metric.regularizer(metric.options({"radius": "0"}))
    assert Regularizer().config() == NoRegularizer().config()
    assert "adversary" not in NoRegularizer().config()  # keys of other regularizers did not change


def test_the_radius_old_name_epsilon_still_works_for_one_release_and_keys_stay_the_same():
    metric = Adversarial()
    with pytest.warns(FutureWarning, match="adversarial.epsilon is renamed adversarial.radius"):
        old = metric.options({"epsilon": "0.1"})
    assert old == metric.options({"radius": "0.1"}) and old["radius"] == 0.1 and "epsilon" not in old
    with pytest.raises(W2SBenchError, match="differ"), pytest.warns(FutureWarning):
        metric.options({"epsilon": "0.1", "radius": "0.2"})
    # the live stage's key holds the options under their old names: stages cached before the rename stay valid
    key_options = metric.cache_key_options(metric.options())
    assert key_options["epsilon"] == 0.05 and "radius" not in key_options
    assert list(key_options) == [{"radius": "epsilon"}.get(k, k) for k in metric.options()]
    with pytest.warns(DeprecationWarning, match="renamed radius"):
        assert EmbeddingAdversary(epsilon=0.3, steps=2) == EmbeddingAdversary(radius=0.3, steps=2)


def test_trainer_refuses_an_embedding_adversary_in_head_mode(tiny_models):
    texts, labels = toy_sentiment(8, seed=0)
    with pytest.raises(W2SBenchError, match="head mode"):
        train_classifier(
            _classifier(tiny_models["bert"]), "head", texts, np.eye(2)[labels], {}, EmbeddingAdversarialTraining(1.0, 0.1, 1),
            default_train_config("head", epochs=1), seed=0, features=lambda t: np.zeros((len(t), 32), dtype=np.float32),
        )


def _embedding_worst_loss(model: Classifier, texts: list[str], labels: np.ndarray, epsilon: float) -> float:
    model.eval()
    batch = model.tokenize(texts)
    embeddings = model.embed(batch.pop("input_ids")).detach()
    logits_of = lambda e: model(input_ids=None, inputs_embeds=e, **batch)  # noqa: E731
    targets = torch.eye(2)[torch.as_tensor(labels)]
    delta = worst_case_perturbation(logits_of, embeddings, batch["attention_mask"], targets, EmbeddingAdversary(epsilon, 3))
    with torch.no_grad():
        return _xent(logits_of(embeddings + delta), labels)


@pytest.mark.slow
def test_embedding_adversarial_training_lowers_the_worst_case_loss(tiny_models):
    texts, labels = toy_sentiment(400, seed=0)
    test_texts, test_labels = toy_sentiment(300, seed=1)
    config = default_train_config("full", epochs=8, lr=2e-3)
    models = {}
    for name, reg in (("plain", NoRegularizer()), ("adversarial", EmbeddingAdversarialTraining(1.0, 0.2, 1))):
        models[name] = _classifier(tiny_models["bert"])
        train_classifier(models[name], "full", texts, np.eye(2)[labels], {}, reg, config, seed=0)
    worst = {name: _embedding_worst_loss(m, test_texts, test_labels, 0.2) for name, m in models.items()}
    assert worst["adversarial"] < 0.5 * worst["plain"], worst
    clean = {name: float((m.predict_proba(test_texts).argmax(1) == test_labels).mean()) for name, m in models.items()}
    assert clean["adversarial"] > 0.95, clean  # clean accuracy is kept


@pytest.mark.slow
def test_partial_fine_tuning_perturbs_the_cached_states_of_the_trained_layers(tiny_models):
    from w2sbench.training.prefix import PrefixCache, TopLayers

    texts, labels = toy_sentiment(400, seed=0)
    test_texts, test_labels = toy_sentiment(300, seed=1)
    # Hidden states in the middle of a network are far more sensitive than word embeddings: a smaller radius.
    config = default_train_config("full", epochs=8, lr=5e-3, trainable_layers=1)
    ratios = []
    for seed in range(3):  # the effect varies with the seed
        worst, clean = {}, {}
        for name, reg in (("plain", NoRegularizer()), ("adversarial", EmbeddingAdversarialTraining(1.0, 0.05, 1))):
            model = _classifier(tiny_models["bert-big"])
            prefix = PrefixCache(model, 1)
            train_classifier(model, "full", texts, np.eye(2)[labels], {}, reg, config, seed=seed, prefix=prefix)
            top = TopLayers(model, 1)
            top.eval()
            batch = prefix.batch(test_texts)
            states = batch.pop("states")
            logits_of = lambda s: prefix.logits_of_batch(top, {**batch, "states": s})  # noqa: E731, B023 - used in this iteration
            targets = torch.eye(2)[torch.as_tensor(test_labels)]
            delta = worst_case_perturbation(logits_of, states, batch["attention_mask"], targets, EmbeddingAdversary(0.05, 3))
            with torch.no_grad():
                worst[name] = _xent(logits_of(states + delta), test_labels)
                # the cached path gives the full model's logits
                full = model.predict_proba(test_texts)
                assert np.allclose(torch.softmax(logits_of(states), -1).numpy(), full, atol=2e-3)
            clean[name] = float((full.argmax(1) == test_labels).mean())
        # clean accuracy is kept: within 5 points of the plain model's (both 1.0 with the fixed tiny vocabulary)
        assert clean["adversarial"] >= clean["plain"] - 0.05, (seed, clean)
        assert worst["adversarial"] < worst["plain"], (seed, worst)
        ratios.append(worst["adversarial"] / worst["plain"])
    assert np.mean(ratios) < 0.25, ratios  # measured 0.004-0.020 per seed, 0.012 on average
