"""The weak-to-strong pipeline: split, train weak, label, train strong, evaluate; every stage cached.

Per trust property and seed, the cells are:
  weak, weak-reg             weak model on A's ground truth (without / with the trust regularizer)
  ceiling, ceiling-reg       strong model on B's ground truth (without / with the regularizer)
  <strategy>                 strong model on the weak model's labels on B, per strategy
Stages are keyed by a hash of everything that determines them, so the regularized weak model is
trained once for weak-tft and weak-wts-tft, the ceilings once for all strategies, and a re-run or a
resumed run recomputes nothing that finished.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.design import (
    BASELINE_CELLS,
    call_plugin,
    split_pool,
    split_sizes,
    task_scores,
)
from w2sbench.errors import W2SBenchError
from w2sbench.files import stable_hash
from w2sbench.finite import NonFiniteTraining, json_safe, require_finite_probabilities
from w2sbench.interfaces import (
    DataContext,
    Examples,
    LiveScores,
    ModelSpec,
    NoRegularizer,
    PropertyData,
    Regularizer,
    TrustProperty,
    reference_cells,
)
from w2sbench.jsonio import loads_strict
from w2sbench.outcomes import PropertyOutcome, SeedOutcome, TrainedModel
from w2sbench.plugin_manager import Plugins
from w2sbench.prepared_data import PreparedDataCache
from w2sbench.progress import Progress
from w2sbench.run_models import Role, RunModels
from w2sbench.settings import RunSettings
from w2sbench.stage_cache import StageCache
from w2sbench.teachers import teacher_reference, train_strategy
from w2sbench.training import distributed
from w2sbench.training.precision import legacy_precision
from w2sbench.training.trainer import TrainConfig, train_classifier

__all__ = ["Pipeline"]



class Pipeline:
    """Runs (or serves from cache) every stage of one run."""
    def __init__(
        self,
        settings: RunSettings,
        plugins: Plugins,
        cache: StageCache,
        progress: Progress,
        weak: ModelSpec,
        strong: ModelSpec,
    ) -> None:
        self.settings = settings
        self.plugins = plugins
        self.cache = cache
        self.progress = progress
        self.data_ctx = DataContext(
            data_dir=Path(settings.data_dir) if settings.data_dir else None, cache_dir=cache.root / "downloads"
        )
        self.prepared_data = PreparedDataCache(cache.root)
        self.device = settings.device
        # one process, or one rank of `accelerate launch` (training collective, everything else on rank 0)
        self.dist = distributed.current()
        self.models = RunModels(settings, weak, strong, cache.path, self.dist)
        self.roles: dict[str, Role] = self.models.roles
        self.stage_log: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- stages

    def train_stage(
        self,
        role_name: str,
        data: Examples,
        targets: np.ndarray,
        regularizer: Regularizer,
        seed: int,
        num_labels: int,
        max_length: int,
        label: str,
        transfer_loss: Any = None,
        weights: np.ndarray | None = None,
    ) -> tuple[dict[str, Any], Path]:
        role = self.roles[role_name]
        regularizer = regularizer.for_training(role_name, role.mode)
        key = {
            "stage": "train",
            "model": role.key,
            "mode": role.mode,
            "config": _config_key(role.config),
            "data": data.fingerprint(),
            "targets": stable_hash(np.round(np.asarray(targets, dtype=np.float64), 8).tolist()),
            "regularizer": regularizer.config(),
            "seed": seed,
            "num_labels": num_labels,
            "max_length": max_length,
        }
        if role.mode == "full" and role.config.trainable_layers:
            # Partial fine-tuning read out through the prefix cache's probe head before 2026-11-27 (a fixed random
            # head, not the model's own): stages cached then must not be reused with the model's own head.
            key["readout"] = "own-head"
        if transfer_loss is not None:  # a strategy's own loss (w2sbench/teachers.py); absent for cross-entropy
            key["transfer_loss"] = transfer_loss.config
        if weights is not None:
            key["row_weights"] = stable_hash(np.round(np.asarray(weights, dtype=np.float64), 8).tolist())
        precision = role.precision(self.device)
        if precision != legacy_precision(self.device):  # stages cached before the precision option keep their keys
            key["precision"] = precision

        # Under `accelerate launch`, LoRA/full training is collective (every rank); head mode (a linear head on
        # cached features) and DP-SGD (opacus' accounting assumes one process) train on rank 0 alone.
        collective = self.dist.world > 1 and role.mode != "head" and regularizer.privacy is None
        where = " (rank 0 only)" if self.dist.world > 1 and not collective else ""

        def produce(tmp: Path | None) -> None:
            from safetensors.torch import save_file

            session = self.dist.collective_training(seed) if collective else None
            classifier = self.models.fresh_classifier(role, num_labels, max_length, seed)
            with self.progress.stage(f"train {label}{where}") as bar, _naming_cell(label):
                report = train_classifier(
                    classifier,
                    role.mode,
                    data.texts,
                    targets,
                    data.attributes,
                    regularizer,
                    role.config,
                    seed,
                    features=self.models.features(role, max_length) if role.mode == "head" else None,
                    progress=bar.update,
                    # the cached frozen layers bypass the DDP/FSDP wrapper: collective training runs the full model
                    prefix=None if collective else self.models.prefix(role, max_length),
                    distributed=session,
                    transfer_loss=transfer_loss,
                    weights=weights,
                )
            state = session.trainable_state(classifier) if session is not None else classifier.trainable_state()
            if tmp is None:
                return  # another rank of a collective training: rank 0 writes the stage
            save_file(state, str(tmp / "trainable.safetensors"))
            (tmp / "report.json").write_text(json.dumps(vars(report), default=float))

        if collective:
            return key, self.dist.compute_collective(self.cache, "train", key, produce)
        path = self.dist.compute(self.cache, "train", key, produce)
        return key, path

    def predict_stage(
        self, train_key: Mapping[str, Any], train_path: Path, role_name: str, data: Examples, label: str = "",
    ) -> np.ndarray:
        """The model's class probabilities on ``data``, shape (rows, labels); ``label`` names the model and the
        rows in progress lines (e.g. "fairness s0 ceiling adult_test"), not in the cache key."""
        key = {"stage": "predict", "model_stage": stable_hash(train_key), "data": data.fingerprint(),
               **self.models.inference_key(role_name)}

        def produce(tmp: Path) -> None:
            role = self.roles[role_name]
            if role.mode == "head":
                # Reuse cached features: only the head runs.
                import torch
                from safetensors.torch import load_file

                state = load_file(str(train_path / "trainable.safetensors"))
                x = torch.as_tensor(self.models.features(role, train_key["max_length"])(data.texts))
                logits = torch.nn.functional.layer_norm(x, x.shape[-1:]) @ state["head.weight"].T + state["head.bias"]
                probs = torch.softmax(logits, -1).double().numpy()
            else:
                model = self.models.inference_model_once(train_key, train_path, role_name)
                with self.progress.stage(f"predict {label}: {len(data)} rows" if label else f"predict {len(data)} rows"):
                    probs = model.predict_proba(data.texts)
            require_finite_probabilities(probs, f"the {role_name} model on {len(data)} rows")
            np.save(tmp / "probabilities.npy", probs, allow_pickle=False)

        path = self.dist.compute(self.cache, "predict", key, produce)
        return np.load(path / "probabilities.npy", allow_pickle=False)

    def model_evaluation_stage(
        self, metric: TrustProperty, options: Mapping[str, Any], data: PropertyData, train_key: Mapping[str, Any],
        train_path: Path, role_name: str, seed: int, label: str,
    ) -> LiveScores:
        """The "live" stage: the property's ``evaluate_model`` scores of one trained model (attacks, extraction)
        and their standard errors over the evaluated examples when the property gives them (``stderr.json``;
        stages cached before it existed have none); empty when the property has no live scores."""
        if type(metric).evaluate_model is TrustProperty.evaluate_model:
            return LiveScores({})
        # renamed options are hashed under their old names (TrustProperty.cache_key_options): cached stages stay valid
        key = {"stage": "live", "metric": metric.name, "options": metric.cache_key_options(options),
               "model_stage": stable_hash(train_key), "seed": seed, **self.models.inference_key(role_name)}

        def produce(tmp: Path) -> None:
            model = self.models.inference_model(train_key, train_path, role_name)
            model.role = role_name  # "weak" trained on split A, "strong" on split B: membership attacks need it
            model.attach_language_model(lambda: self.models.language_model(role_name, model))
            with self.progress.stage(f"{metric.name} live evaluation: {label}"):
                live = metric.evaluate_model(model, data, options, seed)
            live = live if isinstance(live, LiveScores) else LiveScores(dict(live))
            (tmp / "scores.json").write_text(json.dumps(json_safe(dict(live.scores)), allow_nan=False))
            if live.stderr:
                (tmp / "stderr.json").write_text(json.dumps(json_safe(dict(live.stderr)), allow_nan=False))

        path = self.dist.compute(self.cache, "live", key, produce)
        stderr = path / "stderr.json"
        return LiveScores(loads_strict((path / "scores.json").read_text()),
                          loads_strict(stderr.read_text()) if stderr.exists() else {})

    # ----------------------------------------------------------------- one property

    def load_data(self, metric: TrustProperty) -> PropertyData:
        """The trust property's data, checked (names the plugin when it fails)."""
        options = self.settings.options[metric.name]
        with self.progress.stage(f"{metric.name}: load data"):
            # rank 0 first: only it downloads and fills the prepared-data cache; the other ranks then read them
            return self.dist.main_first(lambda: self.prepared_data.load(
                metric, options, self.data_ctx,
                lambda: call_plugin(metric, "load its data", lambda: metric.load_data(self.data_ctx, options)),
                lambda data: _check_data(metric, data)))

    def train_weak(self, metric: TrustProperty, data: PropertyData, seed: int) -> dict[str, TrainedModel]:
        """The weak models of one seed (plain and regularized). Sweeps run these first, once per weak model."""
        options = self.settings.options[metric.name]
        a, _b, _val = split_pool(data.train, seed, split_sizes(options))
        onehot_a = np.eye(data.num_labels)[a.labels]
        trained: dict[str, TrainedModel] = {}
        for cell, reg in (("weak", NoRegularizer()), ("weak-reg", metric.regularizer(options))):
            k, p = self.train_stage("weak", a, onehot_a, reg, seed, data.num_labels, int(options["max_length"]), f"{metric.name} s{seed} {cell}")
            trained[cell] = TrainedModel(k, p, "weak")
        return trained

    def run_seed(self, metric: TrustProperty, data: PropertyData, seed: int) -> SeedOutcome:
        """Every cell of one seed: scores, test-set probabilities, training reports and trained-model handles."""
        options = self.settings.options[metric.name]
        _a, b, _val = split_pool(data.train, seed, split_sizes(options))
        max_length = int(options["max_length"])
        regularizer = metric.regularizer(options)
        plain: Regularizer = NoRegularizer()
        onehot_b = np.eye(data.num_labels)[b.labels]
        trained = self.train_weak(metric, data, seed)
        for cell, reg in (("ceiling", plain), ("ceiling-reg", regularizer)):
            k, p = self.train_stage("strong", b, onehot_b, reg, seed, data.num_labels, max_length, f"{metric.name} s{seed} {cell}")
            trained[cell] = TrainedModel(k, p, "strong")
        references: dict[str, Any] = {}
        for strategy in (self.plugins.strategies.get(n) for n in self.settings.strategies):
            reg = regularizer if strategy.regularize_strong else plain
            (k, p), teachers = train_strategy(self, metric, data, seed, strategy, b, reg)
            trained[strategy.name] = TrainedModel(k, p, "strong")
            if reference_cells(strategy)[0] not in BASELINE_CELLS:
                references[reference_cells(strategy)[0]] = (strategy, teachers)
        scores: dict[str, dict[str, float | None]] = {}
        predictions: dict[str, dict[str, np.ndarray]] = {}
        reports: dict[str, dict[str, Any]] = {}
        live_stderr: dict[str, dict[str, float | None]] = {}
        for cell, (strategy, teachers) in references.items():
            scores[cell], predictions[cell], reports[cell] = teacher_reference(self, metric, data, strategy, teachers, options)
        for cell, (k, p, role_name) in trained.items():
            probs = {name: self.predict_stage(k, p, role_name, test, f"{metric.name} s{seed} {cell} {name}")
                     for name, test in data.tests.items()}
            cell_scores: dict[str, float | None] = dict(task_scores(data.tests[data.main_test].labels, probs[data.main_test]))
            cell_scores.update(call_plugin(metric, "evaluate", lambda: metric.evaluate(data, probs, options)))  # noqa: B023 - called at once
            live = self.model_evaluation_stage(metric, options, data, k, p, role_name, seed, f"s{seed} {cell}")
            cell_scores.update(live.scores)
            live_stderr[cell] = dict(live.stderr)
            reports[cell] = loads_strict((p / "report.json").read_text())
            if reports[cell].get("epsilon") is not None:  # DP-SGD's achieved budget is a score too
                cell_scores["dp_epsilon"] = float(reports[cell]["epsilon"])
            scores[cell] = cell_scores
            predictions[cell] = probs
        return SeedOutcome(scores, predictions, reports, trained, live_stderr)

    def run_metric(self, metric: TrustProperty) -> PropertyOutcome:
        """All seeds and cells of one trust property: scores, predictions and stage reports."""
        data = self.load_data(metric)
        return PropertyOutcome(data, {seed: self.run_seed(metric, data, seed) for seed in self.settings.seeds})


@contextlib.contextmanager
def _naming_cell(label: str) -> Iterator[None]:
    """A diverged training names its cell (the trainer does not know it)."""
    try:
        yield
    except NonFiniteTraining as exc:
        raise exc.in_cell(label) from None


def _config_key(config: TrainConfig) -> dict[str, Any]:
    """The config's cache-key part; the precision enters the key resolved (train_stage), not as asked."""
    fields = config.as_dict()
    fields.pop("precision", None)
    return fields


def _check_data(metric: TrustProperty, data: PropertyData) -> None:
    if not isinstance(data, PropertyData):
        raise W2SBenchError(
            f'Trust property "{metric.name}" returned {type(data).__name__} from load_data, not PropertyData.',
            "Fix the plugin's load_data (see CONTRIBUTING.md).",
        )
    if len(data.train) == 0:
        raise W2SBenchError(f'The training data of "{metric.name}" is empty.', "Check the dataset files.")
    if data.main_test not in data.tests:
        raise W2SBenchError(
            f'Trust property "{metric.name}" names main test set "{data.main_test}" but has {sorted(data.tests)}.',
            "Fix the plugin's load_data.",
        )
    for name, test in data.tests.items():
        if len(test) == 0:
            raise W2SBenchError(f'Test set "{name}" of "{metric.name}" is empty.', "Check the dataset files.")
