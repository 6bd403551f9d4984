"""Synthetic board rows (no training, no data) for the page and findings tests: two properties, three
entries, three seeds, defined and undefined gap-recovered ratios, and a live-attack score that the
validator cannot recompute."""

from __future__ import annotations

from typing import Any

from w2sbench.leaderboard._board import BoardRow
from w2sbench.stats import summarize
from w2sbench_plugins.adversarial import Adversarial
from w2sbench_plugins.fairness import Fairness

SEEDS = ("0", "1", "2")
REFERENCES = {
    "vanilla": {"weak": "weak", "ceiling": "ceiling"},
    "weak-tft": {"weak": "weak-reg", "ceiling": "ceiling"},
    "weak-wts-tft": {"weak": "weak-reg", "ceiling": "ceiling-reg"},
}


def _row(submission: str, index: int, strong: str, params: int, strategy: str, scores: dict[str, list[float]],
         gaps: dict[str, list[float | None]], unverified: list[str]) -> BoardRow:
    per_seed = {s: {m: v[i] for m, v in scores.items()} for i, s in enumerate(SEEDS)}
    return BoardRow(
        submission=submission, pair="default", weak="minilm-l0", strong=strong, weak_params=11_918_592,
        strong_params=params, finetune="head:full", strategy=strategy, seeds=len(SEEDS),
        scores={m: summarize(v) for m, v in scores.items()}, gaps={m: summarize(v) for m, v in gaps.items()},
        not_verifiable=unverified, entry=f"{submission}#{index}", seed_scores=per_seed,
        gap_references=REFERENCES[strategy],
    )


def synthetic_boards() -> dict[str, tuple[Any, list[BoardRow]]]:
    """{property: (metric, rows)} as ``render_html`` takes them."""
    fair, adv = Fairness(), Adversarial()
    fairness = []
    for index, (strong, params, shift) in enumerate((("minilm-l6", 22_565_376, 0.0), ("minilm-l4", 19_016_448, 0.01))):
        for k, strategy in enumerate(REFERENCES):
            dpd = [0.15 - 0.04 * k + shift + 0.01 * s + 0.006 * k * (s % 2) for s in range(3)]
            acc = [0.84 - 0.01 * k + 0.002 * s - 0.003 * k * (s % 2) for s in range(3)]
            gap = [None, None, None] if k == 0 else [0.3 * k + 0.1 * s for s in range(3)]
            fairness.append(_row("lab-a", index, strong, params, strategy,
                                 {"accuracy": acc, "demographic_parity_difference": dpd},
                                 {"demographic_parity_difference": gap}, []))
    adversarial = []
    for k, strategy in enumerate(REFERENCES):
        robust = [0.50 + 0.02 * k + 0.01 * s + 0.01 * k * (s % 2) for s in range(3)]
        adversarial.append(_row("lab-b", 0, "minilm-l6", 22_565_376, strategy,
                                {"accuracy": [0.77, 0.78, 0.76], "advglue_robust_accuracy": robust,
                                 "attack_success_rate": [0.7 - 0.05 * k, 0.68, 0.66]},
                                {"advglue_robust_accuracy": [0.4 + 0.5 * k, 0.5 + 0.5 * k, None]},
                                ["attack_success_rate"]))
    return {"adversarial": (adv, adversarial), "fairness": (fair, fairness)}
