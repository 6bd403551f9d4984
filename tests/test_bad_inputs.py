"""Every bad input gets one clear paragraph (problem + fix), exit code 2, and no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.bad_inputs import CASES
from w2sbench.cli import main

DOC = Path(__file__).parents[1] / "docs" / "troubleshooting.md"


def test_at_least_thirty_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.title for c in CASES])
def test_bad_input_gives_one_clear_error(case, tmp_path, data_dir, tiny_models, capsys, monkeypatch):
    if case.setup:
        case.setup(tmp_path, data_dir)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    fill = {"tmp": str(tmp_path), "data": str(data_dir), "weak": str(tiny_models["bert"]), "strong": str(tiny_models["bert-big"])}
    argv = [a.format(**fill) for a in case.argv]
    if "run" in argv and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    if os.geteuid() == 0 and case.title == "read-only output directory":
        # root ignores permission bits; a file in the way of the directory is unwritable for everyone
        (tmp_path / "ro" / "run").write_text("not a directory")
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert case.expect in " ".join(err.split()), err
    assert "Traceback" not in err
    assert "fix:" in err


def test_every_case_is_in_the_troubleshooting_page():
    text = " ".join(DOC.read_text().split())
    for case in CASES:
        assert case.expect in text, f"docs/troubleshooting.md does not list: {case.expect}"
