"""Screen the strong model's fine-tuning learning rate on one property's task: the ceiling at each rate.

The pipeline's ceiling cell (the strong model trained on split B's ground truth, ``full`` mode with cached
frozen-layer states, as ``w2sbench run`` trains it on CPU) is trained once per learning rate on the same
states and scored on the property's main test set. The frozen layers' states are extracted once and
shared by every rate, so a rate costs one training. One seed per call: a screen that finds the rates
whose ceiling clears the weak model, not a result (run the suite's three seeds on the rate you keep).

    W2SBENCH_DATA_DIR=../shared/data python benchmarks/strong_learning_rate.py --pair decoder \\
        --property ood --lrs 2e-4,1e-3,3e-3

Prints one line per rate: test accuracy, final training loss and seconds. Used to choose the decoder
pair's learning rate (docs/default-pair.md, "The learning rate").
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    from w2sbench.data import default_data_dir
    from w2sbench.design import split_pool, split_sizes, task_scores
    from w2sbench.files import global_cache_dir
    from w2sbench.interfaces.data import DataContext
    from w2sbench.interfaces.regularizers import NoRegularizer
    from w2sbench.models import fetch_model, load_backbone, resolve_pair
    from w2sbench.plugin_manager import get_plugins
    from w2sbench.training.classifier import Classifier
    from w2sbench.training.config import default_train_config
    from w2sbench.training.prefix import PrefixCache, TopLayers
    from w2sbench.training.trainer import train_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="decoder", help="a named pair [decoder]")
    parser.add_argument("--property", default="ood", help="the trust property whose task is screened [ood]")
    parser.add_argument("--lrs", default="2e-4,1e-3,3e-3", help="comma-separated learning rates")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--trainable-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    args = parser.parse_args(argv)

    plugins = get_plugins()
    plugins.collect_all()
    prop = plugins.trust_properties.get(args.property)
    options = prop.options()
    data_dir = default_data_dir()
    ctx = DataContext(Path(data_dir) if data_dir else None, global_cache_dir() / "downloads")
    data = prop.load_data(ctx, options)
    _a, b, _val = split_pool(data.train, args.seed, split_sizes(options))
    test = data.tests[data.main_test]
    max_length = int(options["max_length"])
    spec = resolve_pair(args.pair, plugins).strong
    tokenizer, backbone = load_backbone(spec, fetch_model(spec))

    start = time.perf_counter()
    prefix = PrefixCache(Classifier(backbone, tokenizer, data.num_labels, max_length), args.trainable_layers, args.precision)
    prefix.batch(list(b.texts))
    prefix.batch(list(test.texts))
    print(f"{spec.name} on {args.property}: split B {len(b)} rows, test {len(test)} rows, seed {args.seed}; "
          f"frozen-layer states {time.perf_counter() - start:.0f} s")
    for lr in (float(x) for x in args.lrs.split(",")):
        torch.manual_seed(args.seed)
        classifier = Classifier(copy.deepcopy(backbone), tokenizer, data.num_labels, max_length)
        config = default_train_config("full", trainable_layers=args.trainable_layers, epochs=args.epochs, lr=lr,
                                      precision=args.precision)
        start = time.perf_counter()
        report = train_classifier(classifier, "full", list(b.texts), np.eye(data.num_labels)[b.labels], {},
                                  NoRegularizer(), config, args.seed, prefix=prefix)
        top = TopLayers(classifier, args.trainable_layers)
        top.eval()
        accuracy = task_scores(test.labels, prefix.predict_proba(top, list(test.texts)))["accuracy"]
        print(f"lr {lr:g}, {args.epochs} epochs: ceiling accuracy {accuracy:.3f}, final loss {report.final_loss:.3f}, "
              f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
