"""Wall time of the offline default suite, cold and cached, against the project's targets.

    python benchmarks/offline_default.py                       # fairness only (target 600 s cold, 15 s cached)
    python benchmarks/offline_default.py --properties fairness,ood,adversarial,privacy   # target 1200 s

Runs `w2sbench run` twice in a fresh directory (subprocesses, so imports are counted as a user sees
them), then prints each wall time and its ratio to the target (< 1.0 meets it).
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

TARGETS = {"cold_one_metric": 600.0, "cold_all": 1200.0, "cached": 15.0}


def timed_run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "w2sbench.cli", "run", "--quiet", *args], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--properties", default="fairness")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", help="run directory [a fresh temporary one]")
    args = parser.parse_args()
    if not os.environ.get("W2SBENCH_DATA_DIR"):
        os.environ["W2SBENCH_DATA_DIR"] = str(Path(__file__).resolve().parents[2] / "shared" / "data")
    out = Path(args.out or tempfile.mkdtemp(prefix="w2s-bench-")) / "run"
    common = ["--properties", args.properties, "--seeds", args.seeds, "--out", str(out)]
    cold = timed_run(common)
    cached = timed_run(common)
    results = json.loads((out / "results.json").read_text())
    target = TARGETS["cold_one_metric"] if len(args.properties.split(",")) == 1 else TARGETS["cold_all"]
    print(f"pair {results['settings']['weak']} -> {results['settings']['strong']} "
          f"({results['settings']['finetune_weak']}:{results['settings']['finetune_strong']}), properties {args.properties}")
    print(f"cold run:   {cold:7.1f} s   target {target:6.0f} s   ratio {cold / target:.2f}")
    print(f"cached run: {cached:7.1f} s   target {TARGETS['cached']:6.0f} s   ratio {cached / TARGETS['cached']:.2f}"
          f"   (stages computed on re-run: {results['timing']['stages_computed']})")
    for name, prop in results["properties"].items():
        for cell, entry in prop["cells"].items():
            acc = entry["summary"]["accuracy"]["mean"]
            trust = entry["summary"].get(prop["primary_trust_metric"], {}).get("mean")
            seconds = sum(r.get("seconds", 0) for r in entry["train"].values())
            print(f"  {name:12s} {cell:13s} accuracy {acc:.3f}  {prop['primary_trust_metric']} "
                  f"{'n/a' if trust is None else f'{trust:.3f}'}  train {seconds:6.1f} s")


if __name__ == "__main__":
    main()
