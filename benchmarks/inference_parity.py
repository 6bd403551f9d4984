"""Parity of bf16 inference (training/precision.py, ``inference_weights``) against fp32 on a finished run's models.

Reads a run directory made by ``w2sbench run`` (read only: nothing in it is written) and, for every strong model
trained as a partial fine-tune (``full`` mode on cached frozen-layer states) and every test set that model was
scored on (the run's predict stages), predicts each test row twice in this process: with the float32 path (the
behaviour before bf16 inference; it must also reproduce the run's cached probabilities) and with bfloat16
weights. Prints per model and test set: rows, fp32 and bf16 accuracy, their difference, the binomial standard
error of the fp32 accuracy (what a bootstrap over rows estimates), the share of rows whose predicted label
agrees, and the largest |probability difference|; then per seed the largest |accuracy difference| and the
smallest ratio SE / |difference|.

    W2SBENCH_DATA_DIR=../shared/data python benchmarks/inference_parity.py /work/runs/s5 --max-rows 200 --per-group 1

``--attack-examples N`` also runs the live attacks on N adversarial examples per model and compares outcomes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def strong_models(cache: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(train stage folder, its key) of each partial fine-tune, in seed order."""
    out = []
    for folder in sorted((cache / "train").iterdir()):
        key = json.loads((folder / "key.json").read_text())
        if key["mode"] == "full" and key["config"].get("trainable_layers"):
            out.append((folder, key))
    return sorted(out, key=lambda item: (item[1]["seed"], item[1]["max_length"], item[0].name))


def predictions_by_model(cache: Path) -> dict[str, dict[str, np.ndarray]]:
    """model stage name -> data fingerprint -> the run's cached probabilities."""
    out: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for folder in (cache / "predict").iterdir():
        key = json.loads((folder / "key.json").read_text())
        if "inference_weights" not in key:
            out[key["model_stage"]][key["data"]] = np.load(folder / "probabilities.npy", allow_pickle=False)
    return out


def test_sets(settings: dict[str, Any], data_dir: Path) -> dict[str, tuple[str, Any]]:
    """data fingerprint -> (property/test name, Examples) for every test set of the run's properties."""
    from w2sbench.interfaces import DataContext
    from w2sbench.plugin_manager import get_plugins

    plugins = get_plugins()
    out = {}
    for name in settings["metrics"]:
        metric = plugins.trust_properties.get(name)
        data = metric.load_data(DataContext(data_dir, Path("/tmp/w2sbench-inference-parity")), metric.options(settings["options"][name]))
        for test_name, examples in data.tests.items():
            out[examples.fingerprint()] = (f"{name}/{test_name}", examples)
    return out


def attack_parity(clf: Any, top: Any, prefixes: dict[str, Any], examples: Any, seed: int, label: str) -> None:
    """Live attacks (the adversarial property's recipes and query budget) on one model, fp32 vs bf16 weights:
    per-example outcome agreement and the success rates."""
    from w2sbench_plugins.adversarial import ATTACKS, Adversarial, attack_scores, run_attack

    budget = int(Adversarial.default_options["query_budget"])
    for recipe in ATTACKS:
        outcomes = {}
        for weights, prefix in prefixes.items():
            clf.use_prefix(prefix, top)
            outcomes[weights] = run_attack(clf, examples, recipe, budget, seed)
        clf._prefix = None  # type: ignore[attr-defined]
        agree = np.mean([a == b for a, b in zip(outcomes["fp32"], outcomes["bf16"], strict=True)])
        rates = {w: attack_scores(o)["success_rate"] for w, o in outcomes.items()}
        print(f"{seed:>4} {label:<8}attack {recipe:<12} {len(examples)} examples: success rate fp32 {rates['fp32']}, "
              f"bf16 {rates['bf16']}; outcomes agree on {agree:.3f}", flush=True)


def main() -> None:
    import torch
    from safetensors.torch import load_file

    from w2sbench.models import fetch_model, load_backbone, resolve_model
    from w2sbench.plugin_manager import get_plugins
    from w2sbench.training.classifier import Classifier
    from w2sbench.training.prefix import PrefixCache, TopLayers

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--max-rows", type=int, default=0, help="first N rows of each test set (0 = all)")
    parser.add_argument("--seeds", default="", help="comma-separated seeds (default: all)")
    parser.add_argument("--attack-examples", type=int, default=0,
                        help="also attack this many adversarial examples per model scored on sst2_dev (0 = none)")
    parser.add_argument("--per-group", type=int, default=0,
                        help="only the first N models per seed and max_length (0 = every strong model)")
    args = parser.parse_args()
    settings = json.loads((args.run / "run.json").read_text())
    data_dir = Path(os.environ.get("W2SBENCH_DATA_DIR", settings.get("data_dir", "")))
    cache = args.run / "cache"
    tests = test_sets(settings, data_dir)
    cached = predictions_by_model(cache)
    spec = resolve_model(settings["strong"], get_plugins())
    tokenizer, backbone = load_backbone(spec, fetch_model(spec))
    backbone.eval()
    seeds = {int(s) for s in args.seeds.split(",") if s}
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}; run {args.run}")
    print(f"{'seed':>4} {'model':<8}{'regularizer':<14}{'test':<26}{'rows':>5}{'acc32':>7}{'acc16':>7}{'diff':>7}"
          f"{'SE':>6}{'agree':>7}{'max|dp|':>8}{'run|dp|':>8}")
    prefixes: dict[tuple[int, str], Any] = {}
    models: dict[tuple[int, int], tuple[Classifier, TopLayers]] = {}
    worst: dict[int, list[tuple[float, float]]] = defaultdict(list)
    seconds = {"fp32": 0.0, "bf16": 0.0}
    taken: dict[tuple[int, int], int] = defaultdict(int)
    for folder, key in strong_models(cache):
        group = (int(key["seed"]), int(key["max_length"]))
        if (seeds and key["seed"] not in seeds) or (args.per_group and taken[group] >= args.per_group):
            continue
        taken[group] += 1
        length, labels = int(key["max_length"]), int(key["num_labels"])
        if (length, labels) not in models:
            clf = Classifier(backbone.__class__(backbone.config), tokenizer, labels, length)
            clf.backbone.load_state_dict(backbone.state_dict())
            clf.eval()
            models[(length, labels)] = (clf, TopLayers(clf, key["config"]["trainable_layers"]))
        clf, top = models[(length, labels)]
        clf.load_state_dict(load_file(str(folder / "trainable.safetensors")), strict=False)
        for weights in ("fp32", "bf16"):
            if (length, weights) not in prefixes:
                probe = Classifier(backbone, tokenizer, 2, length)
                prefixes[(length, weights)] = PrefixCache(probe, key["config"]["trainable_layers"], "fp32", weights=weights)
        for fingerprint, run_probs in sorted(cached.get(folder.name, {}).items(), key=lambda kv: tests.get(kv[0], ("",))[0]):
            if fingerprint not in tests:
                continue
            name, examples = tests[fingerprint]
            n = min(len(examples), args.max_rows) if args.max_rows else len(examples)
            texts, y = examples.texts[:n], examples.labels[:n]
            probs = {}
            for weights in ("fp32", "bf16"):
                start = time.process_time()
                probs[weights] = prefixes[(length, weights)].predict_proba(top, texts)
                seconds[weights] += time.process_time() - start
            acc = {w: float((p.argmax(1) == y).mean()) for w, p in probs.items()}
            se = float(np.sqrt(acc["fp32"] * (1 - acc["fp32"]) / n))
            diff = acc["bf16"] - acc["fp32"]
            agree = float((probs["fp32"].argmax(1) == probs["bf16"].argmax(1)).mean())
            dp = float(np.abs(probs["fp32"] - probs["bf16"]).max())
            run_dp = float(np.abs(probs["fp32"] - run_probs[:n]).max())
            worst[key["seed"]].append((abs(diff), se))
            print(f"{key['seed']:>4} {folder.name[:7]:<8}{key['regularizer']['name'][:13]:<14}{name[:25]:<26}{n:>5}"
                  f"{acc['fp32']:7.3f}{acc['bf16']:7.3f}{diff:+7.3f}{se:6.3f}{agree:7.3f}{dp:8.4f}{run_dp:8.1e}", flush=True)
            if args.attack_examples and name == "adversarial/sst2_dev":
                from w2sbench_plugins._sst2 import fixed_subset

                chosen = examples.subset(fixed_subset(len(examples), int(settings["options"]["adversarial"]["attack_examples"])))
                chosen = chosen.subset(np.arange(min(args.attack_examples, len(chosen))))
                attack_parity(clf, top, {w: prefixes[(length, w)].overlay() for w in ("fp32", "bf16")}, chosen,
                              int(key["seed"]), folder.name[:7])
    for seed, rows in sorted(worst.items()):
        largest = max(d for d, _ in rows)
        ratio = min((se / d for d, se in rows if d > 0), default=float("inf"))
        print(f"seed {seed}: {len(rows)} model x test sets, max |acc diff| {largest:.4f}, min SE/|diff| {ratio:.1f}")
    print(f"prediction CPU seconds fp32 {seconds['fp32']:.1f}, bf16 {seconds['bf16']:.1f} "
          f"(ratio {seconds['fp32'] / max(seconds['bf16'], 1e-9):.2f}x); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
