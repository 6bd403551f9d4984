"""Fairness on UCI Adult: income prediction from text-serialised census rows, with a group-fairness
regularizer and fairlearn group metrics.

Choices the paper leaves open (docs/properties.md): rows are serialised as "field: value" text
without fnlwgt and education-num; the sensitive attribute is ``sex`` (female = group 1) or ``race``
(non-white = group 1, binarised because several race groups have too few rows for stable rates);
the test set is a fixed random subset of adult.test, the same for every seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from w2sbench import hookimpl
from w2sbench.data import dataset_file, file_sha256
from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import DataContext, Examples, MetricInfo, PenaltyContext, PropertyData, Regularizer, TrustMetric

__all__ = ["Fairness", "GroupFairnessPenalty", "load_adult", "serialize_row", "group_metrics"]

UPSTREAM = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income",
)
_SHOWN = (
    ("age", "age"), ("workclass", "workclass"), ("education", "education"), ("marital-status", "marital status"),
    ("occupation", "occupation"), ("relationship", "relationship"), ("race", "race"), ("sex", "sex"),
    ("capital-gain", "capital gain"), ("capital-loss", "capital loss"), ("hours-per-week", "hours per week"),
    ("native-country", "native country"),
)
SENSITIVE = {"sex": ("Female", "female vs male"), "race": ("non-White", "non-white vs white")}


def serialize_row(row: Mapping[str, str], style: str = "compact") -> str:
    """A census row as text. ``verbose``: "field: value" pairs; ``compact`` (default): values in a fixed
    order with hyphens spelled as spaces, about 40% fewer tokens (what makes CPU fine-tuning affordable)."""
    value = {col: (row[col] if row[col] != "?" else "unknown") for col, _ in _SHOWN}
    if style == "verbose":
        return ", ".join(f"{label}: {value[col]}" for col, label in _SHOWN)
    v = {k: x.replace("-", " ") for k, x in value.items()}
    return (
        f"{v['age']} years old, {v['workclass']}, {v['education']}, {v['marital-status']}, {v['occupation']}, "
        f"{v['relationship']}, {v['race']}, {v['sex']}, capital gain {v['capital-gain']}, capital loss "
        f"{v['capital-loss']}, {v['hours-per-week']} hours a week, from {v['native-country']}"
    )


def _group(row: Mapping[str, str], attribute: str) -> int:
    if attribute == "sex":
        return int(row["sex"] == "Female")
    return int(row["race"] != "White")


def load_adult(path: str, split: str) -> list[dict[str, str]]:
    """Parse adult.data / adult.test (skipping adult.test's junk first line and trailing '.' on labels)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("|"):
                continue
            values = [v.strip() for v in line.split(",")]
            if len(values) != len(COLUMNS):
                raise W2SBenchError(
                    f"{path} line {number} has {len(values)} columns; UCI Adult has {len(COLUMNS)}.",
                    "Replace the file with the original UCI Adult file.",
                )
            row = dict(zip(COLUMNS, values, strict=True))
            row["income"] = row["income"].rstrip(".")
            if row["income"] not in {"<=50K", ">50K"}:
                raise W2SBenchError(
                    f"{path} line {number}: income label {row['income']!r} is neither <=50K nor >50K.",
                    "Replace the file with the original UCI Adult file.",
                )
            row["_id"] = f"{split}-{number}"
            rows.append(row)
    return rows


def _examples(rows: list[dict[str, str]], style: str = "compact") -> Examples:
    return Examples(
        ids=[r["_id"] for r in rows],
        texts=[serialize_row(r, style) for r in rows],
        labels=np.array([int(r["income"] == ">50K") for r in rows]),
        attributes={a: np.array([_group(r, a) for r in rows]) for a in SENSITIVE},
    )


def _rate(mask: np.ndarray, values: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


def group_metrics(labels: np.ndarray, predicted: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """fairlearn's demographic parity and equalized odds differences, plus equal opportunity (TPR gap)
    and predictive parity (precision gap) between the two groups."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    g1, g0 = groups == 1, groups == 0
    pos = labels == 1
    tpr_gap = abs(_rate(g1 & pos, predicted) - _rate(g0 & pos, predicted))
    ppv_gap = abs(_rate(g1 & (predicted == 1), labels) - _rate(g0 & (predicted == 1), labels))
    return {
        "demographic_parity_difference": float(demographic_parity_difference(labels, predicted, sensitive_features=groups)),
        "equalized_odds_difference": float(equalized_odds_difference(labels, predicted, sensitive_features=groups)),
        "equal_opportunity_difference": tpr_gap,
        "predictive_parity_difference": ppv_gap,
        "positive_rate_group1": _rate(g1, predicted),
        "positive_rate_group0": _rate(g0, predicted),
    }


class GroupFairnessPenalty(Regularizer):
    """Differentiable group-fairness penalty on a batch: the absolute gap in mean predicted positive
    probability between groups (demographic parity), or that gap within each label (equalized odds)."""

    def __init__(self, kind: str, weight: float, attribute: str, phase_weights: Mapping[str, float] | None = None) -> None:
        self.name = f"fairness-{kind}"
        self.kind = kind
        self.weight = weight
        self.attribute = attribute
        # per-role overrides of ``weight`` ("weak", "strong"); the weak and the strong model's data differ in size and label noise
        self.phase_weights = dict(phase_weights or {})

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "attribute": self.attribute}

    def for_training(self, role: str, mode: str) -> Regularizer:
        weight = self.phase_weights.get(role, self.weight)
        return self if weight == self.weight else GroupFairnessPenalty(self.kind, weight, self.attribute)

    @staticmethod
    def _gap(p: Any, g: Any, mask: Any) -> Any:
        import torch

        m1, m0 = mask & (g == 1), mask & (g == 0)
        if not bool(m1.any()) or not bool(m0.any()):
            return torch.zeros((), device=p.device)
        return (p[m1].mean() - p[m0].mean()).abs()

    def penalty(self, ctx: PenaltyContext) -> Any:
        import torch

        p = torch.softmax(ctx.logits, dim=-1)[:, 1]
        g = ctx.attributes[self.attribute]
        everyone = torch.ones_like(g, dtype=torch.bool)
        if self.kind == "demographic_parity":
            gap = self._gap(p, g, everyone)
        else:
            y = ctx.targets.argmax(-1)
            gap = self._gap(p, g, y == 1) + self._gap(p, g, y == 0)
        return self.weight * gap


class Fairness(TrustMetric):
    name = "fairness"
    description = "UCI Adult income; group fairness w.r.t. a sensitive attribute"
    primary = "demographic_parity_difference"
    metrics = (
        MetricInfo("demographic_parity_difference", False, "Gap in positive-prediction rate between groups (fairlearn)."),
        MetricInfo("equalized_odds_difference", False, "Larger of the TPR and FPR gaps between groups (fairlearn)."),
        MetricInfo("equal_opportunity_difference", False, "Gap in true-positive rate between groups."),
        MetricInfo("predictive_parity_difference", False, "Gap in precision between groups."),
    )
    default_options = {
        "sensitive_attribute": "sex",
        "regularizer": "demographic_parity",
        "weight": 0.5,
        "weak_weight": -1.0,  # the weak model's penalty weight; negative = use weight
        "strong_weight": -1.0,  # the strong models' (ceiling-reg, weak-wts-tft); negative = use weight
        "weak_train_size": 200,
        "transfer_size": 2000,
        "val_size": 200,
        "test_size": 2000,
        "max_length": 64,
        "serialization": "compact",
    }

    def load_data(self, ctx: DataContext, options: Mapping[str, Any]) -> PropertyData:
        attribute = options["sensitive_attribute"]
        if attribute not in SENSITIVE:
            raise W2SBenchError(
                f'Unknown sensitive attribute "{attribute}".', f"Use --option fairness.sensitive_attribute={'|'.join(SENSITIVE)}."
            )
        train_path = dataset_file(ctx, "adult/adult.data", UPSTREAM + "adult.data")
        test_path = dataset_file(ctx, "adult/adult.test", UPSTREAM + "adult.test")
        style = options["serialization"]
        if style not in {"compact", "verbose"}:
            raise W2SBenchError(f'Unknown serialization "{style}".', "Use --option fairness.serialization=compact or verbose.")
        train = _examples(load_adult(str(train_path), "train"), style)
        test = _examples(load_adult(str(test_path), "test"), style)
        n = int(options["test_size"])
        if 0 < n < len(test):
            # A fixed subset, the same for every seed, so seeds differ only in training.
            test = test.subset(np.sort(np.random.default_rng(12345).choice(len(test), n, replace=False)))
        return PropertyData(
            train=train,
            tests={"adult_test": test},
            main_test="adult_test",
            label_names=("<=50K", ">50K"),
            sources={"adult/adult.data": file_sha256(train_path), "adult/adult.test": file_sha256(test_path)},
        )

    def regularizer(self, options: Mapping[str, Any]) -> Regularizer:
        kind = options["regularizer"]
        if kind not in {"demographic_parity", "equalized_odds"}:
            raise W2SBenchError(
                f'Unknown fairness regularizer "{kind}".',
                "Use --option fairness.regularizer=demographic_parity or equalized_odds.",
            )
        weights = {"weight": float(options["weight"]), "weak": float(options["weak_weight"]), "strong": float(options["strong_weight"])}
        if weights["weight"] < 0:
            raise W2SBenchError(f"fairness.weight is {weights['weight']}; a penalty weight cannot be negative.", "Pass e.g. --option fairness.weight=0.5.")
        phase = {role: w for role, w in weights.items() if role != "weight" and w >= 0}
        return GroupFairnessPenalty(kind, weights["weight"], options["sensitive_attribute"], phase)

    def evaluate(
        self, data: PropertyData, probabilities: Mapping[str, np.ndarray], options: Mapping[str, Any]
    ) -> dict[str, float]:
        test = data.tests["adult_test"]
        predicted = probabilities["adult_test"].argmax(1)
        scores = group_metrics(test.labels, predicted, test.attributes[options["sensitive_attribute"]])
        return {k: scores[k] for k in (m.name for m in self.metrics)}


@hookimpl
def w2sbench_register_trust_metrics() -> list[TrustMetric]:
    return [Fairness()]
