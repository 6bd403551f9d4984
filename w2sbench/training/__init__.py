"""Training: the classifier wrapper, cached frozen features, and one trainer for head / LoRA / full fine-tuning."""

from w2sbench.training.classifier import Classifier
from w2sbench.training.config import FINETUNE_MODES, TrainConfig, TrainReport, default_train_config
from w2sbench.training.trainer import train_classifier

__all__ = [
    "Classifier",
    "FINETUNE_MODES",
    "TrainConfig",
    "TrainReport",
    "default_train_config",
    "train_classifier",
]
