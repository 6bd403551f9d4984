"""Model limits (issue 13): inputs longer than the model reads (item 2), Pythia revisions (item 3),
the size guard for hf: specs (item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from w2sbench.cli import main
from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import ModelSpec
from w2sbench.models import (
    check_input_lengths,
    fetch_model,
    params_from_files,
    position_limit,
    resolve_pair,
)
from w2sbench.plugin_manager import get_plugins
from w2sbench_plugins.models import PYTHIA_STEPS, PythiaFamily

# ----------------------------------------------------------------------------- item 2


def test_privacy_max_length_beyond_the_default_pair_is_refused_at_validation(data_dir, tmp_path, capsys):
    code = main(["run", "--quiet", "--data-dir", str(data_dir), "--properties", "privacy", "--option", "privacy.max_length=1024",
                 "--out", str(tmp_path / "run")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert ('error: Option "privacy.max_length" is 1024, but model "minilm-l0" reads at most 512 tokens '
            "(its config.json max_position_embeddings).") in err
    assert "fix: Pass --option privacy.max_length=512 or less." in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("arch", ["bert", "neox"])
def test_every_family_and_property_checks_the_position_count(tiny_models, arch):
    spec = ModelSpec(name=f"tiny-{arch}", source=str(tiny_models[arch]), local=True)
    assert position_limit(spec) == (256, "config.json max_position_embeddings")
    check_input_lengths([(spec, None)], {"fairness": 256, "ood": 64})
    with pytest.raises(W2SBenchError, match=rf'Option "ood.max_length" is 257, but model "tiny-{arch}" reads at most 256'):
        check_input_lengths([(spec, None)], {"fairness": 64, "ood": 257})


def test_the_tokenizer_limit_counts_when_smaller(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"n_positions": 1024}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128}))
    assert position_limit(ModelSpec(name="m", source=str(tmp_path), local=True)) == (128, "tokenizer_config.json model_max_length")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": int(1e30)}))  # "no limit"
    assert position_limit(ModelSpec(name="m", source=str(tmp_path), local=True)) == (1024, "config.json n_positions")


def test_an_unknown_limit_passes_until_the_model_is_fetched():
    assert position_limit(ModelSpec(name="hf:x/y", source="x/never-cached-model")) is None


# ----------------------------------------------------------------------------- item 3


def test_the_pythia_checkpoint_schedule():
    assert len(PYTHIA_STEPS) == 154
    assert PYTHIA_STEPS[:12] == (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
    assert PYTHIA_STEPS[-1] == 143000 and 142500 not in PYTHIA_STEPS


@pytest.mark.parametrize("rev,near", [
    ("step143001", '"step142000" or "step143000"'), ("step3", '"step2" or "step4"'),
    ("step999999", '"step142000" or "step143000"'), ("step1500", '"step1000" or "step2000"'),
])
def test_a_pythia_step_that_was_never_saved_is_refused_with_did_you_mean(rev, near):
    with pytest.raises(W2SBenchError) as info:
        resolve_pair(f"pythia-160m@{rev}:pythia-1b", get_plugins())
    assert info.value.problem == f'Pythia has no checkpoint "{rev}" (model "pythia-160m@{rev}"). Did you mean {near}?'
    with pytest.raises(W2SBenchError, match=f'Pythia has no checkpoint "{rev}"'):
        resolve_pair(f"hf:EleutherAI/pythia-160m@{rev}:pythia-1b", get_plugins())


@pytest.mark.parametrize("rev", ["step0", "step1", "step512", "step1000", "step143000", "main"])
def test_saved_pythia_checkpoints_resolve(rev):
    assert PythiaFamily().resolve(f"pythia-70m@{rev}").revision == rev


def test_offline_download_advice_carries_the_revision():
    spec = PythiaFamily().resolve("pythia-70m@step512")
    with pytest.raises(W2SBenchError) as info:
        fetch_model(spec)
    assert info.value.fix.endswith("huggingface-cli download EleutherAI/pythia-70m --revision step512")


@pytest.mark.parametrize("error,problem,fix", [
    ("RevisionNotFoundError", 'The hub repo "EleutherAI/pythia-70m" has no revision "step512" (model "pythia-70m@step512").',
     "Use a branch, tag or commit of https://huggingface.co/EleutherAI/pythia-70m"),
    ("RepositoryNotFoundError", 'The hub has no repo "EleutherAI/pythia-70m" (model "pythia-70m@step512"), or it is private.',
     "Check the spelling of hf:<org>/<name>"),
    ("OSError", "and the hub cannot be reached (OSError).",
     "`huggingface-cli download EleutherAI/pythia-70m --revision step512`"),
])
def test_no_such_revision_is_told_apart_from_no_hub(monkeypatch, error, problem, fix):
    import huggingface_hub
    from huggingface_hub import utils

    exc = getattr(utils, error, OSError)

    def fake(*args, local_files_only=False, **kwargs):
        raise (FileNotFoundError("not cached") if local_files_only else exc("hub says no"))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(W2SBenchError) as info:
        fetch_model(PythiaFamily().resolve("pythia-70m@step512"))
    assert problem in info.value.problem and fix in info.value.fix


# ----------------------------------------------------------------------------- item 6


def test_hf_pythia_specs_carry_their_size_so_the_guard_applies(tmp_path, capsys):
    code = main(["run", "--quiet", "--pair", "hf:EleutherAI/pythia-12b:pythia-70m", "--out", str(tmp_path / "run")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "The weak model hf:EleutherAI/pythia-12b (11,846M parameters) is larger than the strong model pythia-70m (70M)." in err


def test_size_from_safetensors_index_or_config(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100,
                                                    "torch_dtype": "bfloat16"}))
    spec = ModelSpec(name="m", source=str(folder), local=True)
    assert params_from_files(spec) == 12 * 2 * 64 * 64 + 100 * 64
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 24_000_000_000}}))
    assert params_from_files(spec) == 12_000_000_000


def test_an_hf_spec_bigger_than_its_strong_model_by_its_cached_config(tiny_models, monkeypatch):
    from w2sbench import models

    big = str(tiny_models["bert-big"])
    monkeypatch.setattr(models, "_cached_file", lambda spec, name, folder: (
        Path(big) / name if spec.source == "org/big" and name == "config.json" else None))
    with pytest.raises(W2SBenchError, match=r"The weak model hf:org/big \(\d+M parameters\) is larger"):
        resolve_pair(f"hf:org/big:{tiny_models['bert']}", get_plugins())


def test_a_malformed_safetensors_index_falls_back_to_the_config(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100}))
    (folder / "model.safetensors.index.json").write_text(json.dumps(["not", "an", "index"]))
    assert params_from_files(ModelSpec(name="m", source=str(folder), local=True)) == 12 * 2 * 64 * 64 + 100 * 64
