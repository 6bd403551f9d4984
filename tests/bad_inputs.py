"""Bad command lines and the error each must give (exit code 2, one paragraph, no traceback).

Shared by tests/test_bad_inputs.py and docs/troubleshooting.md (the test checks every ``expect``
string, and ``fix`` where one is given, is listed there). ``setup`` prepares files under a temporary directory;
``{tmp}``, ``{data}``, ``{weak}`` and ``{strong}`` in argv are filled in by the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BadInput", "CASES"]


@dataclass(frozen=True)
class BadInput:
    title: str
    argv: list[str]
    expect: str
    setup: Callable[[Path, Path], None] | None = None  # (tmp, real data dir)
    env: dict[str, str] = field(default_factory=dict)
    fix: str = ""  # the exact fix line, where the case checks it


def _mirror_with(name: str, content: bytes | None) -> Callable[[Path, Path], None]:
    """A copy of the data mirror's Adult folder with adult.data replaced (or removed)."""

    def setup(tmp: Path, data: Path) -> None:
        (tmp / "mirror" / "adult").mkdir(parents=True, exist_ok=True)
        shutil.copy(data / "adult" / "adult.test", tmp / "mirror" / "adult" / "adult.test")
        if content is not None:
            (tmp / "mirror" / "adult" / name).write_bytes(content)

    return setup


def _weightless_folder(tmp: Path, data: Path) -> None:
    (tmp / "noweights").mkdir(exist_ok=True)
    (tmp / "noweights" / "config.json").write_text('{"model_type": "bert"}')


def _readonly_out(tmp: Path, data: Path) -> None:
    (tmp / "ro").mkdir(exist_ok=True)
    os.chmod(tmp / "ro", 0o500)


def _corrupt_results(tmp: Path, data: Path) -> None:
    (tmp / "badrun").mkdir(exist_ok=True)
    (tmp / "badrun" / "results.json").write_text('{"schema_version": "1.0", "settings": ')


def _old_results(tmp: Path, data: Path) -> None:
    (tmp / "oldrun").mkdir(exist_ok=True)
    (tmp / "oldrun" / "results.json").write_text('{"schema_version": "0.1"}')


def _nan_results(tmp: Path, data: Path) -> None:
    (tmp / "nanrun").mkdir(exist_ok=True)
    (tmp / "nanrun" / "results.json").write_text('{"schema_version": "1.0", "properties": {"fairness": {"score": NaN}}}')


def _duplicate_key_results(tmp: Path, data: Path) -> None:
    (tmp / "duprun").mkdir(exist_ok=True)
    (tmp / "duprun" / "results.json").write_text('{"schema_version": "0.1", "schema_version": "1.0"}')


def _foreign_out(tmp: Path, data: Path) -> None:
    (tmp / "theirs").mkdir(exist_ok=True)
    (tmp / "theirs" / "results.json").write_text('{"mine": true}')
    (tmp / "theirs" / "notes.txt").write_text("my notes")


def _sweep_with_both_names(tmp: Path, data: Path) -> None:
    (tmp / "both.yaml").write_text("pairs: [default]\nproperties: [fairness]\nmetrics: [fairness]\n")


RUN = ["run", "--seeds", "0", "--quiet", "--data-dir", "{data}"]
PAIR = ["--pair", "{weak}:{strong}", "--finetune", "head", "--properties", "fairness"]
CASES = [
    BadInput("unknown model name", [*RUN, "--pair", "pythia-160:pythia-1b"], 'Unknown model "pythia-160"'),
    BadInput("malformed pair", [*RUN, "--pair", "pythia-160m"], "is neither a named pair nor of the form WEAK:STRONG"),
    BadInput("empty side of a pair", [*RUN, "--pair", "pythia-160m:"], "has an empty side"),
    BadInput("unknown named pair", [*RUN, "--pair", "defualt"], "is neither a named pair"),
    BadInput("weak model larger than strong", [*RUN, "--pair", "pythia-1b:pythia-160m"], "is larger than the strong model"),
    BadInput("unknown trust property", [*RUN, *PAIR, "--properties", "fairnes"], 'Unknown trust property "fairnes"'),
    BadInput("empty list of trust properties", [*RUN, *PAIR, "--properties", ","], "The list of trust properties is empty"),
    BadInput("repeated trust property", [*RUN, *PAIR, "--properties", "fairness,fairness"], "repeats a name"),
    BadInput("unknown strategy", [*RUN, *PAIR, "--strategies", "vanila"], 'Unknown strategy "vanila"'),
    BadInput("seeds that are not numbers", [*RUN, *PAIR, "--seeds", "a,b"], 'Bad seeds list "a,b"'),
    BadInput("negative or repeated seeds", [*RUN, *PAIR, "--seeds", "1,1"], "distinct non-negative integers"),
    BadInput("backwards seed range", [*RUN, *PAIR, "--seeds", "0,5-2"],
             'Bad seeds list "0,5-2": the range "5-2" runs backwards (a range is LOW-HIGH).',
             fix="Write the smaller seed first: --seeds 0,2-5."),
    BadInput("unknown fine-tune mode", [*RUN, "--pair", "{weak}:{strong}", "--finetune", "partial"], 'Bad fine-tune mode "partial"'),
    BadInput("three fine-tune modes", [*RUN, "--pair", "{weak}:{strong}", "--finetune", "head:full:lora"], "Bad fine-tune mode"),
    BadInput("missing data directory", ["run", "--seeds", "0", "--quiet", *PAIR, "--data-dir", "{tmp}/nowhere"], "does not exist"),
    BadInput("dataset file missing from the mirror", ["run", "--seeds", "0", "--quiet", *PAIR, "--data-dir", "{tmp}/mirror"],
             "is missing from the data directory", _mirror_with("adult.data", None)),
    BadInput("corrupted (binary) dataset file", ["run", "--seeds", "0", "--quiet", *PAIR, "--data-dir", "{tmp}/mirror"],
             "failed to load its data: UnicodeDecodeError", _mirror_with("adult.data", bytes(range(256)) * 8)),
    BadInput("dataset with wrong columns", ["run", "--seeds", "0", "--quiet", *PAIR, "--data-dir", "{tmp}/mirror"],
             "columns; UCI Adult has 15", _mirror_with("adult.data", b"39, State-gov, 77516\n")),
    BadInput("empty dataset", ["run", "--seeds", "0", "--quiet", *PAIR, "--data-dir", "{tmp}/mirror"],
             'The training data of "fairness" is empty', _mirror_with("adult.data", b"")),
    BadInput("model folder without weights", [*RUN, "--pair", "{tmp}/noweights:{strong}", "--finetune", "head"],
             "holds no weights", _weightless_folder),
    BadInput("read-only output directory", [*RUN, *PAIR, "--out", "{tmp}/ro/run"], "Cannot write to", _readonly_out),
    BadInput("unknown trust-property option", [*RUN, *PAIR, "--option", "fairness.lambda=2"], 'has no option "lambda"'),
    BadInput("malformed option", [*RUN, *PAIR, "--option", "fairness"], 'Bad option "fairness"',
             fix="Write options as PROPERTY.KEY=VALUE, e.g. --option fairness.weight=2."),
    BadInput("option value after a space", [*RUN, *PAIR, "--option", "fairness.weight", "0.5"],
             'Unrecognized argument "0.5" after --option fairness.weight: an option is PROPERTY.KEY=VALUE, one word.',
             fix="Write --option fairness.weight=0.5 (no spaces around =)."),
    BadInput("option of the wrong type", [*RUN, *PAIR, "--option", "fairness.weight=heavy"], "is not a valid float"),
    BadInput("option for a misspelt trust property", [*RUN, *PAIR, "--properties", "fairness", "--option", "fairnss.weight=1"],
             'Unknown trust property "fairnss"'),
    BadInput("option for a trust property not in the run", [*RUN, *PAIR, "--option", "ood.transfer_size=100"],
             '--option names "ood", which is not among this run\'s trust properties (fairness).',
             fix="Add it to --properties (e.g. --properties fairness,ood), or drop the option."),
    BadInput("both --properties and its old name --metrics", [*RUN, *PAIR, "--metrics", "fairness"],
             "--properties and --metrics (its old name) are both given.", fix="Pass only --properties."),
    BadInput("--debug after the subcommand", [*RUN, *PAIR, "--debug"],
             "--debug is an option of w2sbench itself, so it goes before the subcommand, not after `run`.",
             fix="Write w2sbench --debug run ... (or set W2SBENCH_DEBUG=1)."),
    BadInput("unknown training mode", [*RUN, *PAIR, "--train", "fast.epochs=1"], "unknown mode(s): fast"),
    BadInput("malformed training setting", [*RUN, *PAIR, "--train", "epochs=3"], 'Bad training setting "epochs=3".',
             fix="Write --train MODE.KEY=VALUE with MODE a fine-tune mode (head, lora, full), e.g. --train full.epochs=2."),
    BadInput("unknown training setting", [*RUN, *PAIR, "--train", "full.epoch=1"],
             'Unknown training setting "full.epoch". Did you mean "epochs"?'),
    BadInput("training setting of the wrong type", [*RUN, *PAIR, "--train", "head.epochs=two"], 'Training setting "head.epochs" got "two"'),
    # Values outside their meaning (issue 13, item 8): one declared range per option and training setting.
    BadInput("option that is not a number (NaN)", [*RUN, *PAIR, "--option", "fairness.weight=nan"],
             'Option "fairness.weight" got "nan", which is outside its range: a finite number >= 0.'),
    BadInput("option that overflows to infinity", [*RUN, *PAIR, "--option", "fairness.weight=1e309"],
             'Option "fairness.weight" got "1e309", which is outside its range: a finite number >= 0.'),
    BadInput("negative test size", [*RUN, *PAIR, "--option", "fairness.test_size=-1"],
             'Option "fairness.test_size" got "-1", which is outside its range: an integer >= 0 (0 = every test row).'),
    BadInput("zero max_length", [*RUN, *PAIR, "--option", "fairness.max_length=0"],
             'Option "fairness.max_length" got "0", which is outside its range: an integer >= 1 (tokens per input).'),
    BadInput("zero epochs", [*RUN, *PAIR, "--train", "full.epochs=0"],
             'Training setting "full.epochs" got "0", which is outside its range: an integer >= 1.'),
    BadInput("zero batch size", [*RUN, *PAIR, "--train", "head.batch_size=0"],
             'Training setting "head.batch_size" got "0", which is outside its range: an integer >= 1.'),
    BadInput("misspelt boolean training setting", [*RUN, *PAIR, "--train", "full.compile=ture"],
             'Training setting "full.compile" got "ture", which is not a valid bool.'),
    BadInput("seed beyond every library's range", [*RUN, *PAIR, "--seeds", "99999999999999999999"],
             'Bad seeds list "99999999999999999999": seeds must be integers from 0 to 4294967295'),
    BadInput("DP-SGD delta of at least 1/N", [*RUN, "--pair", "{weak}:{strong}", "--finetune", "head", "--properties", "privacy",
                                              "--option", "privacy.delta=0.001"],
             "privacy.delta is 0.001; it must be below 1/N = 0.001 (N = 1000, the largest DP-SGD training split)"),
    # Non-finite training (issue 13, item 1): stops naming the cell and the setting; nothing is cached.
    BadInput("training that diverges (non-finite loss)",
             [*RUN, *PAIR, "--strategies", "vanilla", "--train", "head.lr=1e6", "--option", "fairness.weak_train_size=40",
              "--option", "fairness.transfer_size=40", "--option", "fairness.val_size=10", "--option", "fairness.test_size=50"],
             "Training fairness s0 weak (head mode) met a non-finite loss"),
    # Model limits (issue 13, items 2, 3, 6).
    BadInput("inputs longer than the model can read", ["run", "--quiet", "--data-dir", "{data}", "--properties", "privacy",
                                                        "--option", "privacy.max_length=1024"],
             'Option "privacy.max_length" is 1024, but model "minilm-l0" reads at most 512 tokens'),
    BadInput("Pythia checkpoint that was never saved", [*RUN, "--pair", "pythia-160m@step143001:pythia-1b"],
             'Pythia has no checkpoint "step143001" (model "pythia-160m@step143001"). Did you mean "step142000" or "step143000"?'),
    BadInput("hf: weak model larger than strong", [*RUN, "--pair", "hf:EleutherAI/pythia-12b:pythia-70m"],
             "The weak model hf:EleutherAI/pythia-12b (11,846M parameters) is larger than the strong model pythia-70m"),
    # Writing where it should not (issue 13, item 10).
    BadInput("output folder holding someone else's files", [*RUN, *PAIR, "--out", "{tmp}/theirs"],
             "already holds files that no w2sbench run wrote (notes.txt, results.json)", _foreign_out),
    BadInput("unknown device", [*RUN, *PAIR, "--device", "tpu"], 'Unknown device "tpu"'),
    BadInput("GPU asked for, none present", [*RUN, *PAIR, "--device", "cuda"], "no CUDA GPU is visible"),
    BadInput("splits larger than the data", [*RUN, *PAIR, "--option", "fairness.weak_train_size=100000"],
             "but the splits need"),
    BadInput("unknown sensitive attribute", [*RUN, *PAIR, "--option", "fairness.sensitive_attribute=age"],
             'Unknown sensitive attribute "age"'),
    BadInput("unknown fairness regularizer", [*RUN, *PAIR, "--option", "fairness.regularizer=parity"],
             'Unknown fairness regularizer "parity"'),
    BadInput("unknown adversarial training method", [*RUN, "--pair", "{weak}:{strong}", "--finetune", "head", "--properties", "adversarial", "--option", "adversarial.method=embeding"],
             'Unknown adversarial training method "embeding"'),
    BadInput("embedding adversarial training of a head-mode model",
             [*RUN, "--pair", "{weak}:{strong}", "--finetune", "head", "--properties", "adversarial", "--option", "adversarial.method=embedding"],
             "perturbs input embeddings, but the weak model trains in head mode"),
    BadInput("unknown extraction template", [*RUN, "--pair", "{weak}:{strong}", "--finetune", "head", "--properties", "privacy", "--option", "privacy.extraction_template=g"],
             'Unknown extraction template "g"'),
    BadInput("hub model not cached while offline", [*RUN, "--pair", "pythia-70m:pythia-160m"],
             "is not in the local Hugging Face cache", env={"HF_HUB_OFFLINE": "1"}),
    BadInput("report of a directory without results", ["report", "{tmp}/nothing"], "No results file"),
    BadInput("report of a corrupted results file", ["report", "{tmp}/badrun"], "is not valid JSON", _corrupt_results),
    BadInput("report of results from another schema version", ["report", "{tmp}/oldrun"], "has schema version '0.1'", _old_results),
    BadInput("report of results holding NaN", ["report", "{tmp}/nanrun"], "is not valid JSON: contains NaN", _nan_results),
    BadInput("report of results with a repeated key", ["report", "{tmp}/duprun"], 'repeats the key "schema_version"',
             _duplicate_key_results),
    BadInput("sweep file naming properties and their old name metrics", ["sweep", "{tmp}/both.yaml"],
             'both.yaml has both "properties" and "metrics" (its old name).', _sweep_with_both_names,
             fix="Keep only properties:."),
    BadInput("report with a negative number of bootstrap resamples", ["report", "{tmp}/nothing", "--bootstrap", "-1"],
             "--bootstrap -1 is negative"),
    BadInput("unknown exporter", ["export", "{tmp}/oldrun", "--format", "xml", "--to", "{tmp}/x"], 'Unknown exporter "xml"', _old_results),
]
