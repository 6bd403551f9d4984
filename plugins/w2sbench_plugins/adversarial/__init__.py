"""Adversarial robustness: train on SST-2; score robust accuracy on AdvGLUE's adversarial SST-2
sentences and the success of live textattack attacks (DeepWordBug, Pruthi) on each trained model.
The regularizer is adversarial training: in input-embedding space where the backbone is fine-tuned
(``lora``, ``full``), and as augmentation with the worst of k perturbed copies of each input where it
is frozen (``head``); ``method`` picks one for every phase instead.

Choices the paper leaves open are in docs/properties.md (section ``adversarial``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from w2sbench.plugin_api import (
    SHARE,
    DataContext,
    EmbeddingAdversary,
    Examples,
    LiveScores,
    MetricInfo,
    PenaltyContext,
    PropertyData,
    Range,
    Regularizer,
    TrustProperty,
    W2SBenchError,
    bootstrap_stderr,
    dataset_file,
    did_you_mean,
    file_sha256,
    hookimpl,
)
from w2sbench_plugins._sst2 import fixed_subset, load_sst2_splits
from w2sbench_plugins.adversarial._perturbations import (
    CHARACTER_EDITS,
    PerturbedViews,
    check_edits,
    import_textattack,
    seeded_globals,
)
from w2sbench_plugins.adversarial._search import early_stopping, shared_transformations
from w2sbench_plugins.adversarial._word_split import memoized_word_splitting

if TYPE_CHECKING:  # pragma: no cover - typing only
    from w2sbench.training.classifier import Classifier

__all__ = [
    "Adversarial",
    "AdversarialAugmentation",
    "EmbeddingAdversarialTraining",
    "AdversarialTraining",
    "METHODS",
    "ADVGLUE_URL",
    "attack_stderr",
    "ATTACKS",
    "load_advglue_sst2",
    "attack_scores",
    "run_attack",
    "classifier_wrapper",
    "transient_states",
]

ADVGLUE_URL = "https://raw.githubusercontent.com/HowieHwong/TrustLLM/main/dataset/robustness/AdvGLUE.json"
_SUFFIX = "Tell me the answer without any other reasons and explanations."
ATTACKS = {"deepwordbug": "DeepWordBugGao2018", "pruthi": "Pruthi2019"}  # the recipes that run offline
# auto: embedding-space training where the backbone trains, augmentation where only a head does
METHODS = ("auto", "embedding", "augmentation")


def _sentence(prompt: str) -> str:
    """The SST-2 sentence inside a TrustLLM AdvGLUE prompt: after 'Sentence:', without the instruction suffix."""
    if "Sentence:" not in prompt:
        raise W2SBenchError("An AdvGLUE sst2 prompt has no 'Sentence:'.", "Replace advglue/AdvGLUE.json with TrustLLM's file.")
    text = prompt.split("Sentence:", 1)[1].strip()
    if text.endswith(_SUFFIX):
        text = text[: -len(_SUFFIX)].strip()
    return text


def load_advglue_sst2(path: str) -> tuple[Examples, Examples]:
    """AdvGLUE's SST-2 pairs as (originals, adversarial rewrites), aligned by index."""
    with open(path, encoding="utf-8") as f:
        rows = [r for r in json.load(f) if r.get("task") == "sst2"]
    pairs: dict[int, dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        pairs.setdefault(int(row["index"]), {})[row["type"]] = row
    complete = sorted(i for i, p in pairs.items() if {"original", "modified"} <= set(p))
    if not complete:
        raise W2SBenchError(f"{path} has no AdvGLUE sst2 original/modified pairs.", "Replace it with TrustLLM's AdvGLUE.json.")

    def build(kind: str) -> Examples:
        return Examples(
            ids=[f"advglue-sst2-{i}-{kind}" for i in complete],
            texts=[_sentence(pairs[i][kind]["prompt"]) for i in complete],
            labels=np.array([int(pairs[i][kind]["label"]) for i in complete]),
            attributes={"method": np.array([pairs[i]["modified"]["method"] for i in complete])},
        )

    return build("original"), build("modified")


def _accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float((np.asarray(probabilities).argmax(1) == labels).mean())


def attack_scores(outcomes: Sequence[str]) -> dict[str, float | None]:
    """textattack's summary numbers from per-example outcomes ("successful", "failed", "skipped").

    Success rate is over the examples that were attacked (the model was right on them); accuracy
    under attack is over all examples (skipped ones were already wrong)."""
    n = len(outcomes)
    succeeded, failed = outcomes.count("successful"), outcomes.count("failed")
    attacked = succeeded + failed
    return {
        "success_rate": succeeded / attacked if attacked else None,
        "accuracy_under_attack": failed / n if n else None,
        "clean_accuracy": attacked / n if n else None,
    }


def _attack_statistics(*coded: np.ndarray, axis: int = -1) -> np.ndarray:
    """Per attack, (success rate, accuracy under attack) of outcome codes (0 skipped, 1 failed, 2 successful),
    then the mean over attacks of each: ``(2 x attacks + 2,)`` values, vectorized along ``axis``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = [np.sum(c == 2, axis=axis) / np.sum(c >= 1, axis=axis) for c in coded]
        under = [np.mean(c == 1, axis=axis) for c in coded]
        pairs = [v for r, u in zip(rates, under, strict=True) for v in (r, u)]
        return np.stack([*pairs, np.mean(rates, axis=0), np.mean(under, axis=0)])


def attack_stderr(outcomes: Mapping[str, Sequence[str]], seed: int) -> dict[str, float | None]:
    """Standard errors of ``evaluate_model``'s attack scores over bootstrap resamples of the attacked
    sentences, drawn jointly for every attack (each attack ran on the same sentences): ``{attack}_success_rate``,
    ``{attack}_accuracy_under_attack``, ``attack_success_rate``, ``accuracy_under_attack``."""
    code = {"skipped": 0, "failed": 1, "successful": 2}
    attacks = list(outcomes)
    coded = [np.array([code[o] for o in outcomes[a]], dtype=float) for a in attacks]
    errors = bootstrap_stderr(coded, _attack_statistics, paired=True, seed=seed)
    names = [f"{a}_{score}" for a in attacks for score in ("success_rate", "accuracy_under_attack")]
    return dict(zip([*names, "attack_success_rate", "accuracy_under_attack"], errors, strict=True))


def classifier_wrapper(model: Classifier, batch_size: int = 64) -> Any:
    """Our Classifier as a textattack ModelWrapper that answers with predict_proba."""
    ta = import_textattack()

    class ClassifierWrapper(ta.models.wrappers.ModelWrapper):  # type: ignore[name-defined]  # imported lazily
        def __init__(self, classifier: Classifier) -> None:
            self.model = classifier

        def __call__(self, text_input_list: list[str], **kwargs: Any) -> np.ndarray:
            return self.model.predict_proba(list(text_input_list), batch_size=batch_size)

    return ClassifierWrapper(model)


@contextlib.contextmanager
def transient_states(model: Classifier) -> Iterator[None]:
    """While attacking a partial fine-tune (training/prefix.py), keep the frozen-layer states of the perturbed
    texts only until the attack ends: thousands per model, the whole run would otherwise hold them in memory."""
    prefix = getattr(model, "_prefix", None)
    if prefix is None or not hasattr(prefix[0], "overlay"):
        yield
        return
    overlay = prefix[0].overlay()
    model.use_prefix(overlay, prefix[1])
    try:
        yield
    finally:
        model.use_prefix(*prefix)
        for counter in ("computed", "tokens"):  # the work done stays counted
            if hasattr(prefix[0], counter):
                setattr(prefix[0], counter, getattr(overlay, counter))


def run_attack(
    model: Classifier, examples: Examples, recipe: str, query_budget: int, seed: int, memoize_words: bool = True,
    stop_early: bool = True,
) -> list[str]:
    """Attack each example with a textattack recipe; the outcome per example.

    textattack's goal function sends the model lists of up to 32 candidate texts (answered in one batch
    by ``classifier_wrapper``), caches the model's output per text (repeated perturbations cost nothing)
    and ends an example's search when ``query_budget`` model queries are spent. ``memoize_words``: textattack's
    word splitting answers repeated strings from a cache (``_word_split.py``; the same outcomes, faster).
    ``stop_early``: a greedy search (Pruthi's) stops a step at its first successful candidate instead of
    querying all of them first (``_search.py``; the same outcomes, fewer queries)."""
    ta = import_textattack()
    from textattack.attack_results import (
        FailedAttackResult,
        SkippedAttackResult,
        SuccessfulAttackResult,
    )

    log = ta.shared.utils.logger
    level = log.level
    log.setLevel(logging.ERROR)  # textattack warns that it does not know our wrapper's model class
    try:
        attack = getattr(ta.attack_recipes, ATTACKS[recipe]).build(classifier_wrapper(model))
        if stop_early:
            attack = early_stopping(attack)
        attack = shared_transformations(attack, recipe)
    finally:
        log.setLevel(level)
    attack.goal_function.query_budget = query_budget
    outcomes = []
    # DeepWordBug draws from the global RNGs; seed them for this model and restore them afterwards.
    memo = memoized_word_splitting() if memoize_words else contextlib.nullcontext()
    with seeded_globals(seed), transient_states(model), memo:
        for text, label in zip(examples.texts, examples.labels.tolist(), strict=True):
            result = attack.attack(text, int(label))
            if isinstance(result, SuccessfulAttackResult):
                outcomes.append("successful")
            elif isinstance(result, SkippedAttackResult):
                outcomes.append("skipped")
            elif isinstance(result, FailedAttackResult):
                outcomes.append("failed")
            else:  # pragma: no cover - classification attacks give only the three above
                raise RuntimeError(f"unexpected attack result {type(result).__name__}")
    return outcomes


class AdversarialAugmentation(PerturbedViews):
    """weight x cross-entropy of the worst of k perturbed views of each input against its targets.

    The views are drawn before training from the character edits the attacks use; taking, per
    example, the view the current model gets most wrong makes it a (cheap) inner maximisation."""

    def __init__(self, weight: float, num_views: int, rate: float, edits: Sequence[str]) -> None:
        super().__init__("adversarial-augmentation", weight, num_views, rate, edits)

    def penalty(self, ctx: PenaltyContext) -> Any:
        import torch

        if not ctx.view_logits:
            return None
        losses = torch.stack([-(ctx.targets * torch.log_softmax(v, dim=-1)).sum(-1) for v in ctx.view_logits])
        return self.weight * losses.max(dim=0).values.mean()


class EmbeddingAdversarialTraining(Regularizer):
    """weight x cross-entropy on the worst-case perturbation of the input embeddings (w2sbench/training/adversarial.py)."""

    name = "adversarial-embedding"

    def __init__(self, weight: float, radius: float, steps: int) -> None:
        self.weight = float(weight)
        self.adversary = EmbeddingAdversary(radius=float(radius), steps=int(steps), weight=float(weight))


class AdversarialTraining(Regularizer):
    """The adversarial property's regularizer: resolves to embedding-space training or augmentation per fine-tune mode."""

    name = "adversarial"

    def __init__(self, method: str, embedding: EmbeddingAdversarialTraining, augmentation: AdversarialAugmentation) -> None:
        self.method = method
        self.embedding = embedding
        self.augmentation = augmentation

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "embedding": self.embedding.config(), "augmentation": self.augmentation.config()}

    def for_training(self, role: str, mode: str) -> Regularizer:
        if self.method == "augmentation" or (self.method == "auto" and mode == "head"):
            return self.augmentation
        if mode == "head":
            raise W2SBenchError(
                f"adversarial.method=embedding perturbs input embeddings, but the {role} model trains in head mode "
                "(a linear head on frozen features).",
                "Use --option adversarial.method=auto (augmentation where only a head trains), or fine-tune that model "
                "with --finetune lora/full.",
            )
        return self.embedding


class Adversarial(TrustProperty):
    name = "adversarial"
    description = "SST-2 sentiment; AdvGLUE robust accuracy and live character-level attacks (adversarial robustness)"
    primary = "advglue_robust_accuracy"
    prepared_data_cache = True  # load_data reads only dataset_file's files
    metrics = (
        MetricInfo("advglue_robust_accuracy", True, "Accuracy on AdvGLUE's adversarial SST-2 sentences.", bounds=SHARE),
        MetricInfo("advglue_original_accuracy", True, "Accuracy on the original sentences of those AdvGLUE pairs.", kind="task", bounds=SHARE),
        MetricInfo("advglue_accuracy_drop", False, "AdvGLUE original accuracy minus robust accuracy.", bounds=(-1.0, 1.0)),
        MetricInfo("attack_success_rate", False, "Mean over live attacks of the share of correctly classified examples flipped.", bounds=SHARE),
        MetricInfo("accuracy_under_attack", True, "Mean over live attacks of the accuracy after the attack.", bounds=SHARE),
        *(
            info
            for attack in ATTACKS
            for info in (
                MetricInfo(f"{attack}_success_rate", False, f"{ATTACKS[attack]}: share of attacked examples flipped.", bounds=SHARE),
                MetricInfo(f"{attack}_accuracy_under_attack", True, f"{ATTACKS[attack]}: accuracy after the attack.", bounds=SHARE),
            )
        ),
    )
    default_options = {
        "weak_train_size": 1000,
        "transfer_size": 1000,
        "val_size": 100,
        "max_length": 64,
        "test_size": 0,  # SST-2 dev rows for the task accuracy; 0 = all 872
        "method": "auto",  # see METHODS
        "weight": 1.0,
        "radius": 0.05,  # embedding method: per-token L2 radius, relative to the token vector's norm
        "steps": 1,  # embedding method: gradient-ascent steps (1 = fast gradient method)
        "views": 2,  # augmentation method: perturbed copies per input
        "perturb_rate": 0.15,
        "edits": list(CHARACTER_EDITS),
        "attacks": list(ATTACKS),
        "attack_examples": 200,  # issue 14: the standard error of an accuracy on 200 examples is at most 0.035
        "query_budget": 100,  # Pruthi's first greedy step alone has hundreds of candidates; the budget bounds CPU time
    }
    option_ranges = {
        "radius": Range("float", 0, low_open=True, note="per-token L2 radius relative to the token's norm"),
        "query_budget": Range("int", 1),
        "method": Range("str", note=", ".join(METHODS)),  # listed; the regularizer refuses other values
    }
    renamed_options = {"radius": "epsilon"}  # until the next release; "epsilon" is the DP budget (privacy)

    def _attacks(self, options: Mapping[str, Any]) -> list[str]:
        chosen = [a.strip() for a in options["attacks"] if a.strip()]
        for attack in chosen:
            if attack not in ATTACKS:
                raise W2SBenchError(
                    f'Unknown attack "{attack}".' + did_you_mean(attack, ATTACKS),
                    f"Use a comma-separated subset of: {', '.join(ATTACKS)} (or an empty list for none).",
                )
        return chosen

    def load_data(self, ctx: DataContext, options: Mapping[str, Any]) -> PropertyData:
        self._attacks(options)  # fail on a bad option before any training
        sst2 = load_sst2_splits(ctx, int(options["test_size"]))
        advglue_path = dataset_file(ctx, "advglue/AdvGLUE.json", ADVGLUE_URL)
        original, modified = load_advglue_sst2(str(advglue_path))
        return sst2.property_data(
            {"advglue_original": original, "advglue_modified": modified},
            {"advglue/AdvGLUE.json": file_sha256(advglue_path)},
        )

    def regularizer(self, options: Mapping[str, Any]) -> Regularizer:
        edits = check_edits(options["edits"], "adversarial.edits")
        method = str(options["method"])
        if method not in METHODS:
            raise W2SBenchError(
                f'Unknown adversarial training method "{method}".' + did_you_mean(method, METHODS),
                f"Use one of: {', '.join(METHODS)}.",
            )
        radius, steps = float(options["radius"]), int(options["steps"])
        if not 0 < radius < 10 or steps < 1:
            raise W2SBenchError(
                f"adversarial.radius={radius} and adversarial.steps={steps}: the radius must be in (0, 10) (a share of "
                "each token vector's norm) and at least one step is needed.",
                "Pass e.g. --option adversarial.radius=0.05 --option adversarial.steps=1.",
            )
        augmentation = AdversarialAugmentation(float(options["weight"]), int(options["views"]), float(options["perturb_rate"]), edits)
        return AdversarialTraining(method, EmbeddingAdversarialTraining(float(options["weight"]), radius, steps), augmentation)

    def evaluate(
        self, data: PropertyData, probabilities: Mapping[str, np.ndarray], options: Mapping[str, Any]
    ) -> dict[str, float]:
        original = _accuracy(data.tests["advglue_original"].labels, probabilities["advglue_original"])
        robust = _accuracy(data.tests["advglue_modified"].labels, probabilities["advglue_modified"])
        return {"advglue_robust_accuracy": robust, "advglue_original_accuracy": original, "advglue_accuracy_drop": original - robust}

    def evaluate_model(
        self, model: Classifier, data: PropertyData, options: Mapping[str, Any], seed: int
    ) -> dict[str, float] | LiveScores:
        attacks = self._attacks(options)
        n = int(options["attack_examples"])
        if not attacks or n <= 0:
            return {}
        dev = data.tests["sst2_dev"]
        examples = dev.subset(fixed_subset(len(dev), n))
        scores: dict[str, Any] = {}
        outcomes = {attack: run_attack(model, examples, attack, int(options["query_budget"]), seed) for attack in attacks}
        for attack, attack_outcomes in outcomes.items():
            summary = attack_scores(attack_outcomes)
            scores[f"{attack}_success_rate"] = summary["success_rate"]
            scores[f"{attack}_accuracy_under_attack"] = summary["accuracy_under_attack"]
        rates = [scores[f"{a}_success_rate"] for a in attacks if scores[f"{a}_success_rate"] is not None]
        scores["attack_success_rate"] = float(np.mean(rates)) if rates else None
        scores["accuracy_under_attack"] = float(np.mean([scores[f"{a}_accuracy_under_attack"] for a in attacks]))
        return LiveScores(scores, attack_stderr(outcomes, seed))


@hookimpl
def w2sbench_register_trust_properties() -> list[TrustProperty]:
    return [Adversarial()]
