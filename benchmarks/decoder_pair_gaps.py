"""Choose the offline decoder pair by measurement: the weak/strong accuracy gap on each property's task.

Candidates for the weak model are SmolLM2-135M truncated to its first k transformer layers (k = 0 is
its token embeddings alone, a bag of word vectors, as ``minilm-l0`` is for MiniLM); the strong model
is the whole SmolLM2-135M. One forward pass of the whole model per text gives every candidate's
features: the output of layer k under the model's final RMSNorm, mean-pooled over real tokens, which
is exactly what ``smollm2-135m-l<k>`` (``num_hidden_layers=k``) computes. The script checks that
equality on a few texts before measuring.

Protocol (frozen features, ``head`` mode's cheap stand-in, after shared/notes/w2s-probe-offline-models.md):
per seed, split A (``--weak-rows``) and split B (``--transfer-rows``) are drawn from a fixed pool of each
property's training data; the weak head is a logistic regression on A's ground truth, the strong
ceiling one on B's ground truth; both are scored on a fixed test subset. The gap is ceiling minus weak,
paired by seed, with a 95% t-interval over seeds (scipy). SST-2 serves both ood and adversarial.

    W2SBENCH_DATA_DIR=/work/shared/data python benchmarks/decoder_pair_gaps.py --seeds 0,1,2

Features are cached under the w2sbench cache (``decoder-gaps/``), so a re-run only refits the heads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]

TASKS = {"fairness": "adult_test", "ood": "sst2_dev", "privacy": None}  # property -> main test (None: its own)
CANDIDATES = (0, 1, 2, 4, 8)


def _load(prop: str, pool: int, test: int, data_dir: str) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    from w2sbench.files import global_cache_dir
    from w2sbench.interfaces import DataContext
    from w2sbench.plugin_manager import get_plugins

    metric = get_plugins().trust_properties.items[prop]
    data = metric.load_data(DataContext(Path(data_dir), global_cache_dir() / "downloads"), metric.options())
    rng = np.random.default_rng(2026)
    take = np.sort(rng.choice(len(data.train), min(pool, len(data.train)), replace=False))
    tests = data.tests[data.main_test]
    keep = np.sort(rng.choice(len(tests), min(test, len(tests)), replace=False))
    return ([data.train.texts[i] for i in take], data.train.labels[take], [tests.texts[i] for i in keep], tests.labels[keep])


def _features(texts: list[str], max_length: int, layers: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Mean-pooled, final-norm'd output of each layer in ``layers`` (30 = the whole model), shape (n, 576) each."""
    import torch

    from w2sbench.models import fetch_model, load_backbone, resolve_model
    from w2sbench.plugin_manager import get_plugins
    from w2sbench.training.classifier import Classifier, length_sorted_batches

    spec = resolve_model("smollm2-135m", get_plugins())
    tokenizer, backbone = load_backbone(spec, fetch_model(spec))
    clf = Classifier(backbone, tokenizer, 2, max_length).eval()
    captured: dict[int, Any] = {}
    hooks = [backbone.embed_tokens.register_forward_hook(lambda m, i, o: captured.__setitem__(0, o))]
    for k in layers:
        if 0 < k < len(backbone.layers):
            hooks.append(backbone.layers[k - 1].register_forward_hook(lambda m, i, o, k=k: captured.__setitem__(k, o[0] if isinstance(o, tuple) else o)))
    out = {k: np.zeros((len(texts), backbone.config.hidden_size), np.float32) for k in layers}
    with torch.no_grad():
        for idx in length_sorted_batches(texts, 32):
            batch = clf.tokenize([texts[i] for i in idx])
            last = backbone(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            for k in layers:
                state = last if k >= len(backbone.layers) else backbone.norm(captured[k])
                out[k][idx] = ((state * mask).sum(1) / mask.sum(1)).numpy()
    for h in hooks:
        h.remove()
    return out


def _check_truncation(texts: list[str], max_length: int, k: int, expected: np.ndarray) -> float:
    """Largest absolute difference between the hooked layer-k features and a truncated model's."""
    import torch

    from w2sbench.models import fetch_model, load_backbone, resolve_model
    from w2sbench.plugin_manager import get_plugins
    from w2sbench.training.classifier import Classifier

    spec = resolve_model(f"smollm2-135m-l{k}", get_plugins())
    tokenizer, backbone = load_backbone(spec, fetch_model(spec))
    with torch.no_grad():
        got = Classifier(backbone, tokenizer, 2, max_length).eval().features(texts)
    return float(np.abs(got - expected).max())


def _cached_features(prop: str, texts: list[str], max_length: int) -> dict[int, np.ndarray]:
    from w2sbench.files import global_cache_dir

    key = hashlib.sha256(json.dumps([prop, texts, max_length, CANDIDATES]).encode()).hexdigest()[:16]
    path = global_cache_dir() / "decoder-gaps" / f"{prop}-{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return {int(k[1:]): z[k] for k in z.files}
    feats = _features(texts, max_length, (*CANDIDATES, 30))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{f"l{k}": v for k, v in feats.items()})
    os.replace(tmp, path)
    return feats


def _accuracy(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    return float((model.fit(x, y).predict(xt) == yt).mean())


def _interval(values: list[float]) -> str:
    from scipy import stats

    v = np.asarray(values)
    if len(v) < 2:
        return f"{v.mean() * 100:+5.1f} (1 seed: no interval)"
    lo, hi = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v)) if v.std() > 0 else (v.mean(), v.mean())
    return f"{v.mean() * 100:+5.1f} [{lo * 100:+5.1f}, {hi * 100:+5.1f}]"


def _measure(prop: str, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    texts, labels, test_texts, test_labels = _load(prop, args.weak_rows + args.transfer_rows, args.test_rows, args.data_dir)
    max_length = 128 if prop == "privacy" else 64
    feats = _cached_features(prop, texts + test_texts, max_length)
    n = len(texts)
    if args.check:
        diff = _check_truncation(texts[:8], max_length, 2, feats[2][:8])
        print(f"  check: hooked layer-2 features vs smollm2-135m-l2: max |diff| = {diff:.2e}")
    acc: dict[int, list[float]] = {k: [] for k in feats}
    for seed in args.seeds:
        order = np.random.default_rng(seed).permutation(n)
        a, b = order[: args.weak_rows], order[args.weak_rows :]
        for k, f in feats.items():
            acc[k].append(_accuracy(f[a] if k != 30 else f[b], labels[a] if k != 30 else labels[b], f[n:], test_labels))
    ceiling = np.asarray(acc[30])
    print(f"{prop}: {n} pool rows (A {args.weak_rows}, B {args.transfer_rows}), {len(test_texts)} test rows, "
          f"{len(args.seeds)} seeds, {time.perf_counter() - start:.0f} s")
    print(f"  strong ceiling smollm2-135m (B, ground truth): {np.mean(ceiling) * 100:5.1f} % accuracy")
    print("  weak candidate        weak acc %   gap = ceiling - weak, points [95% CI]")
    for k in CANDIDATES:
        gap = list(ceiling - np.asarray(acc[k]))
        print(f"  smollm2-135m-l{k:<2}      {np.mean(acc[k]) * 100:5.1f}        {_interval(gap)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--properties", default="fairness,ood,privacy")
    parser.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--weak-rows", type=int, default=300)
    parser.add_argument("--transfer-rows", type=int, default=700)
    parser.add_argument("--test-rows", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="verify hooked features equal a truncated model's")
    parser.add_argument("--data-dir", default=os.environ.get("W2SBENCH_DATA_DIR", ""))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    for prop in args.properties.split(","):
        _measure(prop, args)
    print(f"load average at end: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
