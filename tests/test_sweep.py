"""Sweeps on the local and the Ray executor: same results, shared weak models trained once, resumable after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from w2sbench.cli import main
from w2sbench.errors import W2SBenchError
from w2sbench.results import load_results
from w2sbench.run_pairs import plan_tasks
from w2sbench.sweep import expand_sweep, parse_sweep

STRATEGIES = ["vanilla", "weak-tft", "weak-wts-tft"]
TINY = {"weak_train_size": 60, "transfer_size": 60, "val_size": 10, "max_length": 32}
OPTIONS = {"fairness": {**TINY, "test_size": 60}, "ood": {**TINY, "test_size": 20, "styles": ["shake_w"]}}


def _config(tiny_models, data_dir, out: Path, **extra) -> dict:
    return {
        "pairs": [f"{tiny_models['bert']}:{tiny_models['bert-big']}", f"{tiny_models['bert']}:{tiny_models['neox']}"],
        "properties": ["fairness", "ood"],
        "strategies": STRATEGIES,
        "seeds": [0, 1],
        "finetune": "head",
        "train": {"head": {"epochs": 2}},  # the point is the plumbing, not the models
        "options": OPTIONS,
        "data_dir": str(data_dir),
        "out": str(out),
        **extra,
    }


def _write(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _log(cache: Path) -> list[str]:
    """The stages computed so far (none before the first one is logged: on a loaded machine the driver may be
    killed before it computed anything, which the resume must handle as well)."""
    path = cache / "computed.log"
    return path.read_text().split() if path.is_file() else []


def _comparable(results: dict) -> dict:
    """Everything but wall-clock times (creation time, environment, timing, per-stage seconds)."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "seconds"}
        return value

    return {"settings": results["settings"], "models": results["models"], "properties": strip(results["properties"])}


@pytest.fixture(scope="module")
def ray_cluster():
    import ray  # the dev extra installs it (the core does not need it): fail, never skip, when it is missing

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_core_does_not_import_ray():
    code = "import sys, w2sbench.cli, w2sbench.runner, w2sbench.sweep, w2sbench.executors; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_every_entry_point_defaults_to_three_seeds():
    from w2sbench.cli import build_parser
    from w2sbench.runner import RunRequest
    from w2sbench.settings import parse_seeds

    assert parse_sweep({"pairs": ["a:b"]}).seeds == (0, 1, 2)
    assert tuple(RunRequest().seeds) == (0, 1, 2)
    assert parse_seeds(build_parser().parse_args(["run"]).seeds) == (0, 1, 2)


def test_sweep_file_is_validated_and_shared_weak_models_get_their_own_tasks(tiny_models, data_dir, tmp_path):
    from w2sbench.plugin_manager import get_plugins

    with pytest.raises(W2SBenchError, match='unknown key "seed".*Did you mean "seeds"'):
        parse_sweep({"pairs": ["a:b"], "seed": [0]})
    with pytest.raises(W2SBenchError, match="names no pairs"):
        parse_sweep({"properties": ["fairness"]})
    with pytest.raises(W2SBenchError, match="unknown executor"):
        parse_sweep({"pairs": ["a:b"], "executor": "dask"})
    config = parse_sweep(_config(tiny_models, data_dir, tmp_path / "out"))
    assert config.options["ood"]["styles"] == "shake_w" and config.shared_cache == tmp_path / "out" / "cache"
    plugins = get_plugins()
    jobs = expand_sweep(config, plugins)
    assert len({job.run_dir for job in jobs}) == 2
    tasks, owners = plan_tasks(jobs, [config.shared_cache] * 2)
    weak = [t for t in tasks if t.kind == "train_weak"]
    seeds = [t for t in tasks if t.kind == "run_seed"]
    # one weak task per (metric, seed) for the shared weak model, then one task per (pair, metric, seed)
    assert len(weak) == 2 * 2 and len(seeds) == 2 * 2 * 2 and tasks[: len(weak)] == weak
    assert all(len(t.after) == 1 and tasks[t.after[0]].kind == "train_weak" for t in seeds)
    alone, _ = plan_tasks(jobs[:1], [config.shared_cache])
    assert all(t.kind == "run_seed" and not t.after for t in alone)  # nothing to share: no extra phase


def test_sweep_file_names_trust_properties_and_still_reads_the_old_metrics_key():
    assert parse_sweep({"pairs": ["a:b"], "properties": ["fairness", "ood"]}).metrics == ("fairness", "ood")
    with pytest.warns(FutureWarning, match='^the sweep file: the key "metrics" is renamed "properties"; the old name works '
                      "for one more release.$"):
        assert parse_sweep({"pairs": ["a:b"], "metrics": ["fairness"]}).metrics == ("fairness",)
    with pytest.raises(W2SBenchError) as both:
        parse_sweep({"pairs": ["a:b"], "properties": ["fairness"], "metrics": ["fairness"]})
    assert (both.value.problem, both.value.fix) == ('the sweep file has both "properties" and "metrics" (its old name).',
                                                    "Keep only properties:.")
    with pytest.raises(W2SBenchError, match='unknown key "propertes".*Did you mean "properties"'):
        parse_sweep({"pairs": ["a:b"], "propertes": ["fairness"]})


def test_gpu_workers_behind_a_cpu_driver(tiny_models, data_dir, tmp_path):
    import torch

    from w2sbench.plugin_manager import get_plugins

    config = parse_sweep(_config(tiny_models, data_dir, tmp_path / "out", device="cuda", executor="ray"))
    jobs = expand_sweep(config, get_plugins())
    assert {job.settings.device for job in jobs} == {"cuda"}  # recorded for (and used by) the Ray workers
    if not torch.cuda.is_available():
        config = parse_sweep({**_config(tiny_models, data_dir, tmp_path / "out", device="cuda"), "finetune": None})
        with pytest.raises(W2SBenchError, match="explicit finetune"):
            expand_sweep(config, get_plugins(), "ray")


@pytest.mark.slow
def test_ray_sweep_matches_local_executor(ray_cluster, tiny_models, data_dir, tmp_path):
    # one trust property: two pairs sharing a weak model and two seeds are what the executors must agree on
    fairness = {"properties": ["fairness"], "options": {"fairness": OPTIONS["fairness"]}}
    ray_cfg = _write(_config(tiny_models, data_dir, tmp_path / "ray", resources={"num_cpus": 1}, **fairness), tmp_path / "ray.yaml")
    local_cfg = _write(_config(tiny_models, data_dir, tmp_path / "local", **fairness), tmp_path / "local.yaml")
    assert main(["sweep", str(ray_cfg), "--executor", "ray", "--quiet"]) == 0
    assert main(["sweep", str(local_cfg), "--quiet"]) == 0

    for root in (tmp_path / "ray", tmp_path / "local"):
        log = _log(root / "cache")
        assert not [line for line, n in Counter(log).items() if n > 1], "a stage was computed twice"
        # per seed: weak + weak-reg once for both pairs, then 2 ceilings + 3 strategies per pair
        assert sum(line.startswith("train/") for line in log) == 2 * (2 + 2 * 5)
        summary = json.loads((root / "sweep.json").read_text())
        assert [r["status"] for r in summary["runs"]] == ["done", "done"] and summary["failures"] == []
    ray_runs = sorted(p.parent for p in (tmp_path / "ray").glob("*/results.json"))
    local_runs = sorted(p.parent for p in (tmp_path / "local").glob("*/results.json"))
    assert [p.name for p in ray_runs] == [p.name for p in local_runs] and len(ray_runs) == 2
    for ray_run, local_run in zip(ray_runs, local_runs):
        ours, theirs = load_results(ray_run), load_results(local_run)
        assert _comparable(ours) == _comparable(theirs)
        assert set(ours["properties"]) == {"fairness"}
        assert set(ours["properties"]["fairness"]["cells"]) == {"weak", "weak-reg", "ceiling", "ceiling-reg", *STRATEGIES}

    # `run --executor ray` goes through the same machinery: against the sweep's cache it only reads.
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    args = ["run", "--pair", pair, "--properties", "fairness", "--strategies", ",".join(STRATEGIES), "--seeds", "0,1",
            "--finetune", "head", "--train", "head.epochs=2", "--data-dir", str(data_dir), "--quiet",
            "--cache-dir", str(tmp_path / "ray" / "cache"), "--out", str(tmp_path / "single"), "--executor", "ray"]
    for key, value in OPTIONS["fairness"].items():
        args += ["--option", f"fairness.{key}={','.join(value) if isinstance(value, list) else value}"]
    assert main(args) == 0
    single = load_results(tmp_path / "single")
    assert single["timing"]["stages_computed"] == 0 and single["timing"]["stages_cached"] > 0
    twin = next(r for r in ray_runs if load_results(r)["settings"]["strong"] == "tiny-bert-big")
    assert _comparable(single) == _comparable(load_results(twin))


@pytest.mark.slow
def test_killed_driver_resumes_without_recomputing(ray_cluster, tiny_models, data_dir, tmp_path):
    config = _config(tiny_models, data_dir, tmp_path / "out", seeds=[0, 1], properties=["fairness"], resources={"num_cpus": 1})
    config["pairs"], config["options"] = config["pairs"][:1], {"fairness": OPTIONS["fairness"]}
    path = _write(config, tmp_path / "sweep.yaml")
    cache = tmp_path / "out" / "cache"
    address = ray_cluster.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "w2sbench.cli", "sweep", str(path), "--executor", "ray", "--ray-address", address, "--quiet"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and driver.poll() is None:
        if (cache / "computed.log").is_file() and len(_log(cache)) >= 4:
            break
        time.sleep(0.1)
    assert driver.poll() is None, f"the sweep ended before it could be killed: {driver.stderr.read().decode()[-2000:]}"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    driver.stderr.close()
    assert not list((tmp_path / "out").glob("*/results.json")), "killed mid-sweep: no pair can have finished"
    # Ray cancels a dead driver's tasks; wait until their workers have released the CPUs.
    deadline = time.monotonic() + 60
    while ray_cluster.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    before = _log(cache)

    assert main(["sweep", str(path), "--executor", "ray", "--quiet"]) == 0
    after = _log(cache)
    assert after[: len(before)] == before and len(after) > len(before)
    assert not [line for line, n in Counter(after).items() if n > 1], "a finished stage was computed again"
    (run_dir,) = [p.parent for p in (tmp_path / "out").glob("*/results.json")]
    timing = load_results(run_dir)["timing"]
    assert timing["stages_computed"] == len(after) - len(before)
    assert timing["stages_cached"] >= len(before)


def test_a_sweep_file_without_data_dir_reads_the_environments_mirror(tiny_models, data_dir, tmp_path, monkeypatch):
    config = _config(tiny_models, data_dir, tmp_path / "out")
    del config["data_dir"]
    monkeypatch.setenv("W2SBENCH_DATA_DIR", str(data_dir))
    assert parse_sweep(config).data_dir == str(Path(data_dir).resolve())  # as `w2sbench run` does
    monkeypatch.delenv("W2SBENCH_DATA_DIR")
    assert parse_sweep(config).data_dir is None  # upstream downloads
