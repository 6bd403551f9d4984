"""Kill-safe resume, the run lock, config drift, plugin import faults and determinism."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import SMALL_FAIRNESS
from w2sbench.cli import main
from w2sbench.results import load_results

ROOT = Path(__file__).parents[1]

# Each run of the kill test dies at one of these points (SIGKILL sent by the process to itself, see
# w2sbench/faults.py); counts are per process, so each resumed run dies further along.
KILL_POINTS = [
    "mid-write:1",             # half of run.json on disk
    "stage-start-train:2",     # as the second new training stage begins
    "train-step:3",            # in the middle of a training
    "stage-before-rename:1",   # a finished stage not yet renamed into place
    "stage-start-predict:1",   # before labelling split B
    "mid-write:2",             # half of the predictions sidecar on disk
    "before-rename:3",         # results.json complete under its temporary name
]


def _scores(results: dict) -> dict:
    """Every per-seed score and gap-recovered value (training times naturally differ between runs)."""
    return {
        (prop, cell): (entry["seeds"], entry.get("gap_recovered"))
        for prop, p in results["properties"].items()
        for cell, entry in p["cells"].items()
    }


def _cli(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "w2sbench.cli", *args], env=env, capture_output=True, text=True)


def _args(tiny_models, data_dir, out: Path, finetune: str = "head:full") -> list[str]:
    return ["run", "--seeds", "0", "--quiet", "--pair", f"{tiny_models['bert']}:{tiny_models['bert-big']}", "--properties", "fairness",
            "--finetune", finetune, "--data-dir", str(data_dir), "--out", str(out), *SMALL_FAIRNESS]


@pytest.mark.slow
def test_kill_anywhere_resume_exactly(tiny_models, data_dir, tmp_path):
    reference = tmp_path / "reference"
    done = _cli(_args(tiny_models, data_dir, reference))
    assert done.returncode == 0, done.stderr
    expected = _scores(load_results(reference))

    out = tmp_path / "killed"
    kills = 0
    for point in KILL_POINTS:
        attempt = _cli(_args(tiny_models, data_dir, out), {"W2SBENCH_FAULT": point})
        assert attempt.returncode in (0, -signal.SIGKILL), attempt.stderr
        kills += attempt.returncode == -signal.SIGKILL
        if attempt.returncode == 0:
            break
    assert kills == len(KILL_POINTS)  # each point was reached: every resumed run died further along
    final = _cli(_args(tiny_models, data_dir, out))
    assert final.returncode == 0, final.stderr
    assert _scores(load_results(out)) == expected
    computed = (out / "cache" / "computed.log").read_text().split()
    assert len(computed) == len(set(computed)), "a finished stage was computed twice"
    assert not list(out.rglob(".*.tmp")), "temporary files of killed runs were left behind"


@pytest.mark.slow
def test_second_run_on_a_directory_in_use_fails_at_once(tiny_models, data_dir, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from w2sbench.stage_cache import RunLock
            with RunLock({str(out)!r}):
                print("locked", flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        second = _cli(_args(tiny_models, data_dir, out, "head"))
        assert second.returncode == 2
        assert "is in use by another w2sbench process" in second.stderr and "Traceback" not in second.stderr
        assert time.monotonic() - start < 30
        assert not (out / "cache").exists()
    finally:
        holder.kill()


def test_resuming_with_different_settings_is_refused(tiny_models, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    base = _args(tiny_models, data_dir, out, "head")[:]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--seeds", "0,1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "holds a run with different settings" in err and "seeds: [0] -> [0, 1]" in err
    assert main([*base, "--seeds", "0,1", "--reconfigure"]) == 0
    assert load_results(out)["settings"]["seeds"] == [0, 1]

    (out / "results.json").unlink()  # as an attempt stopped before its end leaves the directory
    capsys.readouterr()
    assert main([a for a in base if a != "--quiet"] + ["--seeds", "0,1"]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first.endswith(f"resuming {out}: stages an earlier attempt finished are read from the cache")


def test_plugin_that_fails_to_import_is_named_and_others_work(tmp_path):
    site = tmp_path / "site"
    dist = site / "broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[w2sbench]\nbroken = broken_plugin_module\n")
    (site / "broken_plugin_module.py").write_text("raise ImportError('needs a package that is not installed')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    listed = _cli(["plugins"], env)
    assert listed.returncode == 0
    text = " ".join(listed.stdout.split())
    assert text.count('plugin "broken" (package broken-plugin): failed to load') == 1
    assert "failed to load" not in listed.stderr  # once, in the listing: not again as a warning
    assert "W2SBENCH_DISABLE_PLUGINS=broken" in text
    assert "fairness" in text
    disabled = _cli(["plugins"], {**env, "W2SBENCH_DISABLE_PLUGINS": "broken"})
    assert "failed to load" not in disabled.stdout


@pytest.mark.slow
@pytest.mark.parametrize("finetune", ["head", "lora", "full"])
def test_same_seed_same_scores(finetune, tiny_models, data_dir, tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(_args(tiny_models, data_dir, out, finetune)) == 0
        runs.append(load_results(out)["properties"]["fairness"]["cells"])
    for cell in runs[0]:
        assert runs[0][cell]["seeds"] == runs[1][cell]["seeds"], cell


def test_nothing_read_from_a_run_is_unpickled():
    """Run files are read with safetensors, JSON or np.load(allow_pickle=False) only."""
    sources = [p.read_text() for p in (ROOT / "w2sbench").rglob("*.py")] + [p.read_text() for p in (ROOT / "plugins").rglob("*.py")]
    joined = "\n".join(sources)
    assert "pickle.load" not in joined and "allow_pickle=True" not in joined
    assert "torch.load(" not in joined
