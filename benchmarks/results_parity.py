"""Same science? Two runs' results.json compared score by score and finding by finding.

    python benchmarks/results_parity.py runs/d10 runs/d11

For each trust property: how many per-seed cell scores are identical, the largest and mean absolute
difference per score, and every finding of the first run beside the second's (effect [95% CI], verdict),
marking a verdict that changed. Used to check that a speed change (thread counts, worker processes,
precision) moves the numbers only within seed noise (docs/default-pair.md "Timing of the default suite").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from w2sbench.results import load_results


def score_differences(first: dict[str, Any], second: dict[str, Any]) -> tuple[int, int, dict[str, list[float]]]:
    """(identical, compared, |difference| per score name) over every cell and seed of one property."""
    identical = compared = 0
    differences: dict[str, list[float]] = {}
    for cell, entry in first["cells"].items():
        for seed, scores in entry["seeds"].items():
            other = second["cells"][cell]["seeds"][seed]
            for name, value in scores.items():
                if isinstance(value, (int, float)) and isinstance(other.get(name), (int, float)):
                    compared += 1
                    identical += value == other[name]
                    differences.setdefault(name, []).append(abs(value - other[name]))
    return identical, compared, differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="run directory (or results.json)")
    parser.add_argument("second", type=Path)
    args = parser.parse_args()
    first, second = load_results(args.first), load_results(args.second)
    changed = 0
    for name, prop in first["properties"].items():
        other = second["properties"][name]
        identical, compared, differences = score_differences(prop, other)
        print(f"{name}: {identical}/{compared} scores identical")
        for score, diffs in differences.items():
            print(f"  {score:36s} max |diff| {max(diffs):.4f}   mean {sum(diffs) / len(diffs):.4f}")
        for a, b in zip(prop["findings"]["comparisons"], other["findings"]["comparisons"]):
            flag = "" if a["verdict"] == b["verdict"] else "   <- verdict changed"
            changed += bool(flag)
            print(f"  {a['strategy']} vs {a['baseline']}, {a['metric']}: {a['effect']:+.3f} [{a['ci95'][0]:+.3f}, "
                  f"{a['ci95'][1]:+.3f}] {a['verdict']}  |  {b['effect']:+.3f} [{b['ci95'][0]:+.3f}, {b['ci95'][1]:+.3f}] "
                  f"{b['verdict']}{flag}")
    print(f"verdicts changed: {changed}")


if __name__ == "__main__":
    main()
