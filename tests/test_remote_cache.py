"""The stage cache on an fsspec URL: download instead of recompute, the completion marker, clear errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest
from fsspec.core import url_to_fs

from w2sbench._remote_cache import MARKER
from w2sbench.errors import W2SBenchError
from w2sbench.files import stable_hash
from w2sbench.stage_cache import StageCache

KEY = {"stage": "train", "seed": 0}


@pytest.fixture(params=["file", "memory"])
def url(request, tmp_path):
    if request.param == "file":
        yield (tmp_path / "remote").as_uri()  # file:///...
    else:
        yield f"memory://w2sbench-tests/{tmp_path.name}"
        fsspec.filesystem("memory").rm(f"/w2sbench-tests/{tmp_path.name}", recursive=True)


def _producer(calls: list[int], payload: bytes = b"\x00weights\xff" * 1000):
    def produce(tmp: Path) -> None:
        calls.append(1)
        (tmp / "trainable.safetensors").write_bytes(payload)
        (tmp / "report.json").write_text('{"loss": 0.5}')
        (tmp / "sub").mkdir()
        (tmp / "sub" / "part.bin").write_bytes(b"nested")

    return produce


def _computed(cache: StageCache) -> list[str]:
    log = cache.root / "computed.log"
    return log.read_text().split() if log.exists() else []


def test_entry_computed_by_one_machine_is_downloaded_not_recomputed_by_another(url, tmp_path):
    calls: list[int] = []
    first = StageCache(url, local=tmp_path / "machine-a")
    made = first.compute("train", KEY, _producer(calls))
    assert calls == [1] and first.misses == 1 and first.remote == url
    assert made.parent.parent == tmp_path / "machine-a"  # computed in the local working cache

    second = StageCache(url, local=tmp_path / "machine-b")
    got = second.compute("train", KEY, _producer(calls))
    assert calls == [1], "the second machine recomputed a stage the remote holds"
    assert (second.hits, second.misses, second.downloads) == (1, 0, 1)
    assert got == tmp_path / "machine-b" / "train" / stable_hash(KEY)
    assert _computed(first) == [f"train/{stable_hash(KEY)}"] and _computed(second) == []
    assert not [p for p in got.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left behind

    # byte-identical: the local original, the remote copy and the downloaded copy
    fs, root = url_to_fs(url)
    entry = f"{root}/train/{stable_hash(KEY)}"
    files = json.loads(fs.cat_file(f"{entry}/{MARKER}"))["files"]
    assert sorted(files) == ["key.json", "report.json", "sub/part.bin", "trainable.safetensors"]
    for name, size in files.items():
        original = (made / name).read_bytes()
        assert len(original) == size
        assert fs.cat_file(f"{entry}/{name}") == original == (got / name).read_bytes()

    # the download is a complete local entry: a third cache on the same machine reads it locally
    again = StageCache(url, local=tmp_path / "machine-b")
    assert again.get("train", KEY) == got and again.downloads == 0


def test_a_remote_entry_without_its_marker_is_ignored_and_recomputed(url, tmp_path):
    calls: list[int] = []
    StageCache(url, local=tmp_path / "a").compute("train", KEY, _producer(calls))
    fs, root = url_to_fs(url)
    fs.rm(f"{root}/train/{stable_hash(KEY)}/{MARKER}")  # as if the uploader died before its last write

    other = StageCache(url, local=tmp_path / "b")
    assert other.get("train", KEY) is None
    other.compute("train", KEY, _producer(calls))
    assert calls == [1, 1] and other.misses == 1 and other.downloads == 0
    assert fs.exists(f"{root}/train/{stable_hash(KEY)}/{MARKER}")  # the recomputation completed the entry


def test_a_torn_remote_file_is_never_published_locally(tmp_path):
    url = (tmp_path / "remote").as_uri()
    calls: list[int] = []
    StageCache(url, local=tmp_path / "a").compute("train", KEY, _producer(calls))
    weights = tmp_path / "remote" / "train" / stable_hash(KEY) / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # another uploader half-way through rewriting it

    other = StageCache(url, local=tmp_path / "b")
    assert other.get("train", KEY) is None
    assert not (tmp_path / "b" / "train").exists() or not list((tmp_path / "b" / "train").iterdir())
    other.compute("train", KEY, _producer(calls))  # computed here, and the broken remote entry rewritten
    local = tmp_path / "b" / "train" / stable_hash(KEY) / "trainable.safetensors"
    assert calls == [1, 1] and weights.read_bytes() == local.read_bytes()
    assert StageCache(url, local=tmp_path / "c").get("train", KEY) is not None


_KILLED_UPLOADER = """
import sys
from pathlib import Path
from w2sbench.stage_cache import StageCache

def produce(tmp):
    (tmp / "trainable.safetensors").write_bytes(b"w" * 5000)

StageCache(sys.argv[1], local=Path(sys.argv[2])).compute("train", {"stage": "train", "seed": 0}, produce)
"""


def test_an_uploader_killed_mid_upload_leaves_an_entry_nobody_reads_and_its_rerun_completes_it(tmp_path):
    url = (tmp_path / "remote").as_uri()
    env = {"W2SBENCH_FAULT": "remote-before-marker:1", "PATH": "/usr/bin:/bin"}
    killed = subprocess.run([sys.executable, "-c", _KILLED_UPLOADER, url, str(tmp_path / "a")], env=env, check=False,
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert killed.returncode == -9, killed.stderr
    entry = tmp_path / "remote" / "train" / stable_hash(KEY)
    assert (entry / "trainable.safetensors").is_file() and (entry / "key.json").is_file()
    assert not (entry / MARKER).exists()

    calls: list[int] = []
    assert StageCache(url, local=tmp_path / "b").get("train", KEY) is None  # another machine: not there
    # the killed process's machine finds its local copy and finishes the upload
    rerun = StageCache(url, local=tmp_path / "a")
    assert rerun.compute("train", KEY, _producer(calls)) and calls == [] and rerun.hits == 1
    assert (entry / MARKER).is_file()
    late = StageCache(url, local=tmp_path / "c")
    assert late.get("train", KEY) is not None and late.downloads == 1
    assert (tmp_path / "c" / "train" / stable_hash(KEY) / "trainable.safetensors").read_bytes() == b"w" * 5000


def test_local_folders_are_unchanged(tmp_path):
    cache = StageCache(tmp_path / "plain")
    assert cache.remote is None and cache.location == str(tmp_path / "plain")
    calls: list[int] = []
    cache.compute("train", KEY, _producer(calls))
    assert not (tmp_path / "plain" / "train" / stable_hash(KEY) / MARKER).exists()


def test_default_local_working_cache_comes_from_the_environment(tmp_path, monkeypatch):
    url = (tmp_path / "remote").as_uri()
    monkeypatch.setenv("W2SBENCH_LOCAL_CACHE", str(tmp_path / "scratch"))
    assert StageCache(url).root == tmp_path / "scratch"
    monkeypatch.delenv("W2SBENCH_LOCAL_CACHE")
    monkeypatch.setenv("W2SBENCH_CACHE", str(tmp_path / "home-cache"))
    assert StageCache(url).root == tmp_path / "home-cache" / "stages"


def test_unknown_protocol_and_missing_package_are_clear_errors(tmp_path):
    with pytest.raises(W2SBenchError, match='unknown protocol "nosuchfs://"') as info:
        StageCache("nosuchfs://bucket/prefix", local=tmp_path)
    assert "s3://bucket/prefix" in info.value.fix
    fsspec.register_implementation("w2sfake", "w2sbench_no_such_package.FS", clobber=True, errtxt="needs it")
    with pytest.raises(W2SBenchError, match="needs the w2sbench_no_such_package package") as info:
        StageCache("w2sfake://bucket/prefix", local=tmp_path)
    assert info.value.fix == "Install it with: pip install w2sbench_no_such_package"
    if importlib.util.find_spec("s3fs") is None:
        with pytest.raises(W2SBenchError, match="pip install s3fs"):
            StageCache("s3://bucket/prefix", local=tmp_path)


def test_cli_prints_the_missing_package_without_a_traceback(tiny_models, data_dir, tmp_path, capsys):
    from tests.conftest import SMALL_FAIRNESS
    from w2sbench.cli import main

    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    code = main(["run", "--seeds", "0", "--pair", pair, "--properties", "fairness", "--finetune", "head", "--data-dir", str(data_dir),
                 "--out", str(tmp_path / "run"), "--cache-dir", "nosuchfs://bucket/cache", "--quiet", *SMALL_FAIRNESS])
    err = capsys.readouterr().err
    assert code == 2 and 'unknown protocol "nosuchfs://"' in err and "Traceback" not in err


@pytest.mark.slow
def test_two_runs_on_different_machines_share_stages_through_the_url(tiny_models, data_dir, tmp_path, monkeypatch):
    from tests.conftest import SMALL_FAIRNESS
    from w2sbench.cli import main
    from w2sbench.results import load_results

    url = (tmp_path / "bucket" / "cache").as_uri()
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"

    def run(machine: str) -> dict:
        monkeypatch.setenv("W2SBENCH_LOCAL_CACHE", str(tmp_path / machine / "stages"))
        out = tmp_path / machine / "run"
        args = ["run", "--seeds", "0", "--pair", pair, "--properties", "fairness", "--strategies", "vanilla,weak-tft", "--finetune", "head",
                "--train", "head.epochs=2", "--data-dir", str(data_dir), "--out", str(out), "--cache-dir", url, "--quiet"]
        assert main([*args, *SMALL_FAIRNESS]) == 0
        return load_results(out)

    first = run("machine-a")
    second = run("machine-b")
    assert first["timing"]["stages_computed"] > 0
    assert second["timing"]["stages_computed"] == 0 and second["timing"]["stages_cached"] > 0
    assert second["properties"] == first["properties"]
    assert not (tmp_path / "machine-b" / "stages" / "computed.log").exists()
    assert len(list((tmp_path / "machine-b" / "stages" / "train").iterdir())) == 6  # 4 baselines + 2 strategies
    assert not (tmp_path / "machine-b" / "run" / "cache").exists()  # the run directory holds results only


@pytest.mark.slow
def test_ray_workers_upload_to_the_url_and_a_local_run_elsewhere_downloads(tiny_models, data_dir, tmp_path, monkeypatch):
    import ray  # noqa: F401 - the dev extra installs it: fail, never skip, when it is missing

    from tests.conftest import SMALL_FAIRNESS
    from w2sbench.cli import main
    from w2sbench.results import load_results

    url = (tmp_path / "bucket" / "cache").as_uri()
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    base = ["run", "--pair", pair, "--properties", "fairness", "--strategies", "vanilla", "--finetune", "head", "--seeds", "0",
            "--train", "head.epochs=2", "--data-dir", str(data_dir), "--cache-dir", url, "--quiet", *SMALL_FAIRNESS]
    monkeypatch.setenv("W2SBENCH_LOCAL_CACHE", str(tmp_path / "ray-node" / "stages"))  # the workers inherit it
    assert main([*base, "--out", str(tmp_path / "ray-run"), "--executor", "ray"]) == 0
    monkeypatch.setenv("W2SBENCH_LOCAL_CACHE", str(tmp_path / "laptop" / "stages"))
    assert main([*base, "--out", str(tmp_path / "laptop-run")]) == 0
    first, second = load_results(tmp_path / "ray-run"), load_results(tmp_path / "laptop-run")
    assert first["timing"]["stages_computed"] > 0 and second["timing"]["stages_computed"] == 0
    assert second["properties"] == first["properties"]
