"""The speed paths give the same answers as the paths they replace (no timings here: benchmarks/ measures speed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2sbench.errors import W2SBenchError
from w2sbench.training import precision
from w2sbench.training.config import TrainConfig, default_train_config


def _classifier(folder, max_length: int = 32):  # noqa: ANN001, ANN202
    from transformers import AutoModel, AutoTokenizer

    from w2sbench.training.classifier import Classifier

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Classifier(AutoModel.from_pretrained(folder), tokenizer, 2, max_length)


@pytest.mark.parametrize("name", ["bert-big", "neox"])
def test_bottom_states_equal_the_full_forward_hidden_states(tiny_models, name):
    from w2sbench.training.prefix import bottom_states

    model = _classifier(tiny_models[name])
    model.eval()
    batch = model.tokenize(["a b c", "a much longer text than the first one here"])
    with torch.no_grad():
        full = model.backbone(**batch, output_hidden_states=True).hidden_states[1]
        only = bottom_states(model.backbone, 1, batch)
    assert torch.equal(full, only)


def test_precision_resolution(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.resolve_precision("auto", "cpu", "full") == "fp32"  # no measured CPU gain: off by default
    assert precision.resolve_precision("bf16", "cpu", "full") == "bf16"
    monkeypatch.setattr(precision, "CPU_AUTO_BF16", True)
    assert precision.resolve_precision("auto", "cpu", "full") == "bf16"
    assert precision.resolve_precision("auto", "cpu", "lora") == "bf16"
    assert precision.resolve_precision("auto", "cpu", "head") == "fp32"
    assert precision.resolve_precision("fp32", "cpu", "full") == "fp32"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.resolve_precision("auto", "cpu", "full") == "fp32"
    assert precision.resolve_precision("bf16", "cpu", "head") == "bf16"
    assert precision.legacy_precision("cpu") == "fp32"


def test_unknown_precision_is_one_clear_error():
    with pytest.raises(W2SBenchError, match="precision") as err:
        default_train_config("full", precision="fp16")
    assert "auto|bf16|fp32" in err.value.fix


def test_precision_enters_the_train_key_resolved_and_only_when_it_changes_the_arithmetic():
    from w2sbench.pipeline import _config_key

    assert "precision" not in _config_key(TrainConfig(epochs=1, lr=1e-3, batch_size=4, precision="bf16"))
    assert _config_key(TrainConfig(epochs=1, lr=1e-3, batch_size=4)) == {
        k: v for k, v in TrainConfig(epochs=1, lr=1e-3, batch_size=4).as_dict().items() if k != "precision"
    }


def test_overlay_reads_the_parent_but_keeps_its_own_states(tiny_models):
    from w2sbench.training.prefix import PrefixCache

    prefix = PrefixCache(_classifier(tiny_models["bert-big"]), 1)
    prefix.batch(["shared text"])
    child = prefix.overlay()
    child.batch(["shared text", "perturbed text"])
    assert child.computed == 2 and prefix.computed == 1  # the shared text was not recomputed
    assert set(prefix._states) == {"shared text"}
    assert np.array_equal(child.batch(["shared text"])["states"].numpy(), prefix.batch(["shared text"])["states"].numpy())
