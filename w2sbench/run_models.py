"""The run's weak and strong models on one device: each role's spec, weights folder, identity, fine-tune mode
and training config; its pretrained base loaded once; fresh classifiers; the cached features (head mode)
and frozen-layer states (partial fine-tuning) it trains on; and trained models loaded back from the cache.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.errors import W2SBenchError
from w2sbench.files import stable_hash
from w2sbench.interfaces import ModelSpec
from w2sbench.jsonio import loads_strict
from w2sbench.language_model import causal_lm, is_decoder
from w2sbench.models import cache_identity, check_input_lengths, fetch_model, load_backbone, model_identity
from w2sbench.settings import RunSettings
from w2sbench.training.classifier import Classifier, transformer_layers
from w2sbench.training.features import FeatureStore
from w2sbench.training.precision import inference_weights, resolve_precision
from w2sbench.training.prefix import PrefixCache, TopLayers, supports_prefix_cache
from w2sbench.training.trainer import TrainConfig, apply_lora, estimate_training_memory

__all__ = ["Role", "RunModels", "train_config"]


@dataclass
class Role:
    """One of the run's two models ("weak" or "strong") as it trains here."""

    spec: ModelSpec
    folder: Path  # the fetched weights
    identity: dict[str, Any]  # what results.json records (models.py model_identity)
    mode: str  # fine-tune mode: "head", "lora" or "full"
    config: TrainConfig
    base: tuple[Any, Any] | None = None  # (tokenizer, backbone), loaded on first need

    @property
    def key(self) -> dict[str, Any]:
        """The model's part of every cache key of its stages: hub commit or content hashes, not its folder."""
        return cache_identity(self.identity)

    def precision(self, device: str) -> str:
        """bf16 or fp32: the role's training precision on this device (w2sbench/training/precision.py)."""
        return resolve_precision(self.config.precision, device, self.mode)

    def inference_weights(self, device: str) -> str:
        """bf16 or fp32: the weights' dtype when this role's partial fine-tunes predict (training/precision.py)."""
        return inference_weights(self.config.precision, device, self.mode)


class RunModels:
    """The weak and strong roles of a run, fetched (rank 0 first) and checked against the GPU's memory."""

    def __init__(self, settings: RunSettings, weak: ModelSpec, strong: ModelSpec, cache_path: Callable[..., Path], dist: Any) -> None:
        self.device = settings.device
        self._cache_path = cache_path  # StageCache.path: where the feature store of a model lives
        self.roles: dict[str, Role] = {}
        for name, spec, mode in (("weak", weak, settings.finetune_weak), ("strong", strong, settings.finetune_strong)):
            folder = dist.main_first(lambda spec=spec: fetch_model(spec))
            self.roles[name] = Role(spec, folder, model_identity(spec, folder), mode, train_config(settings.train[mode]))
        # models fetched just now (not in the cache when the run was validated): their input length limit
        check_input_lengths([(r.spec, r.folder) for r in self.roles.values()],
                            {n: int(o["max_length"]) for n, o in settings.options.items()})
        if self.device.startswith("cuda"):
            for role in self.roles.values():
                _check_memory(role, self.device, dist.world if role.mode != "head" else 1, dist.state_shards)
        self._features: dict[tuple[str, int], FeatureStore] = {}
        self._prefixes: dict[tuple[Any, ...], Any] = {}
        self._predict_model: tuple[tuple[str, str, str], Classifier] | None = None

    def base(self, role: Role) -> tuple[Any, Any]:
        """The role's pretrained (tokenizer, backbone) on the device, loaded once."""
        if role.base is None:
            import torch

            # Frozen base weights (LoRA, head) are kept in bf16 on GPUs; fully trained ones stay fp32 masters.
            half = self.device.startswith("cuda") and role.mode != "full" and torch.cuda.is_bf16_supported()
            tokenizer, backbone = load_backbone(role.spec, role.folder, torch.bfloat16 if half else None)
            backbone.to(self.device)
            role.base = (tokenizer, backbone)
        return role.base

    def fresh_classifier(self, role: Role, num_labels: int, max_length: int, seed: int) -> Classifier:
        """An untrained classifier on the role's base (a copy of it unless only the head trains)."""
        import torch

        tokenizer, backbone = self.base(role)
        torch.manual_seed(seed)  # the head's initialisation
        backbone_copy = backbone if role.mode == "head" else copy.deepcopy(backbone)
        return Classifier(backbone_copy, tokenizer, num_labels, max_length).to(self.device)

    def features(self, role: Role, max_length: int) -> FeatureStore:
        """The role's cached pooled features (head mode trains and predicts on them)."""
        key = (role.spec.name, max_length)
        if key not in self._features:
            root = self._cache_path("features", {"model": role.key, "max_length": max_length, "pooling": "mean"})

            def extract(texts: Sequence[str]) -> np.ndarray:
                tokenizer, backbone = self.base(role)
                probe = Classifier(backbone, tokenizer, 2, max_length).to(self.device)
                return probe.features(texts)

            self._features[key] = FeatureStore(root, extract)
        return self._features[key]

    def prefix(self, role: Role, max_length: int) -> Any:
        """Cached frozen-layer states for partial fine-tuning (full mode with trainable_layers), else None."""
        if role.mode != "full" or not role.config.trainable_layers:
            return None
        key = (role.spec.name, max_length)
        if key not in self._prefixes:
            tokenizer, backbone = self.base(role)
            probe = Classifier(backbone, tokenizer, 2, max_length).to(self.device)
            usable = supports_prefix_cache(probe) and role.config.trainable_layers < len(transformer_layers(backbone))
            self._prefixes[key] = PrefixCache(probe, role.config.trainable_layers, role.precision(self.device)) if usable else None
        return self._prefixes[key]

    def inference_prefix(self, role: Role, max_length: int) -> Any:
        """The frozen-layer states trained models predict from: ``prefix()``'s own, or, where the role infers with
        bf16 weights, a second store of them computed that way (training keeps reading float32 states)."""
        prefix = self.prefix(role, max_length)
        if prefix is None or role.inference_weights(self.device) != "bf16":
            return prefix
        key = (role.spec.name, max_length, "bf16")
        if key not in self._prefixes:
            self._prefixes[key] = PrefixCache(prefix.classifier, prefix.top, prefix.precision, weights="bf16")
        return self._prefixes[key]

    def inference_key(self, role_name: str) -> dict[str, Any]:
        """The part of a predict or live stage's cache key that says how the model infers: {} for the behaviour
        before bf16 inference existed, else ``{"inference_weights": "bf16"}`` (decided from the settings alone:
        a cached re-run loads no model)."""
        role = self.roles[role_name]
        partial = role.mode == "full" and bool(role.config.trainable_layers)
        return {"inference_weights": "bf16"} if partial and role.inference_weights(self.device) == "bf16" else {}

    def load_trained(self, key: Mapping[str, Any], path: Path, role_name: str) -> Classifier:
        """The model a train stage (``key``, cached at ``path``) trained, in eval mode."""
        from safetensors.torch import load_file

        role = self.roles[role_name]
        classifier = self.fresh_classifier(role, key["num_labels"], key["max_length"], key["seed"])
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

    def inference_model(self, key: Mapping[str, Any], path: Path, role_name: str) -> Classifier:
        """A trained model for prediction; partial fine-tunes answer from the cached frozen-layer states."""
        model = self.load_trained(key, path, role_name)
        role = self.roles[role_name]
        prefix = self.inference_prefix(role, key["max_length"])
        if prefix is not None:
            model.use_prefix(prefix, TopLayers(model, role.config.trainable_layers))
        return model

    def inference_model_once(self, key: Mapping[str, Any], path: Path, role_name: str) -> Classifier:
        """``inference_model``, loaded once for consecutive predict stages of the same model (a cell's test
        sets, e.g. ood's eleven): one load per model instead of one per test set; same probabilities."""
        memo_key = (stable_hash(key), str(path), role_name)
        if self._predict_model is None or self._predict_model[0] != memo_key:
            self._predict_model = (memo_key, self.inference_model(key, path, role_name))
        return self._predict_model[1]

    def language_model(self, role_name: str, model: Classifier) -> Any | None:
        """The trained backbone under its pretrained causal-LM head; None for encoders and for checkpoints
        without a head (with a warning)."""
        role = self.roles[role_name]
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


def train_config(recorded: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from the settings' resolved training settings of one mode (``lora_targets`` come back
    from JSON as a list; the frozen config holds a tuple)."""
    fields = dict(recorded)
    if isinstance(fields.get("lora_targets"), list):
        fields["lora_targets"] = tuple(fields["lora_targets"])
    return TrainConfig(**fields)


def _check_memory(role: Role, device: str, ranks: int = 1, shards: int = 1) -> None:
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
