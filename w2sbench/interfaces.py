"""The objects plugins hand to the core: model families, named pairs, strategies, trust properties, exporters.

Keep these small: a plugin author should be able to read this file in five minutes.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from w2sbench.errors import W2SBenchError, did_you_mean
from w2sbench.values import default_range, resolve_value

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from w2sbench.training.classifier import Classifier

__all__ = [
    "ModelSpec",
    "ModelFamily",
    "NamedPair",
    "Examples",
    "PropertyData",
    "DataContext",
    "MetricInfo",
    "PenaltyContext",
    "PrivacySpec",
    "EmbeddingAdversary",
    "Regularizer",
    "NoRegularizer",
    "TrustProperty",
    "Strategy",
    "Teacher",
    "TransferLoss",
    "reference_cells",
    "Exporter",
]


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's weights come from, resolved from a user-facing name such as ``pythia-1b``."""

    name: str
    source: str  # hub repo id, or a local folder when ``local`` is true
    revision: str | None = None
    local: bool = False
    gguf_file: str | None = None  # a GGUF file inside ``source`` (dequantized on load)
    num_layers: int | None = None  # keep only the first k transformer layers (weaker variants)
    params: int | None = None  # approximate parameter count, for size ordering and plots
    family: str = ""
    architecture: Literal["encoder", "decoder", ""] = ""

    def cache_key(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "revision": self.revision,
            "gguf_file": self.gguf_file,
            "num_layers": self.num_layers,
        }


class ModelFamily(ABC):
    """Resolves model names of one family (``pythia-*``, ``hf:<org>/<name>``, ...) to ``ModelSpec``s."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def resolve(self, name: str) -> ModelSpec | None:
        """The spec for ``name``, or None when this family does not know it."""

    def names(self) -> list[str]:
        """Names this family knows (for listings and did-you-mean); patterns may be shown as e.g. ``hf:<org>/<name>``."""
        return []

    def describe(self, name: str) -> str:
        """A one-line description of a name (size, notes) for ``w2sbench list models``."""
        spec = self.resolve(name)
        if spec is None or spec.params is None:
            return ""
        return f"{spec.params / 1e6:,.0f}M parameters"


@dataclass(frozen=True)
class NamedPair:
    """A named weak/strong combination, e.g. the offline default."""

    name: str
    weak: str
    strong: str
    description: str = ""
    # Fine-tune modes to use on a CPU when the user does not choose, as "WEAK:STRONG" (e.g. "head:full").
    cpu_finetune: str | None = None
    # Training settings for those CPU modes, per mode, e.g. {"full": {"trainable_layers": 2}}; user --train wins.
    cpu_train: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


# --------------------------------------------------------------------------- data


@dataclass
class Examples:
    """Labelled texts with optional per-example attributes (e.g. the sensitive attribute for fairness)."""

    ids: list[str]
    texts: list[str]
    labels: np.ndarray
    attributes: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.texts)
        if len(self.ids) != n or len(self.labels) != n:
            raise ValueError(f"Examples: {len(self.ids)} ids, {n} texts, {len(self.labels)} labels")
        for key, values in self.attributes.items():
            if len(values) != n:
                raise ValueError(f"Examples: attribute {key!r} has {len(values)} values for {n} texts")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int] | np.ndarray) -> Examples:
        idx = np.asarray(index, dtype=np.int64)
        return Examples(
            ids=[self.ids[i] for i in idx],
            texts=[self.texts[i] for i in idx],
            labels=self.labels[idx],
            attributes={k: np.asarray(v)[idx] for k, v in self.attributes.items()},
        )

    def fingerprint(self) -> str:
        """A hash of everything in these examples; part of every cache key that depends on them."""
        h = hashlib.sha256()
        h.update(json.dumps([self.ids, self.texts], ensure_ascii=False).encode())
        h.update(self.labels.tobytes())
        for key in sorted(self.attributes):
            h.update(key.encode())
            h.update(json.dumps(np.asarray(self.attributes[key]).tolist()).encode())
        return h.hexdigest()


@dataclass
class PropertyData:
    """A trust property's data: a training pool (split by the core into A, B, validation) and test sets."""

    train: Examples
    tests: dict[str, Examples]
    main_test: str  # the test set on which the task metric (accuracy, AUROC) is reported
    num_labels: int = 2
    label_names: tuple[str, ...] = ("0", "1")
    sources: dict[str, str] = field(default_factory=dict)  # file or dataset -> sha256 / revision
    # Auxiliary data beyond the examples: what the property's own ``evaluate_model`` needs (e.g. extraction
    # prompts) and its data-hygiene counts under "hygiene" (recorded in results.json); never predicted on.
    auxiliary: dict[str, Any] = field(default_factory=dict)
    # The deprecated name of ``auxiliary`` (one release): ``PropertyData(..., resources={...})`` still works.
    resources: InitVar[dict[str, Any] | None] = None

    def __post_init__(self, resources: dict[str, Any] | None) -> None:
        if resources is not None:
            warnings.warn("PropertyData(resources=...) is renamed auxiliary=...; the old name works for one more release.",
                          DeprecationWarning, stacklevel=3)
            self.auxiliary = {**resources, **self.auxiliary}


def _deprecated_resources(self: PropertyData) -> dict[str, Any]:
    """``PropertyData.resources``: the deprecated name of ``auxiliary`` (one release), with a DeprecationWarning."""
    warnings.warn("PropertyData.resources is renamed auxiliary; the old name works for one more release.",
                  DeprecationWarning, stacklevel=2)
    return self.auxiliary


# Set after the dataclass is built, so that the constructor's ``resources`` keyword keeps its default of None.
PropertyData.resources = property(_deprecated_resources)  # type: ignore[assignment,method-assign]


@dataclass(frozen=True)
class DataContext:
    """Where data comes from: a local mirror folder (``--data-dir``) or, when None, the upstream source."""

    data_dir: Path | None
    cache_dir: Path


# --------------------------------------------------------------------------- trust properties


@dataclass(frozen=True)
class MetricInfo:
    """One reported number: its name, direction and meaning."""

    name: str
    higher_is_better: bool
    description: str
    kind: Literal["task", "trust"] = "trust"


@dataclass
class PenaltyContext:
    """What a regularizer sees for one training batch."""

    logits: torch.Tensor  # (batch, num_labels) on the clean inputs
    targets: torch.Tensor  # (batch, num_labels) probabilities the model is trained towards
    attributes: dict[str, torch.Tensor]  # per-example attributes of the batch, as tensors
    view_logits: list[torch.Tensor]  # logits on each extra view the regularizer asked for (see ``views``)


@dataclass(frozen=True)
class PrivacySpec:
    """Train with DP-SGD (opacus) to this privacy budget; delta None means 1/(100 N) (trainer.dp_delta)."""

    target_epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    # Part of the trained model's cache key: stages trained before empty Poisson batches counted as steps
    # (and before the 1/(100 N) default delta) report a lower epsilon than their mechanism's, so never reuse them.
    accounting: str = "every-poisson-batch"


@dataclass(frozen=True, init=False)
class EmbeddingAdversary:
    """Adversarial training in input space (Miyato et al. 2017; Madry et al. 2018): each batch also trains on
    its worst-case perturbation, found by ``steps`` normalised gradient-ascent steps on the loss.

    The perturbation acts on the input embeddings (``lora``, ``full``) or, for partial fine-tuning on
    cached states, on the hidden states entering the trained top layers. Its L2 norm per token is at most
    ``radius`` times that token's own vector norm, so one value fits every model's embedding scale.
    (``radius`` was called ``epsilon`` before; that name now means only the DP budget, ``PrivacySpec``.)
    """

    radius: float
    steps: int = 1
    weight: float = 1.0  # the loss adds weight x cross-entropy on the perturbed inputs

    def __init__(self, radius: float | None = None, steps: int = 1, weight: float = 1.0, *, epsilon: float | None = None) -> None:
        """``epsilon=`` is the deprecated name of ``radius`` (one release), with a DeprecationWarning."""
        if epsilon is not None:
            warnings.warn("EmbeddingAdversary(epsilon=...) is renamed radius=...; the old name works for one more release.",
                          DeprecationWarning, stacklevel=2)
            radius = epsilon if radius is None else radius
        if radius is None:
            raise TypeError("EmbeddingAdversary needs a radius")
        object.__setattr__(self, "radius", radius)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "weight", weight)

    def cache_key(self) -> dict[str, Any]:
        """The trained model's cache-key part. The radius is hashed under its old name "epsilon", so that models
        trained before the rename keep their keys (and are not retrained)."""
        return {"epsilon": self.radius, "steps": self.steps, "weight": self.weight}


class Regularizer:
    """A trust regularizer. Override ``penalty`` (a loss term), ``views`` (extra input views), or set
    ``privacy`` (DP-SGD) or ``adversary`` (input-space adversarial training)."""

    name: str = "none"
    weight: float = 0.0
    privacy: PrivacySpec | None = None
    adversary: EmbeddingAdversary | None = None

    def config(self) -> dict[str, Any]:
        """Everything that changes training; it becomes part of the trained model's cache key."""
        out = {"name": self.name, "weight": self.weight, "privacy": self.privacy and vars(self.privacy)}
        if self.adversary is not None:  # only when set, so keys of regularizers without one stay as they were
            out["adversary"] = self.adversary.cache_key()
        return out

    def for_training(self, role: str, mode: str) -> Regularizer:
        """The regularizer to train ``role`` ("weak" or "strong") in fine-tune ``mode`` ("head", "lora",
        "full") with; override to vary it by phase or mode (default: this one, unchanged)."""
        return self

    def views(self, texts: Sequence[str], seed: int) -> list[list[str]]:
        """Extra versions of the training texts (e.g. perturbed copies) whose logits reach ``penalty``."""
        return []

    def penalty(self, ctx: PenaltyContext) -> torch.Tensor | None:
        """A loss term added to the training loss (already weighted), or None."""
        return None


class NoRegularizer(Regularizer):
    """Plain training."""


class TrustProperty(ABC):
    """A trust property: its data, its regularizer and the metrics it reports."""

    name: str = ""
    description: str = ""
    metrics: tuple[MetricInfo, ...] = ()
    primary: str = ""  # the headline trust score used for trust gap recovered and verdicts
    default_options: Mapping[str, Any] = {}
    # Type and valid range per option (w2sbench/values.py); undeclared ones get values.default_range.
    option_ranges: Mapping[str, Any] = {}
    # Options renamed in this release, new name -> old name. The old name still works for one release (with a
    # FutureWarning), and the options enter cache keys under their old names (``cache_key_options``).
    renamed_options: Mapping[str, str] = {}

    def options(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Default options updated with the user's ``--option name.key=value`` overrides."""
        merged = dict(self.default_options)
        for key, value in self._current_names(overrides or {}).items():
            if key not in merged:
                raise W2SBenchError(
                    f'Trust property "{self.name}" has no option "{key}".' + did_you_mean(key, merged),
                    f"Use one of: {', '.join(sorted(merged)) or '(none)'}.",
                )
            default = merged[key]
            rng = self.option_ranges.get(key) or default_range(key, default)
            merged[key] = resolve_value(value, rng, f"{self.name}.{key}", "Option", default)
        return merged

    def _current_names(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """``overrides`` with renamed options under their new names (a FutureWarning per old name used)."""
        new_name = {old: new for new, old in self.renamed_options.items()}
        out: dict[str, Any] = {}
        for key, value in overrides.items():
            if key in new_name:
                warnings.warn(f"{self.name}.{key} is renamed {self.name}.{new_name[key]}; the old name works for one "
                              "more release.", FutureWarning, stacklevel=3)
                if new_name[key] in overrides and overrides[new_name[key]] != value:
                    raise W2SBenchError(f"{self.name}.{new_name[key]} and {self.name}.{key} (its old name) differ.",
                                        f"Pass only {self.name}.{new_name[key]}.")
            out[new_name.get(key, key)] = value
        return out

    def cache_key_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` as they enter a stage's cache key: renamed ones under their old names, so that stages
        cached before a rename keep their keys."""
        return {self.renamed_options.get(k, k): v for k, v in options.items()}

    @abstractmethod
    def load_data(self, ctx: DataContext, options: Mapping[str, Any]) -> PropertyData:
        """Load the training pool and test sets (from ``ctx.data_dir`` when set, else upstream)."""

    @abstractmethod
    def regularizer(self, options: Mapping[str, Any]) -> Regularizer:
        """The trust regularizer used when a strategy regularizes a phase."""

    @abstractmethod
    def evaluate(
        self, data: PropertyData, probabilities: Mapping[str, np.ndarray], options: Mapping[str, Any]
    ) -> dict[str, float]:
        """Trust scores from the predicted probabilities on each test set (a pure function: no model access)."""

    def evaluate_model(
        self, model: Classifier, data: PropertyData, options: Mapping[str, Any], seed: int
    ) -> dict[str, float]:
        """Trust scores that need the model itself (live attacks, extraction); default none.

        ``model.role`` is "weak" (trained on split A of ``split_pool``) or "strong" (split B);
        ``model.language_model()`` is the trained backbone under its pretrained causal-LM head for
        decoder models (None for encoders).
        """
        return {}


# --------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Teacher:
    """One weak supervisor: the weak model trained on part ``part[0]`` of ``part[1]`` equal parts of split A,
    with the run's seed plus ``seed_offset``; ``regularized`` None follows the strategy's ``regularize_weak``.
    ``Teacher()`` is the run's plain (or regularized) weak model itself, trained once for every strategy."""

    seed_offset: int = 0
    part: tuple[int, int] = (0, 1)
    regularized: bool | None = None

    def is_default(self) -> bool:
        return self.seed_offset == 0 and tuple(self.part) == (0, 1)


class TransferLoss:
    """The strong model's loss per batch: ``loss(logits, targets, weights, progress)``.

    logits (batch, num_labels) float32; targets (batch, num_labels) rows of probabilities; weights (batch,)
    non-negative row weights; progress in [0, 1], the fraction of training done (for warm-ups). Returns a
    scalar tensor. ``config`` (class name and fields) is part of the strong model's cache key.
    """

    name: str = "custom"

    def config(self) -> dict[str, Any]:
        fields = asdict(self) if hasattr(self, "__dataclass_fields__") else dict(vars(self))  # type: ignore[call-overload]
        return {"loss": f"{type(self).__module__}.{type(self).__qualname__}", **fields}

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, progress: float) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Strategy:
    """A weak-to-strong training strategy: who teaches, what the strong model learns from, how, and which
    phases get the trust regularizer (docs/strategies.md).

    The defaults are the paper's strategies: one weak model teaches, its soft labels are the targets, the loss is
    cross-entropy. ``teachers`` names several weak supervisors; ``curate`` turns their probabilities on split B
    into targets and row weights (rows of weight 0 are left out of training); ``loss`` replaces cross-entropy.
    """

    name: str
    description: str
    regularize_weak: bool
    regularize_strong: bool
    # "soft": train towards the weak model's probabilities; "hard": towards its argmax labels.
    transfer: Literal["soft", "hard"] = "soft"
    teachers: tuple[Teacher, ...] = ()  # () means (Teacher(),): the run's weak model
    loss: TransferLoss | None = None  # None: cross-entropy towards the targets
    in_default_run: bool = True  # run when the user names no --strategies

    def teacher_list(self) -> tuple[Teacher, ...]:
        """The weak supervisors, with ``regularized`` resolved."""
        return tuple(replace(t, regularized=self.regularize_weak if t.regularized is None else t.regularized) for t in self.teachers or (Teacher(),))

    def transfer_targets(self, weak_probabilities: np.ndarray) -> np.ndarray:
        """Turn the weak model's probabilities on split B into the strong model's training targets."""
        if self.transfer == "hard":
            hard = np.zeros_like(weak_probabilities)
            hard[np.arange(len(hard)), weak_probabilities.argmax(1)] = 1.0
            return hard
        return weak_probabilities

    def combine(self, teacher_probabilities: Sequence[np.ndarray]) -> np.ndarray:
        """The teachers' joint prediction (n, num_labels): their mean; one teacher's own array unchanged. It is
        also the reference weak model of the strategy's gap recovered on the test sets."""
        if len(teacher_probabilities) == 1:
            return teacher_probabilities[0]
        return np.mean(np.stack(teacher_probabilities), axis=0)

    def curate(self, teacher_probabilities: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Targets (n, num_labels) and row weights (n,) for the strong model from the teachers' probabilities
        on split B (one (n, num_labels) array per teacher, in ``teacher_list`` order)."""
        targets = self.transfer_targets(self.combine(teacher_probabilities))
        return targets, np.ones(len(targets))


def reference_cells(strategy: Strategy) -> tuple[str, str]:
    """The weak cell and the ceiling cell that a strategy's gap recovered is measured against.

    A strategy taught by the run's weak model alone refers to ``weak`` or ``weak-reg``; any other teacher set
    refers to its own cell ``<strategy>:teachers`` (the teachers' ``combine`` on the test sets). The ceiling is
    ``ceiling-reg`` when the strong phase is regularized, else ``ceiling``."""
    teachers = strategy.teacher_list()
    if len(teachers) == 1 and teachers[0].is_default():
        weak = "weak-reg" if teachers[0].regularized else "weak"
    else:
        weak = f"{strategy.name}:teachers"
    return weak, "ceiling-reg" if strategy.regularize_strong else "ceiling"


# --------------------------------------------------------------------------- exporters


class Exporter(ABC):
    """Writes one or more run results in some format."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def export(self, results: Sequence[Mapping[str, Any]], destination: Path, run_dirs: Sequence[Path]) -> Path:
        """Write ``results`` (parsed results.json files) to ``destination``; return the written path."""


PredictFn = Callable[[Sequence[str]], np.ndarray]


def __getattr__(name: str) -> Any:
    """``TrustMetric``: the deprecated name of ``TrustProperty`` (one release), with a DeprecationWarning."""
    if name == "TrustMetric":
        warnings.warn("w2sbench.interfaces.TrustMetric is renamed TrustProperty; the old name works for one more release.",
                      DeprecationWarning, stacklevel=2)
        return TrustProperty
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
