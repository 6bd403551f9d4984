"""A trust property (``TrustProperty``): its data, its regularizer, its options, the metrics
(``MetricInfo``) it reports and the lm-eval tasks (``LmEvalTask``) it exports."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from w2sbench.errors import W2SBenchError, did_you_mean
from w2sbench.interfaces.data import DataContext, PropertyData
from w2sbench.interfaces.lm_eval import LmEvalTask
from w2sbench.interfaces.regularizers import Regularizer
from w2sbench.values import default_range, resolve_value

if TYPE_CHECKING:  # pragma: no cover - typing only
    from w2sbench.training.classifier import Classifier

__all__ = ["SHARE", "MetricInfo", "LiveScores", "TrustProperty"]


@dataclass(frozen=True)
class MetricInfo:
    """One reported number: its name, direction and meaning.

    ``bounds``: the values the score can take, (low, high), either side None for unbounded (a rate or an AUC:
    ``SHARE``, (0.0, 1.0)); reports cut a score's interval at them (a t-interval over three seeds of a rate
    near 1 would otherwise reach past 1). None: nothing known."""

    name: str
    higher_is_better: bool
    description: str
    kind: Literal["task", "trust"] = "trust"
    bounds: tuple[float | None, float | None] | None = None


# the bounds of a share, a rate, an accuracy or an AUC
SHARE: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class LiveScores:
    """What ``TrustProperty.evaluate_model`` may return instead of a plain mapping: the scores and the
    standard error of each over the examples it was computed on.

    ``scores``: score name -> value (None: undefined). ``stderr``: score name -> the standard deviation
    of that score over bootstrap resamples of its examples (``w2sbench.stats.bootstrap_stderr``), for the
    scores that have one; None when it is undefined. The core stores both in the live stage and reports
    the standard error per seed in results.json (``cells[cell].stderr``), as it does for the scores it
    computes from predictions; without it a live score's uncertainty is measured over seeds only.
    """

    scores: Mapping[str, float | None]
    stderr: Mapping[str, float | None] = field(default_factory=dict)


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
    # True when ``load_data`` reads files only through ``dataset_file`` (and its result depends only on them, the
    # options and the plugin's code): the core then keeps the loaded data between runs (w2sbench/prepared_data.py).
    prepared_data_cache: bool = False

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
    ) -> Mapping[str, float | None]:
        """Trust scores from the predicted probabilities on each test set (a pure function: no model access).

        A score is None where it is undefined on these predictions (e.g. a group-fairness difference when a
        group has no rows); summaries and findings then count it as missing, never as 0."""

    def evaluate_model(
        self, model: Classifier, data: PropertyData, options: Mapping[str, Any], seed: int
    ) -> Mapping[str, float | None] | LiveScores:
        """Trust scores that need the model itself (live attacks, extraction); default none.

        Return the scores, or ``LiveScores`` to give each its standard error over the evaluated examples
        (the issue-14 power rule judges a live score by it: at most ``findings.MAX_STDERR``).

        ``model.role`` is "weak" (trained on split A of ``split_pool``) or "strong" (split B);
        ``model.language_model()`` is the trained backbone under its pretrained causal-LM head for
        decoder models (None for encoders).
        """
        return {}

    def lm_eval_tasks(
        self, ctx: DataContext, options: Mapping[str, Any], rows: int | None, fewshot_rows: int
    ) -> list[LmEvalTask]:
        """The property's evaluation as lm-eval tasks, for ``w2sbench export-lm-eval``; default none.

        ``options`` are the property's resolved options (``self.options()``); ``rows`` is the most test
        rows per task (>= 1; None: the property's own default size), ``fewshot_rows`` the number of
        few-shot demonstrations where the property samples them (>= 0). Load data as ``load_data`` does
        (``ctx``), and raise ``W2SBenchError`` for data the user must fix. The core writes each task
        (``w2sbench/interfaces/lm_eval.py``) under the export folder and refuses duplicate task names.
        """
        return []
