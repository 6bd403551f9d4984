"""Option values outside their meaning (issue 13, item 8) and writing where it should not (item 10).

The exact command lines of the issue are cases in tests/bad_inputs.py (exit 2, message, docs entry);
these tests cover the declarations, the one coercer and the run-directory rules directly.
"""

from __future__ import annotations

import os
import stat

import pytest

from w2sbench.cli_tables import option_table
from w2sbench.errors import W2SBenchError
from w2sbench.files import atomic_write_json
from w2sbench.run_dir import claim_run_dir
from w2sbench.runner import _train_configs
from w2sbench.settings import RunSettings, parse_seeds
from w2sbench.stage_cache import StageCache
from w2sbench.training.config import TrainConfig
from w2sbench.values import TRAIN_RANGES, Range, coerce, default_range
from w2sbench_plugins.fairness import Fairness


@pytest.mark.parametrize("text,value", [("true", True), ("On", True), ("1", True), ("no", False), ("FALSE", False)])
def test_one_boolean_coercer_for_train_and_option(text, value):
    assert _train_configs({"full": {"compile": text}})["full"]["compile"] is value
    assert coerce(text, Range("bool"), "x") is value


@pytest.mark.parametrize("text", ["ture", "", "2", "yes please"])
def test_a_misspelt_boolean_is_refused_for_train_as_for_option(text):
    with pytest.raises(W2SBenchError) as info:
        _train_configs({"full": {"compile": text}})
    assert info.value.problem == f'Training setting "full.compile" got "{text}", which is not a valid bool.'
    assert info.value.fix == "Pass true or false, e.g. False."


def test_every_training_setting_declares_a_range():
    assert set(TRAIN_RANGES) == set(TrainConfig.__dataclass_fields__)


@pytest.mark.parametrize("setting,text,shown", [
    ("epochs", "0", "an integer >= 1"),
    ("batch_size", "-3", "an integer >= 1"),
    ("lr", "0", "a finite number > 0"),
    ("lr", "inf", "a finite number > 0"),
    ("warmup_fraction", "1.5", "a finite number >= 0 and <= 1"),
    ("weight_decay", "nan", "a finite number >= 0"),
    ("grad_accumulation", "0", "an integer >= 1"),
    ("trainable_layers", "-1", "an integer >= 0 (0 = all layers)"),
])
def test_training_settings_outside_their_range(setting, text, shown):
    with pytest.raises(W2SBenchError) as info:
        _train_configs({"head": {setting: text}})
    assert info.value.problem == f'Training setting "head.{setting}" got "{text}", which is outside its range: {shown}.'


@pytest.mark.parametrize("key,text", [
    ("weight", "nan"), ("weight", "-0.5"), ("weak_weight", "inf"), ("weak_train_size", "0"),
    ("transfer_size", "-1"), ("test_size", "-1"), ("max_length", "0"),
])
def test_fairness_options_outside_their_range(key, text):
    with pytest.raises(W2SBenchError, match=f'Option "fairness.{key}" got "{text}", which is outside its range'):
        Fairness().options({key: text})


def test_options_in_range_pass_and_keep_their_type():
    opts = Fairness().options({"weight": "2", "test_size": "0", "weak_weight": "-1"})
    assert opts["weight"] == 2.0 and isinstance(opts["weight"], float)
    assert opts["test_size"] == 0 and opts["weak_weight"] == -1.0


def test_undeclared_options_get_a_range_from_their_default():
    assert default_range("anything", 0.3) == Range("float")
    assert default_range("count", 5) == Range("int", 0)
    assert default_range("flag", True) == Range("bool")
    assert default_range("max_length", 64).describe() == "an integer >= 1 (tokens per input)"


def test_the_declarations_document_every_setting():
    rows = {name: (default, valid) for name, default, valid in option_table([Fairness()])}
    assert rows["--option fairness.test_size"] == ("2000", "an integer >= 0 (0 = every test row)")
    assert rows["--train head.lr"] == ("0.003", "a finite number > 0")
    assert len([r for r in rows if r.startswith("--train ")]) == 3 * len(TRAIN_RANGES)


@pytest.mark.parametrize("text,problem", [
    ("99999999999999999999", 'Bad seeds list "99999999999999999999": seeds must be integers from 0 to 4294967295'),
    ("0-99999999999", 'Bad seeds list "0-99999999999": seeds must be integers from 0 to 4294967295'),
    ("0-5000", 'Bad seeds list "0-5000": it names 5001 seeds; a run takes at most 1000.'),
])
def test_seeds_outside_every_library_range_are_refused(text, problem):
    with pytest.raises(W2SBenchError) as info:
        parse_seeds(text)
    assert info.value.problem.startswith(problem)


def test_largest_seed_is_accepted():
    assert parse_seeds("4294967295") == (4294967295,)


# --------------------------------------------------------------------------- writing where it should not


def _settings(seeds: tuple[int, ...] = (0,)) -> RunSettings:
    return RunSettings(pair="p", weak="w", strong="s", metrics=("fairness",), strategies=("vanilla",), seeds=seeds,
                       finetune_weak="head", finetune_strong="head")


def test_a_folder_with_someone_elses_files_is_refused_and_left_as_found(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "results.json").write_text('{"mine": true}')
    (theirs / ".lock").write_text("")  # what RunLock creates just before the claim
    with pytest.raises(W2SBenchError) as info:
        claim_run_dir(theirs, _settings())
    assert info.value.problem == (
        f"{theirs} already holds files that no w2sbench run wrote (results.json); writing a run there would "
        "overwrite them."
    )
    assert sorted(p.name for p in theirs.iterdir()) == ["results.json"]
    assert (theirs / "results.json").read_text() == '{"mine": true}'


def test_a_run_that_wrote_no_results_can_be_reconfigured_freely(tmp_path):
    claim_run_dir(tmp_path / "run", _settings((0,)))
    claim_run_dir(tmp_path / "run", _settings((0, 1)))  # e.g. after a failure before training: no --reconfigure
    (tmp_path / "run" / "results.json").write_text("{}")
    with pytest.raises(W2SBenchError, match="holds a run with different settings"):
        claim_run_dir(tmp_path / "run", _settings((0, 2)))


def test_written_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        stage = StageCache(tmp_path / "cache").compute("k", {"k": 1}, lambda d: (d / "f.json").write_text("{}"))
        os.umask(0o077)
        atomic_write_json(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(stage.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600


# --------------------------------------------------------------------------- empty and whitespace-only texts (item 5)


@pytest.mark.parametrize("arch", ["neox", "bert"])
def test_a_batch_of_empty_texts_reaches_the_model_with_a_real_token(tiny_models, arch):
    import numpy as np
    from transformers import AutoModel, AutoTokenizer

    from w2sbench.training.classifier import Classifier

    tokenizer = AutoTokenizer.from_pretrained(tiny_models[arch])
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = Classifier(AutoModel.from_pretrained(tiny_models[arch]), tokenizer, 2, 16)
    batch = model.tokenize(["", "   ", "\n"])
    assert batch["attention_mask"].sum(1).tolist() == [batch["attention_mask"].shape[1]] * 3
    assert batch["attention_mask"].shape[1] >= 1
    probs = model.predict_proba(["", "  ", "good movie"])
    assert probs.shape == (3, 2) and np.isfinite(probs).all()


def test_loaders_report_the_rows_they_drop(tmp_path):
    from w2sbench_plugins._sst2 import load_sst2

    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\n\t0\n   \t1\nbad film\t0\n")
    with pytest.warns(UserWarning) as caught:
        examples = load_sst2(path, "train")
    assert [str(w.message) for w in caught] == [f"{path}: dropped 2 of 4 rows whose text is empty or whitespace only."]
    assert examples.texts == ["good film", "bad film"] and examples.ids == ["sst2-train-0", "sst2-train-3"]
    assert examples.labels.tolist() == [1, 0]


def test_sst2_is_parsed_once_while_its_file_is_unchanged(tmp_path):
    """ood and adversarial read the same SST-2 files: one parse per process, a new one when the file changes."""
    import os

    from w2sbench_plugins._sst2 import load_sst2

    path = tmp_path / "dev.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\n")
    first = load_sst2(path, "dev")
    assert load_sst2(path, "dev") is first
    path.write_text("sentence\tlabel\nbad film\t0\n")
    os.utime(path, ns=(1, 1))  # a new modification time even on a coarse-clock file system
    changed = load_sst2(path, "dev")
    assert (changed.texts, changed.labels.tolist()) == (["bad film"], [0])
