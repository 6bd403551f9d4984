"""Every bad input gets one clear paragraph (problem + fix), exit code 2, and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
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
    assert f"fix: {case.fix}" in " ".join(err.split()), err
    assert "Traceback" not in err
    assert "fix:" in err


def test_every_case_is_in_the_troubleshooting_page():
    text = " ".join(DOC.read_text().split())
    for case in CASES:
        assert case.expect in text, f"docs/troubleshooting.md does not list: {case.expect}"
        assert case.fix in text, f"docs/troubleshooting.md does not list: {case.fix}"


def into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess[str]:
    """`w2sbench ARGS | head` at its worst: the reader is gone before w2sbench writes a byte."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "w2sbench", *args], stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [["list"], ["list", "options"], ["plugins"]], ids=" ".join)
def test_a_closed_output_pipe_ends_quietly_with_status_1(args):
    done = into_closed_pipe(args)
    assert (done.returncode, done.stderr) == (1, "")


def test_a_broken_pipe_that_is_not_stdout_is_still_a_bug(capsys, monkeypatch):
    from w2sbench import cli

    def lost_worker(args):  # e.g. a worker process's connection, not the user's pipe
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli.COMMANDS, "list", lost_worker)
    assert main(["list"]) == 1
    assert "unexpected error: BrokenPipeError: [Errno 32] Broken pipe" in " ".join(capsys.readouterr().err.split())


def test_unrecognized_arguments_without_a_known_cause_keep_argparse_s_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--option", "fairness.weight=1", "--bogus"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith("w2sbench: error: unrecognized arguments: --bogus\n")
