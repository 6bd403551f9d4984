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
    monkeypatch.setattr(precision, "CPU_AUTO_BF16", True)  # the shipped default (conftest pins fp32 for tests)
    assert precision.resolve_precision("auto", "cpu", "full") == "bf16"
    assert precision.resolve_precision("bf16", "cpu", "full") == "bf16"
    assert precision.resolve_precision("auto", "cpu", "lora") == "bf16"
    assert precision.resolve_precision("auto", "cpu", "head") == "fp32"
    assert precision.resolve_precision("fp32", "cpu", "full") == "fp32"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.resolve_precision("auto", "cpu", "full") == "fp32"
    assert precision.resolve_precision("bf16", "cpu", "head") == "bf16"
    assert precision.legacy_precision("cpu") == "fp32"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(precision, "CPU_AUTO_BF16", False)
    assert precision.resolve_precision("auto", "cpu", "full") == "fp32"


def test_float32_attention_inside_bf16_training_steps():
    import torch.nn.functional as F

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    mask = torch.zeros(2, 1, 1, 5, dtype=torch.bfloat16)
    mask[0, ..., 3:] = float("-inf")  # the first row's last two tokens are padding
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask.float()).bfloat16()
    x, w = torch.randn(4, 8), torch.randn(6, 8)
    with precision.training_autocast("cpu", "bf16"):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        linear = F.linear(x, w)  # everything else still runs under bf16 autocast
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected)
    assert linear.dtype == torch.bfloat16
    out.float().sum().backward()
    assert q.grad is not None and q.grad.dtype == torch.bfloat16
    assert precision.training_autocast("cpu", "fp32") is None
    with precision.training_autocast("cpu", "bf16"):  # the query by keyword is cast as well
        by_name = F.scaled_dot_product_attention(query=q, key=k, value=v, attn_mask=mask)
    assert torch.equal(by_name, expected)
    context = precision.training_autocast("cpu", "bf16")
    with context:
        with context:  # nested entries of one context each undo their own
            pass
        assert torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")


def test_training_without_dropout_runs_the_eval_forward(tiny_models):
    from w2sbench.training.trainer import without_dropout

    model = _classifier(tiny_models["bert-big"])
    batch = model.tokenize(["a b c", "a much longer text than the first one here"])
    model.eval()
    with torch.no_grad():
        expected = model(**batch)
        model.train()
        assert not torch.equal(model(**batch), expected)  # the tiny BERT has dropout 0.1
        without_dropout(model)
        model.train()
        assert torch.equal(model(**batch), expected)
    assert default_train_config("full").dropout is False  # openai/weak-to-strong's train_with_dropout=False


def test_without_dropout_reaches_a_decoders_float_probabilities(tiny_models):
    from transformers import AutoModel

    from w2sbench.training.trainer import without_dropout

    torch.manual_seed(0)
    model = AutoModel.from_pretrained(tiny_models["neox"], hidden_dropout=0.5, attention_dropout=0.5)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).last_hidden_state
        model.train()
        assert not torch.equal(model(input_ids=ids).last_hidden_state, expected)
        without_dropout(model)
        model.train()
        assert torch.equal(model(input_ids=ids).last_hidden_state, expected)
    assert model.config.hidden_dropout == 0.0 and model.config.attention_dropout == 0.0


def test_partial_fine_tuning_keeps_dropout_in_the_trained_layers_only(tiny_models):
    from w2sbench.training.classifier import transformer_layers
    from w2sbench.training.trainer import freeze_below

    model = _classifier(tiny_models["bert-big"])
    freeze_below(model, 1)
    model.train()  # what --train full.dropout=true trains with
    bottom, top = transformer_layers(model.backbone)
    dropout = lambda layer: [m.training for m in layer.modules() if isinstance(m, torch.nn.Dropout)]  # noqa: E731
    assert dropout(top) == [True, True, True]  # attention probabilities, attention output, feed-forward output
    assert dropout(bottom) == [False, False, False]


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


def test_overlays_share_perturbed_states_so_a_second_model_reads_them(tiny_models):
    from w2sbench.training.prefix import PrefixCache

    prefix = PrefixCache(_classifier(tiny_models["bert-big"]), 1)
    first = prefix.overlay()
    first.batch(["a perturbed text", "another one"])
    second = prefix.overlay()
    second.batch(["a perturbed text", "a third"])
    assert (first.computed, second.computed) == (2, 1)  # only "a third" was new to the second model
    assert set(prefix._states) == set()  # the run-long store holds none of them
    assert set(prefix._perturbed) == {"a perturbed text", "another one", "a third"}


def test_bounded_states_evict_the_least_recently_used_beyond_their_bytes():
    from w2sbench.training.prefix import BoundedStates

    store = BoundedStates(max_bytes=3 * 80)  # three arrays of 10 float64
    for name in "abc":
        store[name] = np.zeros(10)
    store["a"]  # noqa: B018 - reading makes "a" the most recently used
    store["d"] = np.ones(10)
    assert list(store) == ["c", "a", "d"] and store.bytes == 240
    store["e"] = np.zeros(30)  # alone over the limit: kept, everything else evicted
    assert list(store) == ["e"] and store.bytes == 240


def test_a_batch_larger_than_the_perturbed_store_still_answers_every_row(tiny_models, monkeypatch):
    from w2sbench.training import prefix as prefix_module

    monkeypatch.setattr(prefix_module, "PERTURBED_STATES_BYTES", 1)
    prefix = prefix_module.PrefixCache(_classifier(tiny_models["bert-big"]), 1)
    overlay = prefix.overlay()
    texts = ["one text", "two texts here", "three"]
    batch = overlay.batch(texts)
    assert len(overlay._perturbed) == 1  # the others were evicted at once
    fresh = prefix_module.PrefixCache(_classifier(tiny_models["bert-big"]), 1).batch(texts)
    assert np.array_equal(batch["states"].numpy(), fresh["states"].numpy())


def test_a_batch_whose_new_rows_evict_its_stored_rows_still_answers_every_row(tiny_models, monkeypatch):
    # a live attack's batch mixes perturbed texts stored by an earlier model with new ones; storing the new ones
    # evicted the stored ones before they were read (KeyError in a long default run)
    from w2sbench.training import prefix as prefix_module

    prefix = prefix_module.PrefixCache(_classifier(tiny_models["bert-big"]), 1)
    first = prefix.overlay()
    first.batch(["stored one", "stored two"])
    prefix._perturbed.max_bytes = prefix._perturbed.bytes  # full: every new row evicts the oldest
    second = prefix.overlay()
    texts = ["stored one", "new text", "stored two", "another new text"]
    batch = second.batch(texts)
    assert second.computed == 2 and set(prefix._perturbed) <= set(texts[1::2]) | {"stored two"}
    fresh = prefix_module.PrefixCache(_classifier(tiny_models["bert-big"]), 1).batch(texts)
    assert np.array_equal(batch["states"].numpy(), fresh["states"].numpy())


def test_inference_weights_resolution(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.inference_weights("auto", "cpu", "full") == "bf16"
    assert precision.inference_weights("bf16", "cpu", "full") == "bf16"
    assert precision.inference_weights("fp32", "cpu", "full") == "fp32"  # the old path, forced
    assert precision.inference_weights("auto", "cpu", "head") == "fp32"
    assert precision.inference_weights("auto", "cpu", "lora") == "fp32"
    assert precision.inference_weights("auto", "cuda", "full") == "fp32"  # GPUs keep bf16 autocast
    monkeypatch.setattr(precision, "CPU_AUTO_BF16_INFERENCE", False)
    assert precision.inference_weights("auto", "cpu", "full") == "fp32"
    monkeypatch.setattr(precision, "CPU_AUTO_BF16_INFERENCE", True)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.inference_weights("auto", "cpu", "full") == "fp32"
    assert precision.inference_weights("bf16", "cpu", "full") == "bf16"


@pytest.mark.parametrize(
    ("mode", "layers", "asked", "device", "key"),
    [
        ("full", 2, "auto", "cpu", {"inference_weights": "bf16"}),
        ("full", 2, "bf16", "cpu", {"inference_weights": "bf16"}),
        ("full", 2, "fp32", "cpu", {}),
        ("full", 0, "auto", "cpu", {}),  # the whole model trains: no frozen-layer states, the old path
        ("head", 0, "auto", "cpu", {}),
        ("full", 2, "auto", "cuda", {}),
    ],
)
def test_bf16_inference_enters_predict_and_live_keys_only_where_it_runs(monkeypatch, mode, layers, asked, device, key):
    from types import SimpleNamespace

    from w2sbench.interfaces import ModelSpec
    from w2sbench.run_models import Role, RunModels

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    config = TrainConfig(epochs=1, lr=1e-3, batch_size=4, trainable_layers=layers, precision=asked)
    role = Role(ModelSpec("m", "org/m"), None, {}, mode, config)  # type: ignore[arg-type]
    models = SimpleNamespace(roles={"strong": role}, device=device)
    assert RunModels.inference_key(models, "strong") == key  # type: ignore[arg-type]


def test_bf16_weights_predict_close_to_fp32_and_leave_the_model_float32(tiny_models):
    from w2sbench.training.prefix import PrefixCache, TopLayers

    model = _classifier(tiny_models["bert-big"])
    model.eval()
    top = TopLayers(model, 1)
    texts = ["a b c", "a much longer text than the first one here", "x y"]
    fp32 = PrefixCache(model, 1).predict_proba(top, texts)
    bf16_cache = PrefixCache(model, 1, weights="bf16")
    bf16 = bf16_cache.predict_proba(top, texts)
    assert bf16.dtype == np.float64 and np.allclose(bf16.sum(1), 1.0)
    assert np.abs(bf16 - fp32).max() < 0.02
    assert not np.array_equal(bf16, fp32)  # it did run in bf16
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert bf16_cache._states[texts[0]].dtype == np.float16  # stored like the fp32 path's states


def test_bf16_top_copy_follows_in_place_weight_changes(tiny_models):
    from w2sbench.training.prefix import PrefixCache, TopLayers

    model = _classifier(tiny_models["bert-big"])
    model.eval()
    top = TopLayers(model, 1)
    texts = ["a b c", "x y"]
    cache = PrefixCache(model, 1, weights="bf16")
    before = cache.predict_proba(top, texts)
    with torch.no_grad():
        next(top.parameters()).mul_(3.0)  # what loading another trained model's weights does
    after = cache.predict_proba(top, texts)
    assert not np.array_equal(before, after)
    assert np.array_equal(after, PrefixCache(model, 1, weights="bf16").predict_proba(top, texts))


def test_equal_length_batches_group_texts_of_one_length():
    from w2sbench.training.prefix import equal_length_batches

    assert equal_length_batches([3, 5, 3, 3, 5, 7], 2) == [[0, 2], [3], [1, 4], [5]]
    assert equal_length_batches([], 4) == []


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_frozen_states_do_not_depend_on_the_other_texts_of_a_batch(tiny_models, monkeypatch, precision):
    """A text's cached states are the same computed alone or among others (no batch is padded), so what a worker
    process computed before cannot change them."""
    from w2sbench.training import prefix as prefix_module

    texts = ["a short one", "a somewhat longer text with many more words in it", "tiny", "another short one",
             "a middle length text here", "", "tiny too"]
    masks = []
    real = prefix_module.bottom_states

    def recording(backbone, bottom, batch):  # noqa: ANN001, ANN202
        masks.append(batch["attention_mask"].clone())
        return real(backbone, bottom, batch)

    monkeypatch.setattr(prefix_module, "bottom_states", recording)
    model = _classifier(tiny_models["bert-big"])
    together = prefix_module.PrefixCache(model, 1, precision)._compute(texts)
    assert masks and all(bool(m.all()) for m in masks)  # no padding in any batch
    for text in texts:
        alone = prefix_module.PrefixCache(model, 1, precision)._compute([text])[text]
        assert np.array_equal(alone, together[text])
