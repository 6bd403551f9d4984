"""The CSV exporter: the interval it writes is the one results.json holds, named in its own column."""

from __future__ import annotations

import csv

from w2sbench_plugins.exporters import CsvExporter


def _summary(mean, ci95, n, std=0.01):
    return {"mean": mean, "std": std, "stderr": None, "ci95": ci95, "n": n}


RESULT = {
    "settings": {"weak": "w", "strong": "s"},
    "properties": {
        "privacy": {
            "cells": {
                "vanilla": {
                    "seeds": {"0": {}, "1": {}, "2": {}},
                    "summary": {
                        # t-interval over seeds in summary.ci95; the bootstrap interval in intervals wins
                        "accuracy": _summary(0.8, [0.7, 0.9], 3),
                        # a live score: no bootstrap interval, so the t-interval over seeds
                        "mia_auc": _summary(0.55, [0.5, 0.6], 3),
                    },
                    "intervals": {"accuracy": [0.78, 0.83]},
                    "gap_recovered": {
                        "accuracy": {"summary": {**_summary(0.4, [0.25, 0.6], 3, None), "method": "ratio of mean gaps"}},
                        "mia_auc": {"summary": {**_summary(None, None, 3, None), "method": "ratio of mean gaps", "reason": "gap not resolved"}},
                    },
                },
                "weak": {"seeds": {"0": {}}, "summary": {"mia_auc": _summary(0.52, None, 1, None)}},
            }
        }
    },
}


def test_csv_carries_the_results_json_interval_and_names_it(tmp_path):
    path = CsvExporter().export([RESULT], tmp_path / "out.csv", [])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["weak", "strong", "property", "cell", "metric", "mean", "std", "ci95_low", "ci95_high", "interval", "n", "kind"]
    assert rows[1:] == [
        ["w", "s", "privacy", "vanilla", "accuracy", "0.8", "0.01", "0.78", "0.83", "bootstrap over 3 seeds x test examples", "3", "score"],
        ["w", "s", "privacy", "vanilla", "mia_auc", "0.55", "0.01", "0.5", "0.6", "t-interval over 3 seeds", "3", "score"],
        ["w", "s", "privacy", "vanilla", "accuracy", "0.4", "", "0.25", "0.6", "ratio of mean gaps; bootstrap interval", "3", "gap_recovered"],
        ["w", "s", "privacy", "vanilla", "mia_auc", "", "", "", "", "none: gap not resolved", "3", "gap_recovered"],
        ["w", "s", "privacy", "weak", "mia_auc", "0.52", "", "", "", "", "1", "score"],
    ]
