"""Train/test hygiene shared by every trust property: drop training rows that leak into a test set.

A training text that also occurs in a test set makes that test row partly a memorisation check, and a
text that occurs in the training pool with both labels is label noise no model can fit. Each built-in
property's ``load_data`` passes its training pool and its test sets through ``remove_overlap`` and
records the counts in ``PropertyData.auxiliary["hygiene"]``; results.json carries them as
``properties.<name>.data.hygiene`` (docs/results.md, docs/data.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from w2sbench.interfaces import Examples

__all__ = ["text_key", "remove_overlap"]


def text_key(text: str) -> str:
    """What counts as the same text: case and runs of whitespace ignored ("A  b" and "a b" match)."""
    return " ".join(text.split()).casefold()


def remove_overlap(train: Examples, tests: Mapping[str, Examples]) -> tuple[Examples, dict[str, int]]:
    """``train`` without the rows a careful researcher drops, and the counts (JSON-ready ints).

    Two passes, both on ``text_key``: first every training text that occurs with both labels (all its
    rows), then every training row whose text occurs in any test set. The test sets are not changed
    (they are the benchmark's fixed evaluation rows). Counts:

    - ``train_rows_read``: rows of ``train`` as given;
    - ``conflicting_label_texts`` / ``conflicting_label_rows_dropped``: distinct texts with both labels
      and the training rows holding them;
    - ``test_rows_duplicated_in_train``: test rows (summed over test sets) whose text is a training text,
      before any row is dropped; ``test_rows_duplicated_in_train.<test set>``: the same per test set;
    - ``train_rows_dropped_as_test_duplicates``: training rows dropped in the second pass;
    - ``train_rows_kept``: rows of the returned pool.

    Used by every built-in property (fairness, ood, adversarial, privacy); issue 14 ("data hygiene").
    """
    train_keys = [text_key(t) for t in train.texts]
    labels: dict[str, set[int]] = {}
    for key, label in zip(train_keys, train.labels.tolist(), strict=True):
        labels.setdefault(key, set()).add(int(label))
    conflicting = {k for k, seen in labels.items() if len(seen) > 1}
    test_keys = {name: [text_key(t) for t in test.texts] for name, test in tests.items()}
    in_tests = {k for keys in test_keys.values() for k in keys}
    keep = [i for i, k in enumerate(train_keys) if k not in conflicting and k not in in_tests]
    per_test = {name: sum(k in labels for k in keys) for name, keys in test_keys.items()}
    counts = {
        "train_rows_read": len(train),
        "conflicting_label_texts": len(conflicting),
        "conflicting_label_rows_dropped": sum(k in conflicting for k in train_keys),
        "test_rows_duplicated_in_train": sum(per_test.values()),
        **{f"test_rows_duplicated_in_train.{name}": n for name, n in per_test.items()},
        "train_rows_dropped_as_test_duplicates": sum(k in in_tests and k not in conflicting for k in train_keys),
        "train_rows_kept": len(keep),
    }
    return (train if len(keep) == len(train) else train.subset(keep)), counts
