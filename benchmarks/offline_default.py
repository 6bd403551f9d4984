"""Wall time of the offline default suite, cold and cached, against the project's targets.

    python benchmarks/offline_default.py                       # the default: four properties, seeds 0-2
    python benchmarks/offline_default.py --properties fairness --seeds 0   # a quick slice
    python benchmarks/offline_default.py --properties fairness --seeds 0-1 --workers 1,2

Runs `w2sbench run` twice in a fresh directory (subprocesses, so imports are counted as a user sees
them), then prints each wall time, its ratio to the target (< 1.0 meets it: 600 s cold and 5 s cached
for the whole default on 2 CPU cores) and the machine's load average during each run. ``--workers
1,2`` repeats the cold run in a fresh directory per worker count (`w2sbench run --workers N`) and prints
each one's speed-up over the first, measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"cold": 600.0, "cached": 5.0}


def timed_run(args: list[str]) -> tuple[float, float]:
    """Wall seconds of one ``w2sbench run`` and the 1-minute load average at its end."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "w2sbench.cli", "run", "--quiet", *args], check=True)
    return time.perf_counter() - start, os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--properties", default="fairness,ood,adversarial,privacy")
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--out", help="run directory [a fresh temporary one]")
    parser.add_argument("--workers", default="auto", help="comma-separated --workers values, each a cold run [auto]")
    args = parser.parse_args()
    if not os.environ.get("W2SBENCH_DATA_DIR"):
        os.environ["W2SBENCH_DATA_DIR"] = str(Path(__file__).resolve().parents[2] / "shared" / "data")
    root = Path(args.out or tempfile.mkdtemp(prefix="w2s-bench-"))
    counts = args.workers.split(",")
    colds: list[tuple[str, float, float]] = []
    for workers in counts:  # each in a fresh run directory and stage cache
        out = root / ("run" if len(counts) == 1 else f"run-workers-{workers}")
        common = ["--properties", args.properties, "--seeds", args.seeds, "--out", str(out), "--workers", workers]
        colds.append((workers, *timed_run(common)))
    cached, cached_load = timed_run(common)
    results = json.loads((out / "results.json").read_text())
    target = TARGETS["cold"]
    print(f"pair {results['settings']['weak']} -> {results['settings']['strong']} "
          f"({results['settings']['finetune_weak']}:{results['settings']['finetune_strong']}), properties {args.properties}")
    for workers, seconds, load in colds:
        print(f"cold run, --workers {workers}: {seconds:7.1f} s   target {target:6.0f} s   ratio {seconds / target:.2f}   "
              f"load {load:.1f}   speed-up over --workers {colds[0][0]}: {colds[0][1] / seconds:.2f}x")
    print(f"cached run, --workers {counts[-1]}: {cached:7.1f} s   target {TARGETS['cached']:6.0f} s   ratio {cached / TARGETS['cached']:.2f}"
          f"   load {cached_load:.1f}   (stages computed on re-run: {results['timing']['stages_computed']})")
    for name, prop in results["properties"].items():
        for cell, entry in prop["cells"].items():
            acc = entry["summary"]["accuracy"]["mean"]
            trust = entry["summary"].get(prop["primary_trust_metric"], {}).get("mean")
            seconds = sum(r.get("seconds", 0) for r in entry["train"].values())
            print(f"  {name:12s} {cell:13s} accuracy {acc:.3f}  {prop['primary_trust_metric']} "
                  f"{'n/a' if trust is None else f'{trust:.3f}'}  train {seconds:6.1f} s")


if __name__ == "__main__":
    main()
