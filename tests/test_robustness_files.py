"""Files that are not what they claim (issue 13, item 9): every JSON the tool reads rejects NaN/Infinity
and repeated keys; report checks the predictions sidecar's sha256 and the cells' completeness."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import SMALL_FAIRNESS
from w2sbench.cli import main
from w2sbench.errors import W2SBenchError
from w2sbench.jsonio import StrictJSONError, loads_strict, read_json
from w2sbench.leaderboard._safejson import UnsafeInput, loads_bounded


def _run_args(tiny_models, data_dir, out: Path) -> list[str]:
    return ["run", "--quiet", "--data-dir", str(data_dir), "--pair", f"{tiny_models['bert']}:{tiny_models['bert-big']}",
            "--finetune", "head", "--properties", "fairness", "--strategies", "vanilla", "--seeds", "0", *SMALL_FAIRNESS, "--out", str(out)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_models, data_dir) -> Path:
    root = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as mp:  # module-scoped: set up before conftest's per-test isolation
        mp.setenv("W2SBENCH_CACHE", str(root / "w2s-cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("W2SBENCH_WORKERS", "1")
        assert main(_run_args(tiny_models, data_dir, root / "run")) == 0
    return root / "run"


def _copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / "copy"
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns(".lock", "cache", "report-intervals.json"))
    return dest


def _report(run: Path, capsys) -> tuple[int, str]:
    code = main(["report", str(run)])
    return code, " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_report_refuses_results_holding_non_finite_numbers(finished_run, tmp_path, capsys, constant):
    run = _copy(finished_run, tmp_path)
    doc = json.loads((run / "results.json").read_text())
    accuracy = doc["properties"]["fairness"]["cells"]["vanilla"]["seeds"]["0"]
    accuracy["accuracy"] = "__X__"
    (run / "results.json").write_text(json.dumps(doc).replace('"__X__"', constant))
    code, err = _report(run, capsys)
    assert code == 2, err
    assert f"results.json is not valid JSON: contains {constant}, which is not valid JSON" in err
    assert "fix: Regenerate it: run `w2sbench run` again with the run's settings" in err
    assert "nan" not in err.replace("NaN", "")


def test_report_refuses_a_results_file_missing_a_cell(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    doc = json.loads((run / "results.json").read_text())
    del doc["properties"]["fairness"]["cells"]["weak"]
    (run / "results.json").write_text(json.dumps(doc))
    code, err = _report(run, capsys)
    assert code == 2, err
    assert 'lacks cell(s) weak of property "fairness"; ratios against them cannot be trusted.' in err


def test_report_refuses_a_results_file_missing_a_seed(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    doc = json.loads((run / "results.json").read_text())
    del doc["properties"]["fairness"]["cells"]["ceiling"]["seeds"]["0"]
    (run / "results.json").write_text(json.dumps(doc))
    code, err = _report(run, capsys)
    assert code == 2 and 'lacks seed(s) 0 of cell "ceiling" of property "fairness".' in err, err


def test_report_refuses_a_predictions_sidecar_whose_hash_changed(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    lines = gzip.decompress((run / "predictions.jsonl.gz").read_bytes()).decode().splitlines()
    first = json.loads(lines[0])
    first["probabilities"][0] = first["probabilities"][0][::-1]
    lines[0] = json.dumps(first)
    (run / "predictions.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    code, err = _report(run, capsys)
    assert code == 2, err
    assert "predictions.jsonl.gz does not match the sha256 recorded in results.json" in err
    assert "it was changed or replaced after the run" in err
    assert "fix: Restore the original file, or regenerate it" in err


def test_a_rerun_keeps_an_unchanged_sidecar_and_rewrites_a_changed_one(finished_run, tiny_models, data_dir, tmp_path, monkeypatch):
    import shutil

    from w2sbench import results

    run = tmp_path / "run"
    shutil.copytree(finished_run, run, ignore=shutil.ignore_patterns(".lock"))
    sidecar = run / "predictions.jsonl.gz"
    original, inode = sidecar.read_bytes(), sidecar.stat().st_ino
    encode = results._sidecar_line
    with monkeypatch.context() as patch:
        patch.setattr(results, "_sidecar_line", lambda *a: pytest.fail("recorded predictions were encoded again"))
        assert main(_run_args(tiny_models, data_dir, run)) == 0
    assert sidecar.stat().st_ino == inode
    assert results._sidecar_line is encode
    sidecar.write_bytes(gzip.compress(b"replaced\n"))
    assert main(_run_args(tiny_models, data_dir, run)) == 0
    assert sidecar.read_bytes() == original
    assert json.loads((run / "results.json").read_text())["predictions"]["sha256"] == hashlib.sha256(original).hexdigest()


def test_an_untouched_run_reports_fine(finished_run, tmp_path, capsys):
    code, err = _report(_copy(finished_run, tmp_path), capsys)
    assert code == 0, err


def test_leaderboard_validate_refuses_repeated_keys(tmp_path, capsys):
    path = tmp_path / "dup.json"
    path.write_text('{"name": "<script>alert(1)</script>", "name": "fine"}')
    code = main(["leaderboard", "validate", str(path)])
    out = " ".join((capsys.readouterr().out + capsys.readouterr().err).split())
    assert code != 0
    assert 'rejected: it repeats the key "name" in one object' in out


@pytest.mark.parametrize("text,reason", [
    ('{"a": NaN}', "it contains NaN, which is not valid JSON"),
    ('[Infinity]', "it contains Infinity, which is not valid JSON"),
    ('{"a": 1, "b": {"c": 1, "c": 2}}', 'it repeats the key "c" in one object'),
    ('{"a": ', "it is not valid JSON (Expecting value"),
])
def test_one_strict_reader(text, reason, tmp_path):
    with pytest.raises(StrictJSONError, match=reason.replace("(", r"\(")):
        loads_strict(text)
    with pytest.raises(UnsafeInput, match=reason.replace("(", r"\(")):
        loads_bounded(text)
    (tmp_path / "f.json").write_text(text)
    with pytest.raises(W2SBenchError):
        read_json(tmp_path / "f.json", "fix")
    assert loads_strict('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
