"""Model names, pairs, hub-cache resolution and identities."""

from __future__ import annotations

import json

import pytest

from tests.tiny_models import make_hub_cache_model
from w2sbench.cli import main
from w2sbench.errors import W2SBenchError
from w2sbench.models import fetch_model, load_backbone, model_identity, resolve_model, resolve_pair
from w2sbench.plugin_manager import Plugins


@pytest.fixture()
def plugins():
    return Plugins()


def test_pythia_names_resolve_with_revisions(plugins):
    spec = resolve_model("pythia-410m@step71000", plugins)
    assert (spec.source, spec.revision, spec.family) == ("EleutherAI/pythia-410m", "step71000", "pythia")
    assert resolve_model("pythia-1.4b-deduped", plugins).source == "EleutherAI/pythia-1.4b-deduped"
    assert resolve_model("pythia-12b", plugins).params > resolve_model("pythia-6.9b", plugins).params


def test_hub_and_pair_parsing_with_colons(plugins):
    pair = resolve_pair("hf:EleutherAI/pythia-70m@main:pythia-1b", plugins)
    assert pair.weak.source == "EleutherAI/pythia-70m" and pair.weak.revision == "main"
    assert pair.strong.source == "EleutherAI/pythia-1b"
    named = resolve_pair("default", plugins)
    assert named.weak.params < named.strong.params


def test_unknown_model_and_malformed_pair(plugins):
    with pytest.raises(W2SBenchError, match='Did you mean "pythia-160m"'):
        resolve_model("pythia-160", plugins)
    with pytest.raises(W2SBenchError, match="neither a named pair nor"):
        resolve_pair("pythia-160m", plugins)
    with pytest.raises(W2SBenchError):
        resolve_pair("pythia-160m:", plugins)


def test_weak_larger_than_strong_is_refused_unless_allowed(plugins):
    with pytest.raises(W2SBenchError, match="larger than the strong"):
        resolve_pair("pythia-1b:pythia-160m", plugins)
    with pytest.warns(UserWarning, match="larger than the strong"):
        resolve_pair("pythia-1b:pythia-160m", plugins, allow_weak_larger=True)


def test_pythia_resolves_from_hub_cache_offline(plugins, tiny_models, tmp_path, monkeypatch):
    hf_home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(hf_home / "hub"))
    make_hub_cache_model(hf_home, "EleutherAI/pythia-160m", tiny_models["neox"], commit="c" * 40)
    spec = resolve_model("pythia-160m", plugins)
    folder = fetch_model(spec)
    identity = model_identity(spec, folder)
    assert identity["commit"] == "c" * 40 and identity["source"] == "EleutherAI/pythia-160m"
    tokenizer, model = load_backbone(spec, folder)
    assert model.config.model_type == "gpt_neox" and tokenizer.pad_token is not None


def test_uncached_hub_model_fails_fast_with_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty-hf" / "hub"))
    code = main(["run", "--pair", "pythia-160m:pythia-1b", "--properties", "fairness", "--seeds", "0,1,2", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert "not in the local Hugging Face cache" in err and "Traceback" not in err
    assert not (tmp_path / "x" / "cache").exists()


def test_local_folder_identity_is_a_content_hash(plugins, tiny_models):
    spec = resolve_model(str(tiny_models["bert"]), plugins)
    identity = model_identity(spec, fetch_model(spec))
    assert len(identity["sha256"]) == 64
    again = model_identity(spec, fetch_model(spec))
    assert again == identity


def test_a_local_model_is_keyed_by_its_files_not_its_folder(plugins, tiny_models, tmp_path):
    import shutil

    from w2sbench.models import cache_identity

    copy = shutil.copytree(tiny_models["bert"], tmp_path / "elsewhere" / tiny_models["bert"].name)
    spec, moved = resolve_model(str(tiny_models["bert"]), plugins), resolve_model(str(copy), plugins)
    first, second = model_identity(spec, fetch_model(spec)), model_identity(moved, fetch_model(moved))
    assert first["source"] != second["source"]  # results.json says where each came from
    assert cache_identity(first) == cache_identity(second) and "source" not in cache_identity(first)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-5}))
    edited = model_identity(moved, fetch_model(moved))
    assert edited["sha256"] == first["sha256"] and edited["config_sha256"] != first["config_sha256"]
    assert cache_identity(edited) != cache_identity(first)
    # a run's recorded model is this one wherever it lies; results from before config_sha256 compare without it
    from w2sbench.models import same_model

    assert same_model(first, second) and not same_model(first, edited)
    assert same_model({k: v for k, v in first.items() if k != "config_sha256"}, edited)


def test_folder_without_weights_is_refused(plugins, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    spec = resolve_model(str(tmp_path / "empty"), plugins)
    with pytest.raises(W2SBenchError, match="holds no weights"):
        fetch_model(spec)
