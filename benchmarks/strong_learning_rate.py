"""Screen the strong model's fine-tuning learning rate on one property's task: the ceiling at each rate,
and (``--regularized``) the regularized ceiling at each value of one of the property's options.

The pipeline's ceiling cell (the strong model trained on split B's ground truth, ``full`` mode with cached
frozen-layer states, as ``w2sbench run`` trains it on CPU) is trained once per learning rate on the same
states and scored on the property's main test set. The frozen layers' states are extracted once and
shared by every rate, so a rate costs one training. One seed per call: a screen that finds the rates
whose ceiling clears the weak model, not a result (run the suite's three seeds on the rate you keep).

    W2SBENCH_DATA_DIR=../shared/data python benchmarks/strong_learning_rate.py --pair decoder \\
        --property ood --lrs 2e-4,1e-3,3e-3

Prints one line per rate: test accuracy, final training loss and seconds. Used to choose the decoder
pair's learning rate (docs/default-pair.md, "The learning rate"). With ``--regularized KEY=V1,V2,...``,
also the ceiling trained with the property's own regularizer (the strong phase's, as weak-wts-tft and the
regularized ceiling train) at the first rate, once per value of option KEY; the test accuracy of every
other test set is printed too. Used to choose the decoder pair's adversarial radius:

    W2SBENCH_DATA_DIR=../shared/data python benchmarks/strong_learning_rate.py --pair decoder \
        --property adversarial --lrs 1e-3 --regularized radius=0.05,0.03,0.02,0.01,0.005
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

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
    parser.add_argument("--regularized", default="", metavar="KEY=V1,V2,...",
                        help="also the regularized ceiling at the first rate, per value of the property's option KEY")
    args = parser.parse_args(argv)
    sweep_key, _, sweep_values = args.regularized.partition("=")

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
    for test_set in data.tests.values():
        prefix.batch(list(test_set.texts))
    print(f"{spec.name} on {args.property}: split B {len(b)} rows, test {len(test)} rows, seed {args.seed}; "
          f"frozen-layer states {time.perf_counter() - start:.0f} s")
    # the scale an embedding-space adversary's ball is relative to (docs/default-pair.md, "The adversarial radius")
    tokens = torch.as_tensor(np.concatenate([prefix._states[t] for t in b.texts[:200]]), dtype=torch.float32)
    norms = tokens.norm(dim=-1)
    print(f"states entering the trained layers ({len(tokens)} tokens of 200 rows): token norm median {norms.median():.1f}, "
          f"max {norms.max():.1f}; "
          f"largest dimension's share of the norm, median {(tokens.abs().max(-1).values / norms).median():.2f}; "
          f"per-dimension standard deviation, median {tokens.std(0).median():.3f}")

    def ceiling(lr: float, regularizer: Any) -> tuple[dict[str, float], float, float]:
        """Test accuracy per test set, final training loss and seconds of one ceiling."""
        torch.manual_seed(args.seed)
        classifier = Classifier(copy.deepcopy(backbone), tokenizer, data.num_labels, max_length)
        config = default_train_config("full", trainable_layers=args.trainable_layers, epochs=args.epochs, lr=lr,
                                      precision=args.precision)
        start = time.perf_counter()
        report = train_classifier(classifier, "full", list(b.texts), np.eye(data.num_labels)[b.labels], {},
                                  regularizer, config, args.seed, prefix=prefix)
        top = TopLayers(classifier, args.trainable_layers)
        top.eval()
        accuracy = {name: task_scores(t.labels, prefix.predict_proba(top, list(t.texts)))["accuracy"]
                    for name, t in data.tests.items()}
        return accuracy, report.final_loss, time.perf_counter() - start

    def others(accuracy: dict[str, float]) -> str:
        return "".join(f", {name} {acc:.3f}" for name, acc in accuracy.items() if name != data.main_test)

    lrs = [float(x) for x in args.lrs.split(",")]
    for lr in lrs:
        accuracy, loss, seconds = ceiling(lr, NoRegularizer())
        print(f"lr {lr:g}, {args.epochs} epochs: ceiling accuracy {accuracy[data.main_test]:.3f}, final loss {loss:.3f}, "
              f"{seconds:.0f} s{others(accuracy)}")
    for value in sweep_values.split(",") if sweep_key else ():
        regularizer = prop.regularizer(prop.options({sweep_key: value})).for_training("strong", "full")
        accuracy, loss, seconds = ceiling(lrs[0], regularizer)
        print(f"{sweep_key}={value}, lr {lrs[0]:g}: regularized ceiling accuracy {accuracy[data.main_test]:.3f}, "
              f"final loss {loss:.3f}, {seconds:.0f} s{others(accuracy)}")


if __name__ == "__main__":
    main()
