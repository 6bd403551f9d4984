"""Multi-process training (``accelerate launch`` / ``torchrun``) on CPUs with gloo: one model, two ranks.

The two-process run must train the same models as one process with the same global batch (the fairness
penalty is a whole-batch statistic, so this also checks that batch statistics are gathered across ranks;
embedding-space adversarial training runs per rank on its slice), write every stage once (rank 0 only),
and a rerun must read everything from the cache.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import make_tiny_bert
from w2sbench.errors import W2SBenchError
from w2sbench.results import iter_predictions, load_results
from w2sbench.training.distributed import DistributedRun

OPTIONS = ["weak_train_size=50", "transfer_size=50", "val_size=10", "test_size=60", "max_length=32"]
EXTRA = {"fairness": [], "adversarial": ["method=embedding", "radius=0.2", "attacks="]}  # no live attacks: rank 0 only anyway
# batch 7 of 50 rows: uneven slices (4 + 3) and a last batch of one row that leaves rank 1 without rows
BATCH = {"fairness": 10, "adversarial": 7}


@pytest.fixture(scope="module")
def no_dropout_pair(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Tiny BERTs without dropout: dropout masks are drawn per rank, so only then are the runs comparable."""
    root = tmp_path_factory.mktemp("tiny-no-dropout")
    folders = []
    for name, layers, hidden in (("weak", 1, 32), ("strong", 2, 48)):
        folder = make_tiny_bert(root / name, layers=layers, hidden=hidden)
        config = json.loads((folder / "config.json").read_text())
        config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        (folder / "config.json").write_text(json.dumps(config))
        folders.append(str(folder))
    return ":".join(folders)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(launcher: list[str], pair: str, data_dir: Path, out: Path, tmp_path: Path, metric: str = "fairness") -> None:
    args = ["run", "--seeds", "0", "--pair", pair, "--properties", metric, "--strategies", "vanilla", "--finetune", "full",
            "--train", f"full.batch_size={BATCH[metric]}", "--train", "full.epochs=1",
            # fp32: bf16 autocast (the CPU default where the CPU has bf16) rounds a gradient shard's sum differently.
            "--train", "full.precision=fp32", "--data-dir", str(data_dir),
            "--out", str(out), "--quiet"]
    for option in OPTIONS + EXTRA[metric]:
        args += ["--option", f"{metric}.{option}"]
    # HF_HOME: no accelerate default_config.yaml of this machine's user; the models are local folders.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf-home"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([*launcher, "-m", "w2sbench", *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _accelerate_launch(processes: int) -> list[str]:
    # --multi_gpu selects accelerate's torch-elastic launcher; without GPUs the ranks use gloo on the CPU.
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    return [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())]


def _torchrun(processes: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port", str(_free_port())]


def _trained(out: Path) -> dict[str, dict[str, np.ndarray]]:
    from safetensors.numpy import load_file

    return {p.name: load_file(p / "trainable.safetensors") for p in (out / "cache" / "train").iterdir()}


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["fairness", "adversarial"])
def test_two_processes_train_what_one_does_and_write_each_stage_once(metric, no_dropout_pair, data_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable], no_dropout_pair, data_dir, one, tmp_path, metric)
    _run(_accelerate_launch(2), no_dropout_pair, data_dir, two, tmp_path, metric)

    # The same models: the weak and ceiling stages share their cache keys (their targets are the labels).
    a, b = _trained(one), _trained(two)
    assert len(a) == len(b) == 5  # weak, weak-reg, ceiling, ceiling-reg, vanilla
    shared = set(a) & set(b)
    assert len(shared) >= 4
    for stage in shared:
        assert a[stage].keys() == b[stage].keys()
        for name, tensor in a[stage].items():
            np.testing.assert_allclose(b[stage][name], tensor, atol=1e-5, err_msg=f"{stage} {name}")
    # ... and the same scores and test-set predictions for every cell, the strategy's included.
    first, second = load_results(one), load_results(two)
    cells_a, cells_b = first["properties"][metric]["cells"], second["properties"][metric]["cells"]
    assert cells_a.keys() == cells_b.keys()
    for cell, entry in cells_a.items():
        for score, value in entry["seeds"]["0"].items():
            if isinstance(value, float):
                assert cells_b[cell]["seeds"]["0"][score] == pytest.approx(value, abs=1e-6), (cell, score)
    preds_a = {(r["cell"], r["test_set"]): r["probabilities"] for r in iter_predictions(one)}
    preds_b = {(r["cell"], r["test_set"]): r["probabilities"] for r in iter_predictions(two)}
    assert preds_a.keys() == preds_b.keys()
    for key, probs in preds_a.items():
        np.testing.assert_allclose(preds_b[key], probs, atol=1e-5, err_msg=str(key))

    # Only rank 0 wrote: each stage computed once, no temporary folder left behind.
    log = (two / "cache" / "computed.log").read_text().split()
    assert len(log) == len(set(log)) == second["timing"]["stages_computed"] == first["timing"]["stages_computed"]
    assert not list(two.rglob(".*.tmp"))

    # A rerun (here through torchrun) reads every stage from the cache; once suffices, whatever the property.
    if metric != "fairness":
        return
    _run(_torchrun(2), no_dropout_pair, data_dir, two, tmp_path, metric)
    assert (two / "cache" / "computed.log").read_text().split() == log
    third = load_results(two)
    assert third["timing"]["stages_computed"] == 0
    assert third["properties"] == second["properties"]


def test_single_process_is_rank_0_of_1_and_launch_checks():
    single = DistributedRun()
    assert single.is_main and single.world == 1 and single.collective_training(0) is None
    assert single.broadcast("x") == "x" and single.main_first(lambda: 3) == 3
    rank1 = DistributedRun(rank=1, world=2, cpu=False)
    with pytest.raises(W2SBenchError, match="names one GPU"):
        rank1.check_device("cuda:1")
    with pytest.raises(W2SBenchError, match="NCCL"):
        rank1.check_device("cpu")
    rank1.check_device("cuda")
