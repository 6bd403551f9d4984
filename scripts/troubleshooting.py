"""Regenerate docs/troubleshooting.md from real invocations of every case in tests/bad_inputs.py.

Usage (from the repository root, with the offline data mirror):
    W2SBENCH_DATA_DIR=/path/to/data python scripts/troubleshooting.py [--check]

Each case runs through ``w2sbench.cli.main`` exactly as tests/test_bad_inputs.py runs it (tiny models,
a temporary folder, an isolated cache, offline hub); the printed problem and fix become its entry,
with temporary paths shortened to <tmp>, <data>, <weak>, <strong>. ``--check`` exits 1 when the page
differs from what the invocations print now.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.bad_inputs import CASES, BadInput  # noqa: E402 - after the sys.path line above
from tests.tiny_models import make_tiny_bert  # noqa: E402

DOC = ROOT / "docs" / "troubleshooting.md"


def _run(case: BadInput, tmp: Path, fill: dict[str, str]) -> str:
    from w2sbench.cli import main
    from w2sbench.plugin_manager import reset_plugins

    if case.setup:
        case.setup(tmp, Path(fill["data"]))
    argv = [a.format(**fill) for a in case.argv]
    if "run" in argv and "--out" not in argv:
        argv += ["--out", str(tmp / "out")]
    if os.geteuid() == 0 and case.title == "read-only output directory":
        # root ignores permission bits; a file in the way of the directory is unwritable for everyone (as the test does)
        (tmp / "ro" / "run").write_text("not a directory")
    saved = {k: os.environ.get(k) for k in case.env}
    os.environ.update(case.env)
    os.environ["W2SBENCH_CACHE"] = str(tmp / "w2s-cache")
    reset_plugins(None)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if code != 2:
        raise SystemExit(f"case {case.title!r} exited {code}, not 2:\n{err.getvalue()}")
    return err.getvalue()


def _entry(case: BadInput, output: str, fill: dict[str, str]) -> str:
    text = " ".join(output.split())
    for name in sorted(fill, key=lambda k: -len(fill[k])):
        text = text.replace(fill[name], f"<{name}>")
    text = re.sub(r"<tmp>/pytest-\S+", "<tmp>", text)
    problem, _, fix = text.partition(" fix: ")
    problem = problem.removeprefix("error: ")
    shown = " ".join(re.sub(r"\{(\w+)\}", r"<\1>", a) for a in case.argv)
    env = f" (with {' '.join(f'{k}={v}' for k, v in case.env.items())})" if case.env else ""
    return f"## {case.title}\n\n`w2sbench {shown}`{env}\n\n- **problem:** {problem}\n- **fix:** {fix}\n"


def render() -> str:
    data = os.environ.get("W2SBENCH_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    intro = DOC.read_text().split("\n## ", 1)[0].rstrip() + "\n"
    entries = []
    os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    with tempfile.TemporaryDirectory() as models:
        weak = make_tiny_bert(Path(models) / "tiny-bert", layers=1, hidden=32)
        strong = make_tiny_bert(Path(models) / "tiny-bert-big", layers=2, hidden=48)
        for case in CASES:
            with tempfile.TemporaryDirectory() as tmp:
                fill = {"tmp": tmp, "data": str(Path(data).resolve()), "weak": str(weak), "strong": str(strong)}
                entries.append(_entry(case, _run(case, Path(tmp), fill), fill))
    return intro + "\n" + "\n".join(entries)


def main() -> int:
    page = render()
    if "--check" in sys.argv:
        return 0 if page == DOC.read_text() else 1
    DOC.write_text(page)
    print(f"wrote {DOC} ({len(CASES)} entries)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
