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
import copy
import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.design import (
    BASELINE_CELLS,
    call_plugin,
    merge_seeds,
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
    ModelSpec,
    NoRegularizer,
    PropertyData,
    Regularizer,
    TrustProperty,
    reference_cells,
)
from w2sbench.jsonio import loads_strict
from w2sbench.language_model import causal_lm, is_decoder
from w2sbench.models import (
    check_input_lengths,
    fetch_model,
    load_backbone,
    model_identity,
)
from w2sbench.plugin_manager import Plugins
from w2sbench.progress import Progress
from w2sbench.settings import RunSettings
from w2sbench.stage_cache import StageCache
from w2sbench.teachers import teacher_reference, train_strategy
from w2sbench.training import distributed
from w2sbench.training.classifier import Classifier, transformer_layers
from w2sbench.training.features import FeatureStore
from w2sbench.training.precision import legacy_precision, resolve_precision
from w2sbench.training.prefix import PrefixCache, TopLayers, supports_prefix_cache
from w2sbench.training.trainer import (
    TrainConfig,
    apply_lora,
    estimate_training_memory,
    train_classifier,
)

__all__ = ["Pipeline"]



@dataclass
class _Role:
    spec: ModelSpec
    folder: Path
    identity: dict[str, Any]
    mode: str
    config: TrainConfig
    base: tuple[Any, Any] | None = None  # (tokenizer, backbone), loaded on first need


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
        self.device = settings.device
        # one process, or one rank of `accelerate launch` (training collective, everything else on rank 0)
        self.dist = distributed.current()
        self.roles: dict[str, _Role] = {}
        for role, spec, mode in (
            ("weak", weak, settings.finetune_weak),
            ("strong", strong, settings.finetune_strong),
        ):
            folder = self.dist.main_first(lambda spec=spec: fetch_model(spec))
            self.roles[role] = _Role(spec, folder, model_identity(spec, folder), mode, _train_config(settings.train[mode]))
        # models fetched just now (not in the cache when the run was validated): their input length limit
        check_input_lengths([(r.spec, r.folder) for r in self.roles.values()],
                            {n: int(o["max_length"]) for n, o in settings.options.items()})
        if self.device.startswith("cuda"):
            for role in self.roles.values():
                _check_memory(role, self.device, self.dist.world if role.mode != "head" else 1, self.dist.state_shards)
        self._features: dict[tuple[str, int], FeatureStore] = {}
        self._prefixes: dict[tuple[str, int], Any] = {}
        self.stage_log: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- models

    def _base(self, role: _Role) -> tuple[Any, Any]:
        if role.base is None:
            import torch

            # Frozen base weights (LoRA, head) are kept in bf16 on GPUs; fully trained ones stay fp32 masters.
            half = self.device.startswith("cuda") and role.mode != "full" and torch.cuda.is_bf16_supported()
            tokenizer, backbone = load_backbone(role.spec, role.folder, torch.bfloat16 if half else None)
            backbone.to(self.device)
            role.base = (tokenizer, backbone)
        return role.base

    def _fresh_classifier(self, role: _Role, num_labels: int, max_length: int, seed: int) -> Classifier:
        import torch

        tokenizer, backbone = self._base(role)
        torch.manual_seed(seed)  # the head's initialisation
        backbone_copy = backbone if role.mode == "head" else copy.deepcopy(backbone)
        return Classifier(backbone_copy, tokenizer, num_labels, max_length).to(self.device)

    def _features_for(self, role: _Role, max_length: int) -> FeatureStore:
        key = (role.spec.name, max_length)
        if key not in self._features:
            root = self.cache.path("features", {"model": role.identity, "max_length": max_length, "pooling": "mean"})

            def extract(texts: list[str]) -> np.ndarray:
                tokenizer, backbone = self._base(role)
                probe = Classifier(backbone, tokenizer, 2, max_length).to(self.device)
                return probe.features(texts)

            self._features[key] = FeatureStore(root, extract)
        return self._features[key]

    def _prefix_for(self, role: _Role, max_length: int) -> Any:
        """Cached frozen-layer states for partial fine-tuning (full mode with trainable_layers), else None."""
        if role.mode != "full" or not role.config.trainable_layers:
            return None

        key = (role.spec.name, max_length)
        if key not in self._prefixes:
            tokenizer, backbone = self._base(role)
            probe = Classifier(backbone, tokenizer, 2, max_length).to(self.device)
            usable = supports_prefix_cache(probe) and role.config.trainable_layers < len(transformer_layers(backbone))
            precision = _resolved_precision(role, self.device)
            self._prefixes[key] = PrefixCache(probe, role.config.trainable_layers, precision) if usable else None
        return self._prefixes[key]

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
            "model": role.identity,
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
        precision = _resolved_precision(role, self.device)
        if precision != _legacy_precision(self.device):  # stages cached before the precision option keep their keys
            key["precision"] = precision

        # Under `accelerate launch`, LoRA/full training is collective (every rank); head mode (a linear head on
        # cached features) and DP-SGD (opacus' accounting assumes one process) train on rank 0 alone.
        collective = self.dist.world > 1 and role.mode != "head" and regularizer.privacy is None
        where = " (rank 0 only)" if self.dist.world > 1 and not collective else ""

        def produce(tmp: Path | None) -> None:
            from safetensors.torch import save_file

            session = self.dist.collective_training(seed) if collective else None
            classifier = self._fresh_classifier(role, num_labels, max_length, seed)
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
                    features=self._features_for(role, max_length) if role.mode == "head" else None,
                    progress=bar.update,
                    # the cached frozen layers bypass the DDP/FSDP wrapper: collective training runs the full model
                    prefix=None if collective else self._prefix_for(role, max_length),
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

    def load_trained(self, key: Mapping[str, Any], path: Path, role_name: str) -> Classifier:
        from safetensors.torch import load_file

        role = self.roles[role_name]
        classifier = self._fresh_classifier(role, key["num_labels"], key["max_length"], key["seed"])
        if role.mode == "lora":
            apply_lora(classifier, role.config)
        state = load_file(str(path / "trainable.safetensors"))
        missing = set(state) - {n for n, _ in classifier.named_parameters()}
        if missing:
            raise W2SBenchError(
                f"A cached model in {path} does not match its architecture ({len(missing)} unknown tensors).",
                "Delete that cache directory; it will be retrained.",
            )
        classifier.load_state_dict(state, strict=False)
        classifier.eval()
        return classifier

    def _inference_model(self, key: Mapping[str, Any], path: Path, role_name: str) -> Classifier:
        """A trained model for prediction; partial fine-tunes answer from the cached frozen-layer states."""
        model = self.load_trained(key, path, role_name)
        role = self.roles[role_name]
        prefix = self._prefix_for(role, key["max_length"])
        if prefix is not None:
            model.use_prefix(prefix, TopLayers(model, role.config.trainable_layers))
        return model

    def _inference_model_once(self, key: Mapping[str, Any], path: Path, role_name: str) -> Classifier:
        """``_inference_model``, loaded once for consecutive predict stages of the same model (a cell's test
        sets, e.g. ood's eleven): one load per model instead of one per test set; same probabilities."""
        memo_key = (stable_hash(key), str(path), role_name)
        memo = getattr(self, "_predict_model", None)
        if memo is None or memo[0] != memo_key:
            self._predict_model = memo = (memo_key, self._inference_model(key, path, role_name))
        return memo[1]

    def predict_stage(self, train_key: Mapping[str, Any], train_path: Path, role_name: str, data: Examples) -> np.ndarray:
        key = {"stage": "predict", "model_stage": stable_hash(train_key), "data": data.fingerprint()}

        def produce(tmp: Path) -> None:
            role = self.roles[role_name]
            if role.mode == "head":
                # Reuse cached features: only the head runs.
                import torch
                from safetensors.torch import load_file

                state = load_file(str(train_path / "trainable.safetensors"))
                x = torch.as_tensor(self._features_for(role, train_key["max_length"])(data.texts))
                logits = torch.nn.functional.layer_norm(x, x.shape[-1:]) @ state["head.weight"].T + state["head.bias"]
                probs = torch.softmax(logits, -1).double().numpy()
            else:
                model = self._inference_model_once(train_key, train_path, role_name)
                with self.progress.stage(f"predict {len(data)} rows"):
                    probs = model.predict_proba(data.texts)
            require_finite_probabilities(probs, f"the {role_name} model on {len(data)} rows")
            np.save(tmp / "probabilities.npy", probs, allow_pickle=False)

        path = self.dist.compute(self.cache, "predict", key, produce)
        return np.load(path / "probabilities.npy", allow_pickle=False)

    def model_evaluation_stage(
        self, metric: TrustProperty, options: Mapping[str, Any], data: PropertyData, train_key: Mapping[str, Any],
        train_path: Path, role_name: str, seed: int, label: str,
    ) -> dict[str, float]:
        """The "live" stage: the property's ``evaluate_model`` scores of one trained model (attacks, extraction);
        {} when the property has none."""
        if type(metric).evaluate_model is TrustProperty.evaluate_model:
            return {}
        # renamed options are hashed under their old names (TrustProperty.cache_key_options): cached stages stay valid
        key = {"stage": "live", "metric": metric.name, "options": metric.cache_key_options(options),
               "model_stage": stable_hash(train_key), "seed": seed}

        def produce(tmp: Path) -> None:
            model = self._inference_model(train_key, train_path, role_name)
            model.role = role_name  # "weak" trained on split A, "strong" on split B: membership attacks need it
            model.attach_language_model(lambda: _language_model(self.roles[role_name], model))
            with self.progress.stage(f"{metric.name} live evaluation: {label}"):
                scores = metric.evaluate_model(model, data, options, seed)
            (tmp / "scores.json").write_text(json.dumps(json_safe(scores), allow_nan=False))

        path = self.dist.compute(self.cache, "live", key, produce)
        return loads_strict((path / "scores.json").read_text())

    # ----------------------------------------------------------------- one property

    def load_data(self, metric: TrustProperty) -> PropertyData:
        """The trust property's data, checked (names the plugin when it fails)."""
        options = self.settings.options[metric.name]
        with self.progress.stage(f"{metric.name}: load data"):
            # rank 0 first: only it downloads; the other ranks then read its files
            data = self.dist.main_first(lambda: call_plugin(metric, "load its data", lambda: metric.load_data(self.data_ctx, options)))
        _check_data(metric, data)
        return data

    def train_weak(self, metric: TrustProperty, data: PropertyData, seed: int) -> dict[str, tuple[dict[str, Any], Path, str]]:
        """The weak models of one seed (plain and regularized). Sweeps run these first, once per weak model."""
        options = self.settings.options[metric.name]
        a, _b, _val = split_pool(data.train, seed, split_sizes(options))
        onehot_a = np.eye(data.num_labels)[a.labels]
        trained = {}
        for cell, reg in (("weak", NoRegularizer()), ("weak-reg", metric.regularizer(options))):
            k, p = self.train_stage("weak", a, onehot_a, reg, seed, data.num_labels, int(options["max_length"]), f"{metric.name} s{seed} {cell}")
            trained[cell] = (k, p, "weak")
        return trained

    def run_seed(self, metric: TrustProperty, data: PropertyData, seed: int) -> dict[str, Any]:
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
            trained[cell] = (k, p, "strong")
        references: dict[str, Any] = {}
        for strategy in (self.plugins.strategies.get(n) for n in self.settings.strategies):
            reg = regularizer if strategy.regularize_strong else plain
            (k, p), teachers = train_strategy(self, metric, data, seed, strategy, b, reg)
            trained[strategy.name] = (k, p, "strong")
            if reference_cells(strategy)[0] not in BASELINE_CELLS:
                references[reference_cells(strategy)[0]] = (strategy, teachers)
        scores: dict[str, dict[str, float | None]] = {}
        predictions: dict[str, dict[str, np.ndarray]] = {}
        reports: dict[str, dict[str, Any]] = {}
        for cell, (strategy, teachers) in references.items():
            scores[cell], predictions[cell], reports[cell] = teacher_reference(self, metric, data, strategy, teachers, options)
        for cell, (k, p, role_name) in trained.items():
            probs = {name: self.predict_stage(k, p, role_name, test) for name, test in data.tests.items()}
            cell_scores: dict[str, float | None] = dict(task_scores(data.tests[data.main_test].labels, probs[data.main_test]))
            cell_scores.update(call_plugin(metric, "evaluate", lambda: metric.evaluate(data, probs, options)))  # noqa: B023 - called at once
            cell_scores.update(self.model_evaluation_stage(metric, options, data, k, p, role_name, seed, f"s{seed} {cell}"))
            reports[cell] = loads_strict((p / "report.json").read_text())
            if reports[cell].get("epsilon") is not None:  # DP-SGD's achieved budget is a score too
                cell_scores["dp_epsilon"] = float(reports[cell]["epsilon"])
            scores[cell] = cell_scores
            predictions[cell] = probs
        return {"scores": scores, "predictions": predictions, "reports": reports, "models": trained}

    def run_metric(self, metric: TrustProperty) -> dict[str, Any]:
        """All seeds and cells of one trust property: scores, predictions and stage reports."""
        data = self.load_data(metric)
        per_seed = {seed: self.run_seed(metric, data, seed) for seed in self.settings.seeds}
        return merge_seeds(data, per_seed)


@contextlib.contextmanager
def _naming_cell(label: str) -> Iterator[None]:
    """A diverged training names its cell (the trainer does not know it)."""
    try:
        yield
    except NonFiniteTraining as exc:
        raise exc.in_cell(label) from None


def _resolved_precision(role: _Role, device: str) -> str:
    """bf16 or fp32: the role's training precision on this device (w2sbench/training/precision.py)."""
    return resolve_precision(role.config.precision, device, role.mode)


def _legacy_precision(device: str) -> str:
    return legacy_precision(device)


def _config_key(config: TrainConfig) -> dict[str, Any]:
    """The config's cache-key part; the precision enters the key resolved (train_stage), not as asked."""
    fields = config.as_dict()
    fields.pop("precision", None)
    return fields


def _train_config(recorded: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from the settings' resolved training settings of one mode (``lora_targets`` come back
    from JSON as a list; the frozen config holds a tuple)."""
    fields = dict(recorded)
    if isinstance(fields.get("lora_targets"), list):
        fields["lora_targets"] = tuple(fields["lora_targets"])
    return TrainConfig(**fields)


def _check_memory(role: _Role, device: str, ranks: int = 1, shards: int = 1) -> None:
    """Refuse a training that cannot fit the GPU before loading anything (see estimate_training_memory).

    With ``ranks`` processes each GPU holds 1/ranks of the batch; with FSDP (``shards``) also 1/shards of the
    weights, gradients and optimizer state."""
    import torch


    config_file = role.folder / "config.json"
    if role.spec.params is None or not config_file.is_file():
        return
    config = loads_strict(config_file.read_text())
    hidden, layers = config.get("hidden_size"), config.get("num_hidden_layers")
    if not isinstance(hidden, int) or not isinstance(layers, int):
        return
    need = estimate_training_memory(
        role.spec.params, role.mode, -(-role.config.batch_size // ranks) * 128, hidden, layers, cuda=True
    )
    state = estimate_training_memory(role.spec.params, role.mode, 0, hidden, layers, cuda=True)
    if role.config.gradient_checkpointing:
        need = state + (need // layers if layers else 0)
    need -= state - state // shards
    total = torch.cuda.get_device_properties(torch.device(device)).total_memory
    if need > 0.95 * total:
        raise W2SBenchError(
            f"Training {role.spec.name} in {role.mode} mode needs about {need / 2**30:.0f} GiB; the GPU has {total / 2**30:.0f} GiB.",
            "Use --finetune lora, or --train MODE.gradient_checkpointing=true, or a smaller --train MODE.batch_size "
            "(with grad_accumulation to keep the effective batch).",
        )


def _language_model(role: _Role, model: Classifier) -> Any | None:
    """The trained backbone under its pretrained causal-LM head; None for encoders and for checkpoints without a head."""
    if not is_decoder(role.spec, role.folder):
        return None
    backbone = model.backbone
    if hasattr(backbone, "merge_and_unload"):
        backbone = copy.deepcopy(backbone)  # merging LoRA adapters changes the module in place: keep the classifier's
    try:
        return causal_lm(role.spec, role.folder, backbone, require_head=True).to(model.device)
    except W2SBenchError as exc:  # a bare transformer checkpoint: no pretrained head to generate with
        warnings.warn(f"{exc.problem} Metrics that need its language model are left out.", stacklevel=1)
        return None


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
