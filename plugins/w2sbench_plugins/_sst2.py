"""SST-2 (GLUE) loading shared by the ``ood`` and ``adversarial`` trust properties.

The mirror holds ``sst2/train.tsv`` and ``sst2/dev.tsv`` (``sentence<TAB>label`` with a header);
without a mirror, GLUE's SST-2.zip is downloaded once and the split is extracted from it.
"""

from __future__ import annotations

import csv
import functools
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from w2sbench.plugin_api import (
    DataContext,
    Examples,
    PropertyData,
    W2SBenchError,
    atomic_write_bytes,
    dataset_file,
    drop_empty_texts,
    file_sha256,
    file_state,
    remove_overlap,
)

__all__ = ["SST2_ZIP_URL", "SST2_LABELS", "SUBSET_SEED", "SST2Splits", "sst2_file", "load_sst2", "load_sst2_splits", "fixed_subset"]

SST2_ZIP_URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
SST2_LABELS = ("negative", "positive")
SUBSET_SEED = 12345  # test subsets are fixed across training seeds, so seeds differ only in training


def sst2_file(ctx: DataContext, split: str) -> Path:
    """The path of ``sst2/<split>.tsv``: from the mirror, or extracted from the downloaded GLUE zip."""
    if split not in {"train", "dev"}:
        raise ValueError(f"SST-2 split must be train or dev, not {split!r}")
    relative = f"sst2/{split}.tsv"
    if ctx.data_dir is not None:
        return dataset_file(ctx, relative, None)
    target = ctx.cache_dir / relative
    if not target.is_file():
        archive = dataset_file(ctx, "sst2/SST-2.zip", SST2_ZIP_URL)
        try:
            with zipfile.ZipFile(archive) as zf:
                blob = zf.read(f"SST-2/{split}.tsv")
        except (zipfile.BadZipFile, KeyError) as exc:
            raise W2SBenchError(
                f"{archive} is not GLUE's SST-2.zip ({exc}).", "Delete it so it is downloaded again, or use --data-dir."
            ) from None
        atomic_write_bytes(target, blob)
    return dataset_file(ctx, relative, None)  # the extracted file, as dataset_file resolves (and records) it


def load_sst2(path: Path, split: str) -> Examples:
    """Parse a GLUE SST-2 TSV (``sentence<TAB>label`` with a header line) into Examples (ids
    ``sst2-<split>-<row>``). Both SST-2 properties read the same files: a file is parsed once per process
    while it stays the same file (inode, size, modification and change times: a copy that keeps the
    modification time still gets a new change time); the Examples are shared, never edited in place.
    Raises W2SBenchError for a file that is not SST-2's."""
    return _parsed_sst2(Path(path), tuple(file_state(path)), split)


@functools.lru_cache(maxsize=4)
def _parsed_sst2(path: Path, identity: tuple[int, ...], split: str) -> Examples:
    texts: list[str] = []
    labels: list[int] = []
    with Path(path).open(encoding="utf-8", newline="") as f:
        # SST-2 sentences contain quote characters that are not CSV quoting.
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["sentence", "label"]:
            raise W2SBenchError(
                f"{path} does not start with the SST-2 header 'sentence<TAB>label'.",
                "Replace it with GLUE's SST-2 file.",
            )
        for number, row in enumerate(reader, 2):
            if len(row) != 2 or row[1].strip() not in {"0", "1"}:
                raise W2SBenchError(f"{path} line {number} is not 'sentence<TAB>0|1'.", "Replace it with GLUE's SST-2 file.")
            texts.append(row[0].strip())
            labels.append(int(row[1]))
    examples = Examples(ids=[f"sst2-{split}-{i}" for i in range(len(texts))], texts=texts, labels=np.array(labels))
    return drop_empty_texts(examples, path)


def fixed_subset(total: int, size: int) -> np.ndarray:
    """Sorted indices of a fixed random subset of ``size`` rows (all rows when size <= 0 or >= total)."""
    if size <= 0 or size >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(total, size, replace=False))


@dataclass(frozen=True)
class SST2Splits:
    """SST-2's training pool and dev set as both SST-2 properties use them.

    ``dev`` is the whole dev set (872 rows in GLUE); ``keep`` the sorted indices of its fixed test subset
    (``fixed_subset``), so a property can cut parallel test sets (e.g. style transfers of the dev rows)
    to the same rows; ``sources`` the sha256 of each file read."""

    train: Examples
    dev: Examples
    keep: np.ndarray
    sources: dict[str, str]

    def property_data(self, tests: Mapping[str, Examples], sources: Mapping[str, str]) -> PropertyData:
        """PropertyData with the training pool (less rows that overlap a test set), the main test ``sst2_dev`` (the kept dev rows) first, then
        ``tests``; ``sources`` adds the property's own files to the SST-2 ones."""
        every_test = {"sst2_dev": self.dev.subset(self.keep), **tests}
        # SST-2 train holds phrases of the treebank's sentences; one equal to a test sentence, or occurring
        # with both labels, is dropped from the pool (w2sbench.hygiene, docs/data.md).
        train, hygiene = remove_overlap(self.train, every_test)
        return PropertyData(
            train=train,
            tests=every_test,
            main_test="sst2_dev",
            label_names=SST2_LABELS,
            sources={**self.sources, **sources},
            auxiliary={"hygiene": hygiene},
        )


def load_sst2_splits(ctx: DataContext, test_size: int) -> SST2Splits:
    """Read SST-2 train and dev (mirror or GLUE zip) and fix the dev subset of ``test_size`` rows
    (all rows when ``test_size`` <= 0)."""
    train_path, dev_path = sst2_file(ctx, "train"), sst2_file(ctx, "dev")
    dev = load_sst2(dev_path, "dev")
    return SST2Splits(
        train=load_sst2(train_path, "train"),
        dev=dev,
        keep=fixed_subset(len(dev), int(test_size)),
        sources={"sst2/train.tsv": file_sha256(train_path), "sst2/dev.tsv": file_sha256(dev_path)},
    )
