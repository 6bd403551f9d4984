"""lm-eval interop, offline: exported tasks run in lm-eval, and capability retention of a run's strong models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from w2sbench import hookimpl
from w2sbench.cli import main
from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import LmEvalTask, MetricInfo, NoRegularizer, TrustProperty
from w2sbench.lm_eval_export import export_lm_eval, parse_rows
from w2sbench.plugin_manager import Plugins
from w2sbench.results import load_results
from w2sbench_plugins.fairness import ADULT_TASK
from w2sbench_plugins.ood import OOD_TAG, style_task_name


def _export(tmp_path: Path, data_dir: Path) -> Path:
    out = tmp_path / "tasks"
    assert main(["export-lm-eval", str(out), "--data-dir", str(data_dir), "--rows", "fairness=40,ood=12"]) == 0
    return out


def test_export_writes_yaml_tasks_with_local_data(tmp_path, data_dir):
    out = _export(tmp_path, data_dir)
    config = yaml.safe_load((out / ADULT_TASK / f"{ADULT_TASK}.yaml").read_text())
    assert config["task"] == ADULT_TASK and config["doc_to_choice"] == ["no", "yes"]
    rows = [json.loads(line) for line in Path(config["dataset_kwargs"]["data_files"]["test"]).read_text().splitlines()]
    assert len(rows) == 40 and {r["label"] for r in rows} <= {0, 1} and {"sex", "race"} <= set(rows[0])
    # The same fixed test subset the fairness trust property evaluates on (loaded through the registry).
    from w2sbench.interfaces import DataContext
    from w2sbench.plugin_manager import get_plugins

    metric = get_plugins().trust_properties.get("fairness")
    data = metric.load_data(DataContext(data_dir, tmp_path), metric.options({"test_size": "40"}))
    assert [r["id"] for r in rows] == data.tests["adult_test"].ids
    shots = [json.loads(line) for line in (out / ADULT_TASK / "fewshot.jsonl").read_text().splitlines()]
    assert len(shots) == 16 and sum(s["label"] for s in shots) == 8  # balanced demonstrations
    styles = sorted((out / OOD_TAG).glob("*.yaml"))
    assert len(styles) == 11  # base + ten styles
    shake = yaml.safe_load((out / OOD_TAG / f"{style_task_name('shake_p0.6')}.yaml").read_text())
    assert OOD_TAG in shake["tag"] and shake["doc_to_choice"] == ["negative", "positive"]
    test_rows = Path(shake["dataset_kwargs"]["data_files"]["test"]).read_text().splitlines()
    assert len(test_rows) == 12 and json.loads(test_rows[0])["label"] in (0, 1)


class Toxicity(TrustProperty):
    """A third-party trust property that exports two lm-eval tasks and records what it was asked for."""

    name = "toy-toxicity"
    primary = "toxicity"
    metrics = (MetricInfo("toxicity", False, "share of toxic outputs"),)
    default_options = {"weak_train_size": 60, "transfer_size": 60, "val_size": 10, "max_length": 32, "test_size": 5}
    asked: list[tuple[dict, int | None, int]] = []

    def load_data(self, ctx, options):  # pragma: no cover - the export never trains
        raise AssertionError("not called by the export")

    def regularizer(self, options):  # pragma: no cover
        return NoRegularizer()

    def evaluate(self, data, probabilities, options):  # pragma: no cover
        return {}

    def lm_eval_tasks(self, ctx, options, rows, fewshot_rows):
        self.asked.append((dict(options), rows, fewshot_rows))
        n = options["test_size"] if rows is None else rows
        texts = [{"text": f"comment {i}", "label": i % 2} for i in range(n)]
        choice = LmEvalTask.multiple_choice(
            "toy_toxic", "toy", {"train": ("shots.jsonl", texts[:fewshot_rows]), "test": ("toxic.jsonl", texts)},
            "{{text}}\nToxic?", ["no", "yes"], "Comments.\n\n", "toy plugin", {"toy_tag": "toy tasks"},
        )
        free = LmEvalTask("toy_generate", "toy", {"test_split": "test", "output_type": "generate_until"},
                          {"test": ("generate.jsonl", [{"prompt": "hi"}])})
        return [choice, free]


class ToyPlugin:
    @staticmethod
    @hookimpl
    def w2sbench_register_trust_properties():
        return [Toxicity()]


def _toy_plugins() -> Plugins:
    Toxicity.asked = []
    return Plugins(extra_plugins=[("toy-plugin", ToyPlugin)], load_entry_points=False)


def test_a_third_party_propertys_lm_eval_tasks_are_exported(tmp_path):
    out = tmp_path / "tasks"
    files = export_lm_eval(out, _toy_plugins(), rows_by_property={"toy-toxicity": 3}, fewshot_rows=2)
    assert Toxicity.asked == [(dict(Toxicity.default_options), 3, 2)]
    assert [p.relative_to(out).as_posix() for p in files] == [
        "README.md", "toy/toy_toxic.yaml", "toy/shots.jsonl", "toy/toxic.jsonl", "toy/toy_generate.yaml", "toy/generate.jsonl",
    ]
    assert yaml.safe_load((out / "toy" / "toy_toxic.yaml").read_text()) == {
        "task": "toy_toxic",
        "tag": ["toy_tag", "w2sbench"],
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"train": str((out / "toy" / "shots.jsonl").resolve()),
                                          "test": str((out / "toy" / "toxic.jsonl").resolve())}},
        "test_split": "test", "fewshot_split": "train", "fewshot_config": {"sampler": "first_n"},
        "output_type": "multiple_choice", "description": "Comments.\n\n", "doc_to_text": "{{text}}\nToxic?",
        "doc_to_choice": ["no", "yes"], "doc_to_target": "label", "target_delimiter": " ",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0, "source": "toy plugin"},
    }
    assert list(yaml.safe_load((out / "toy" / "toy_generate.yaml").read_text())) == [
        "task", "tag", "dataset_path", "dataset_kwargs", "test_split", "output_type",
    ]
    assert (out / "toy" / "toxic.jsonl").read_text() == (
        '{"text": "comment 0", "label": 0}\n{"text": "comment 1", "label": 1}\n{"text": "comment 2", "label": 0}\n'
    )
    assert (out / "toy" / "shots.jsonl").read_text().count("\n") == 2
    assert (out / "README.md").read_text().splitlines()[-1] == (
        "Tags: `w2sbench` (all), `toy_tag` (toy tasks); task `toy_generate`. Data files are referenced by absolute "
        "path: re-run the export after moving this folder."
    )


def test_the_export_refuses_clashing_or_malformed_tasks(tmp_path):
    plugins = _toy_plugins()

    class Copy(Toxicity):
        name = "toy-copy"

    plugins.trust_properties.items["toy-copy"] = Copy()
    plugins.trust_properties.owners["toy-copy"] = "toy-plugin"
    with pytest.raises(W2SBenchError, match='"toy-toxicity" and "toy-copy" both export lm-eval task or file "toy_toxic"'):
        export_lm_eval(tmp_path / "a", plugins)
    with pytest.raises(W2SBenchError, match="--rows 0: an exported task needs at least one test row"):
        export_lm_eval(tmp_path / "b", _toy_plugins(), rows=0)
    with pytest.raises(W2SBenchError, match='Unknown trust property "toy-toxicty". Did you mean "toy-toxicity"'):
        export_lm_eval(tmp_path / "c", _toy_plugins(), properties=["toy-toxicty"])
    Copy.lm_eval_tasks = lambda self, *a: [LmEvalTask("bad.name", "toy", {}, {})]  # type: ignore[method-assign]
    with pytest.raises(W2SBenchError, match='plugin toy-plugin\\) returned the task name "bad.name"'):
        export_lm_eval(tmp_path / "d", plugins, properties=["toy-copy"])
    assert not (tmp_path / "d").exists()


def test_rows_are_parsed_per_property():
    assert parse_rows("100") == (100, {})
    assert parse_rows("fairness=40, ood=12") == (None, {"fairness": 40, "ood": 12})
    assert parse_rows("7,ood=12") == (7, {"ood": 12})
    for bad in ("", "ten", "ood=", "=3", "ood=1,ood=2", "1,2", "ood=-1"):
        with pytest.raises(W2SBenchError, match="is not N or PROPERTY=N, or repeats one"):
            parse_rows(bad)


def test_the_old_row_flags_work_for_one_release_with_a_warning(tmp_path, data_dir, capsys):
    out = tmp_path / "tasks"
    with pytest.warns(FutureWarning) as caught:
        args = ["export-lm-eval", str(out), "--data-dir", str(data_dir), "--properties", "fairness", "--adult-rows", "40"]
        assert main([*args, "--fewshot-rows", "4"]) == 0
    assert [str(w.message) for w in caught] == ["--adult-rows is renamed --rows fairness=N; the old name works for one more release."]
    assert len((out / ADULT_TASK / "test.jsonl").read_text().splitlines()) == 40
    assert len((out / ADULT_TASK / "fewshot.jsonl").read_text().splitlines()) == 4
    assert not (out / OOD_TAG).exists()
    with pytest.warns(FutureWarning, match="--style-rows is renamed --rows ood=N"):
        assert main(["export-lm-eval", str(out), "--rows", "ood=10", "--style-rows", "12"]) == 2
    assert "--rows ood=10 and --style-rows 12 (its old name) differ." in capsys.readouterr().err


@pytest.mark.slow
def test_lm_eval_runs_the_exported_tasks_offline(tmp_path, data_dir, tiny_models, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    out = _export(tmp_path, data_dir)
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["neox"])
    tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(tiny_models["neox"])
    result = simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8), tasks=[ADULT_TASK, OOD_TAG], limit=4,
        num_fewshot=1, task_manager=TaskManager(include_path=str(out)),
    )
    scores = result["results"]
    assert ADULT_TASK in scores and style_task_name("tweet_p0.6") in scores and style_task_name("base") in scores
    # Each task's accuracy is the share of its 4 documents whose highest-likelihood choice is the target,
    # recomputed from the logged per-choice log-likelihoods.
    assert ADULT_TASK in result["samples"] and style_task_name("tweet_p0.6") in result["samples"]
    for task, samples in result["samples"].items():
        correct = [int(np.argmax([float(r[0]) for r in s["filtered_resps"]])) == int(s["target"]) for s in samples]
        assert len(correct) == 4 and scores[task]["acc,none"] == sum(correct) / 4, task


@pytest.mark.slow
def test_capability_retention_of_a_decoder_run(tmp_path, data_dir, tiny_models, monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    tasks = _export(tmp_path, data_dir)
    run = tmp_path / "run"
    small = ["--option", "fairness.weak_train_size=60", "--option", "fairness.transfer_size=60",
             "--option", "fairness.val_size=10", "--option", "fairness.test_size=40", "--option", "fairness.max_length=32"]
    assert main(["run", "--seeds", "0", "--pair", f"{tiny_models['bert']}:{tiny_models['neox']}", "--properties", "fairness",
                 "--strategies", "vanilla", "--finetune", "head:full", "--train", "full.epochs=1",
                 "--data-dir", str(data_dir), "--out", str(run), "--quiet", *small]) == 0
    capsys.readouterr()
    args = ["capability", str(run), "--tasks", ADULT_TASK, "--include-path", str(tasks), "--limit", "6", "--cells", "vanilla", "--json"]
    assert main(args) == 0
    cap = json.loads(capsys.readouterr().out)
    stored = load_results(run)["capability"]
    assert stored == cap and cap["tasks"] == [ADULT_TASK]
    base, trained = cap["base"][ADULT_TASK], cap["models"]["fairness"]["vanilla"]["0"][ADULT_TASK]
    for scores in (base, trained):  # a share of the 6 documents (--limit 6), with lm-eval's standard error of a mean
        right = round(scores["acc,none"] * 6)
        assert scores["acc,none"] == right / 6
        assert math.isclose(scores["acc_stderr,none"], math.sqrt(right / 6 * (1 - right / 6) / 5), abs_tol=1e-12)
    assert main(["report", str(run), "--bootstrap", "0"]) == 0
    assert "capability retention" in capsys.readouterr().out
    # the trained backbone, not the pretrained one, sits inside the evaluated causal LM
    from safetensors.torch import load_file

    from w2sbench.interfaces import ModelSpec
    from w2sbench.language_model import causal_lm

    trainable = next(p for p in (run / "cache" / "train").iterdir()
                     if any("backbone" in k for k in load_file(str(p / "trainable.safetensors"))))
    state = load_file(str(trainable / "trainable.safetensors"))
    from transformers import AutoModel

    backbone = AutoModel.from_pretrained(tiny_models["neox"])
    backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")})
    spec = ModelSpec(name="tiny-neox", source=str(tiny_models["neox"]), local=True, architecture="decoder")
    lm = causal_lm(spec, tiny_models["neox"], backbone)
    pretrained = causal_lm(spec, tiny_models["neox"])
    name, weight = next((k, v) for k, v in lm.base_model.state_dict().items() if k.endswith("dense_h_to_4h.weight"))
    assert (weight == backbone.state_dict()[name]).all() and not (weight == pretrained.base_model.state_dict()[name]).all()
    # a second call is served from the stage cache
    assert main(args) == 0


def test_capability_refuses_an_encoder_strong_model(tmp_path, tiny_models):
    from w2sbench.errors import W2SBenchError
    from w2sbench.interfaces import ModelSpec
    from w2sbench.language_model import causal_lm

    spec = ModelSpec(name="tiny-bert", source=str(tiny_models["bert"]), local=True)
    with pytest.raises(W2SBenchError, match="not a decoder"):
        causal_lm(spec, tiny_models["bert"])
