"""Accuracy parity of bf16 autocast against fp32 for the offline default strong model.

Trains the default strong model (minilm-l6, top two layers fine-tuned on cached frozen-layer states,
the pipeline's partial fine-tuning path) as the fairness property's ceiling (ground truth of a
transfer split of Adult) once per precision and seed, in one process, and prints per seed the test
accuracy and demographic parity difference of each precision, their difference and the training
time ratio. Same seed = same split, same head initialisation, same batch order: the only difference
is the arithmetic.

    W2SBENCH_DATA_DIR=../shared/data python benchmarks/precision_parity.py --seeds 0,1,2 --rows 1000
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import torch

    from w2sbench.design import split_pool
    from w2sbench.interfaces import DataContext, NoRegularizer
    from w2sbench.models import fetch_model, load_backbone, resolve_model
    from w2sbench.plugin_manager import get_plugins
    from w2sbench.training.classifier import Classifier
    from w2sbench.training.config import default_train_config
    from w2sbench.training.prefix import PrefixCache, TopLayers
    from w2sbench.training.trainer import train_classifier
    from w2sbench_plugins.fairness import Fairness

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rows", type=int, default=1000, help="transfer rows the strong model trains on")
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    data_dir = Path(os.environ.get("W2SBENCH_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    metric = Fairness()
    options = metric.options({})
    data = metric.load_data(DataContext(data_dir, Path("/tmp/w2sbench-parity")), options)
    test = data.tests[data.main_test]
    test = test.subset(np.arange(min(args.test_rows, len(test))))
    spec = resolve_model("minilm-l6", get_plugins())
    tokenizer, backbone = load_backbone(spec, fetch_model(spec))
    max_length = int(options["max_length"])
    attribute = str(options["sensitive_attribute"])
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}; "
          f"{args.rows} transfer rows, {args.epochs} epochs, {len(test)} test rows")
    print(f"{'seed':>4} {'acc fp32':>9} {'acc bf16':>9} {'diff':>7} {'DPD fp32':>9} {'DPD bf16':>9} {'time bf16/fp32':>15}")
    diffs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        _a, b, _val = split_pool(data.train, seed, (int(options["weak_train_size"]), args.rows, int(options["val_size"])))
        row = {}
        for precision in ("fp32", "bf16"):
            config = default_train_config("full", trainable_layers=2, epochs=args.epochs, lr=2e-4, precision=precision)
            torch.manual_seed(seed)
            classifier = Classifier(copy.deepcopy(backbone), tokenizer, data.num_labels, max_length)
            prefix = PrefixCache(Classifier(backbone, tokenizer, 2, max_length), 2, precision)
            start = time.process_time()
            train_classifier(classifier, "full", b.texts, np.eye(data.num_labels)[b.labels], {}, NoRegularizer(),
                             config, seed, prefix=prefix)
            seconds = time.process_time() - start  # CPU seconds: robust to other jobs on a shared machine
            probs = prefix.predict_proba(TopLayers(classifier, 2), test.texts)
            predicted = probs.argmax(1)
            groups = test.attributes[attribute]
            rates = [predicted[groups == g].mean() for g in np.unique(groups)]
            row[precision] = (float((predicted == test.labels).mean()), float(max(rates) - min(rates)), seconds)
        (a32, d32, t32), (a16, d16, t16) = row["fp32"], row["bf16"]
        diffs.append(a16 - a32)
        print(f"{seed:>4} {a32:9.3f} {a16:9.3f} {a16 - a32:+7.3f} {d32:9.3f} {d16:9.3f} {t16 / t32:15.2f}")
    print(f"mean accuracy difference bf16 - fp32: {np.mean(diffs):+.3f} (per seed {', '.join(f'{d:+.3f}' for d in diffs)})")


if __name__ == "__main__":
    main()
