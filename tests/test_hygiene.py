"""The shared train/test hygiene check (w2sbench/hygiene.py) on a hand-built pool with known overlaps."""

from __future__ import annotations

import numpy as np

from w2sbench.hygiene import remove_overlap, text_key
from w2sbench.interfaces import Examples


def _examples(prefix: str, texts: list[str], labels: list[int]) -> Examples:
    return Examples([f"{prefix}{i}" for i in range(len(texts))], texts, np.array(labels))


def test_overlap_and_conflicting_labels_are_dropped_and_counted():
    train = _examples(
        "t", ["good film", "Good  film", "bad film", "bad film", "fine", "meh", "meh", "unique"], [1, 1, 0, 1, 1, 0, 0, 1]
    )
    tests = {"a": _examples("a", ["GOOD FILM", "new"], [1, 0]), "b": _examples("b", ["meh", "bad film", "other"], [0, 0, 1])}
    kept, counts = remove_overlap(train, tests)
    # "bad film" has both labels (rows t2, t3); "good film" (t0, t1, case and spacing ignored) and "meh" (t5, t6)
    # are test texts; a's "GOOD FILM" and b's "meh" and "bad film" occur in the pool.
    assert counts == {
        "train_rows_read": 8,
        "conflicting_label_texts": 1,
        "conflicting_label_rows_dropped": 2,
        "test_rows_duplicated_in_train": 3,
        "test_rows_duplicated_in_train.a": 1,
        "test_rows_duplicated_in_train.b": 2,
        "train_rows_dropped_as_test_duplicates": 4,
        "train_rows_kept": 2,
    }
    assert kept.ids == ["t4", "t7"] and kept.texts == ["fine", "unique"] and kept.labels.tolist() == [1, 1]
    assert [len(t) for t in tests.values()] == [2, 3]  # test sets are never changed


def test_a_clean_pool_is_returned_whole():
    train = _examples("t", ["x", "y"], [0, 1])
    kept, counts = remove_overlap(train, {"test": _examples("s", ["z"], [0])})
    assert kept is train and counts["train_rows_kept"] == 2 and counts["test_rows_duplicated_in_train"] == 0
    assert text_key("  It 's\tA  Film \n") == "it 's a film"
