"""Seconds, tokens/s and achieved GFLOP/s per stage kind of the offline default pair, against the CPU's
arithmetic ceiling measured in the same run (a 2048x2048 matmul in float32 and in bfloat16).

Stage kinds (the pipeline's own code paths, on small samples of the real data):

  feature extraction      minilm-l0 pooled features for the weak heads (embeddings only: ~no FLOPs)
  weak head               head mode, 40 epochs on cached features
  frozen layers           the strong model's four frozen layers, once per text (old: the whole backbone
                          run with output_hidden_states, fp32; new: the bottom layers only; bf16 weights:
                          a bfloat16 copy of the frozen layers, no autocast)
  strong plain / fairness / adversarial / DP-SGD
                          the top two layers trained on cached states (1 epoch; DP-SGD its own
                          dp_epochs, 5, bias terms only): first close to before 2026-12-02 (bf16, dropout on),
                          then fp32, bf16 without dropout, and what runs now: bf16 without dropout and
                          with float32 attention (training/precision.py Float32Attention); DP-SGD also
                          with opacus' functorch per-sample gradients
  DP-SGD step             opacus' three ways to clip per-sample gradients (hooks: what runs; functorch; ghost
                          clipping), on DP-SGD's own batches of e-mails, no noise; each ends at the hooks run's
                          parameters (the largest difference is printed)
  predict                 the top two layers on cached states: fp32, bf16 autocast, bf16 weights (inference
                          with bfloat16 copies of the layers' weights, training/precision.py inference_weights)
  live attack             textattack DeepWordBug and Pruthi, seconds per attacked example (fp32, bf16 autocast,
                          bf16 weights; then bf16 weights with textattack's word splitting memoized; then
                          also a greedy step stopped at its first success, what runs), with textattack's
                          queries per example and its model calls; each builds its own candidates
  2nd model attacked      a second strong model attacked with its own store of perturbed states, and with
                          the store the first model's attack filled (frozen-layer states and Pruthi's
                          candidate texts shared)

Useful FLOPs: 2 x (parameters of the layers run) per real token forward, 3x that to train (attention
score products are not counted, so the ratios are lower bounds). Seconds are CPU seconds / threads
(``clock``), robust to other jobs on the machine. Each row's "x old" is its speed-up
over the first (old or fp32) row of its kind, measured in this run; the machine's load average is
printed because other jobs share the CPU.

    W2SBENCH_DATA_DIR=../shared/data python benchmarks/stage_throughput.py --rows 256 --attack-examples 4

On a machine other jobs keep busy, two torch threads spin-wait for each other and the CPU-time clock
counts the spinning: ``--threads 1`` gives the per-core efficiency (ceilings measured with one thread).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


def clock() -> float:
    """Seconds the process would have taken with its threads to itself: CPU time / threads. Other jobs on a
    shared machine inflate wall time but hardly this (spin-waiting threads inflate it a little)."""
    return time.process_time() / torch.get_num_threads()


def ceiling(dtype: torch.dtype) -> float:
    """FLOP/s of a 2048x2048 matmul (best of three timings of 5)."""
    a = torch.randn(2048, 2048, dtype=dtype)
    torch.mm(a, a)
    best = float("inf")
    for _ in range(3):
        start = clock()
        for _ in range(5):
            torch.mm(a, a)
        best = min(best, clock() - start)
    return 5 * 2 * 2048**3 / best


class Table:
    def __init__(self, peaks: dict[str, float]) -> None:
        self.peaks = peaks
        self.base: dict[str, float] = {}
        print(f"{'stage kind':<24}{'variant':<15}{'s':>7}{'tok/s':>9}{'GFLOP/s':>9}{'ceil':>6}{'x old':>7}")

    def row(self, kind: str, variant: str, seconds: float, tokens: int, flops: float, precision: str) -> None:
        rate = tokens / seconds
        self.base.setdefault(kind, rate)
        share = flops / seconds / self.peaks[precision]
        print(f"{kind:<24}{variant:<15}{seconds:7.2f}{rate:9.0f}{flops / seconds / 1e9:9.1f}"
              f"{100 * share:5.0f}%{rate / self.base[kind]:6.2f}x")


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    out: list[float] = []
    start = clock()
    yield out
    out.append(clock() - start)


def params_of(modules: Any) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def load_pair() -> dict[str, Any]:
    from w2sbench.models import fetch_model, load_backbone, resolve_model
    from w2sbench.plugin_manager import get_plugins

    out = {}
    for name in ("minilm-l0", "minilm-l6"):
        spec = resolve_model(name, get_plugins())
        out[name] = load_backbone(spec, fetch_model(spec))
    return out


def real_tokens(tok: Any, texts: list[str], max_length: int = 64) -> int:
    return int(sum(min(len(ids), max_length) for ids in tok(list(texts))["input_ids"]))


def old_extraction(prefix: Any, texts: list[str]) -> None:
    """The frozen-layer extraction before this benchmark's changes: the whole backbone, hidden_states[bottom]."""
    from w2sbench.training.classifier import length_sorted_batches

    backbone = prefix.classifier.backbone
    with torch.no_grad():
        for idx in length_sorted_batches(texts, 64):
            batch = prefix.classifier.tokenize([texts[i] for i in idx])
            backbone(**batch, output_hidden_states=True).hidden_states[prefix.bottom].float().numpy()


def bench_frozen(table: Table, tok: Any, bb: Any, texts: list[str], layer_params: int) -> dict[str, Any]:
    from w2sbench.training.classifier import Classifier
    from w2sbench.training.prefix import PrefixCache

    prefixes = {}
    variants = (("old fp32", "fp32", "fp32"), ("new fp32", "fp32", "fp32"), ("new bf16", "bf16", "fp32"),
                ("bf16 weights", "bf16w", "bf16"))
    for variant, precision, weights in variants:
        prefix = PrefixCache(Classifier(bb, tok, 2, 64), 2, precision if weights == "fp32" else "fp32", weights=weights)
        if weights == "bf16":
            prefix._bf16_backbone()  # the one-time copy, untimed
        with timed() as t:
            if variant.startswith("old"):
                old_extraction(prefix, texts)
            else:
                prefix.batch(texts)
        tokens = real_tokens(tok, texts)
        layers = prefix.bottom if not variant.startswith("old") else prefix.bottom + 2
        table.row("frozen layers", variant, t[0], tokens, 2 * layers * layer_params * tokens, precision[:4])
        prefixes[precision] = prefix
    return prefixes


def bench_training(table: Table, tok: Any, bb: Any, prefixes: dict[str, Any], data: Any, layer_params: int,
                   regularizers: dict[str, Any]) -> None:
    from opacus import PrivacyEngine

    from w2sbench.training import trainer
    from w2sbench.training.classifier import Classifier
    from w2sbench.training.config import default_train_config
    from w2sbench.training.dp import dp_train_config
    from w2sbench.training.precision import autocast, training_autocast
    from w2sbench.training.trainer import train_classifier

    texts, labels = data.texts, np.eye(2)[data.labels]
    for precision in ("fp32", "bf16"):  # warm-up (one-time kernel set-up), untimed
        config = default_train_config("full", trainable_layers=2, epochs=1, lr=2e-4, batch_size=8, precision=precision)
        train_classifier(Classifier(copy.deepcopy(bb), tok, 2, 64), "full", texts[:16], labels[:16], {},
                         regularizers["plain"][0], config, 0, prefix=prefixes[precision])
    tokens = int(sum(len(prefixes["fp32"]._states[t]) for t in texts))
    original = PrivacyEngine.make_private_with_epsilon
    for kind, (reg, passes) in regularizers.items():
        # (variant, precision, opacus grad_sample_mode, dropout, float32 attention in bf16 steps); the first row
        # stands in for the default before 2026-12-02 (dropout on, bf16 attention; but now with all the trained
        # layers' dropout and fused AdamW, which that code lacked), the "bf16" row is what runs now
        variants = [("bf16 +dropout", "bf16", "hooks", True, False), ("fp32", "fp32", "hooks", False, False),
                    ("bf16 bf16 attn", "bf16", "hooks", False, False), ("bf16", "bf16", "hooks", False, True)]
        if reg.privacy is not None:
            variants += [("bf16 functorch", "bf16", "functorch", False, True)]
        for variant, precision, mode, dropout, fp32_attention in variants:
            PrivacyEngine.make_private_with_epsilon = (  # type: ignore[method-assign]
                lambda self, *a, _m=mode, **k: original(self, *a, grad_sample_mode=_m, **k))
            if not fp32_attention:
                trainer.training_autocast = lambda device, p: autocast(device, p) if p == "bf16" else None
            config = default_train_config("full", trainable_layers=2, epochs=1, lr=2e-4, precision=precision, dropout=dropout)
            torch.manual_seed(0)
            clf = Classifier(copy.deepcopy(bb), tok, 2, 64)
            try:
                with timed() as t:
                    report = train_classifier(clf, "full", texts, labels, data.attributes, reg, config, 0, prefix=prefixes[precision])
            finally:
                PrivacyEngine.make_private_with_epsilon = original  # type: ignore[method-assign]
                trainer.training_autocast = training_autocast
            eps = f" eps {report.epsilon:.3f}" if report.epsilon is not None else ""
            # DP-SGD runs its own epochs (privacy's dp_epochs) and, with dp_parameters=biases, computes no
            # weight gradients: forward (2) + gradient of the activations (2) FLOPs per parameter and token.
            epochs = dp_train_config(config, reg.privacy, "full").epochs if reg.privacy is not None else 1
            per_token = 4 if reg.privacy is not None and reg.privacy.parameters == "biases" else 6
            seen = epochs * tokens
            table.row(f"strong {kind}", variant, t[0], seen, passes * per_token * 2 * layer_params * seen, precision)
            if eps:
                print(f"{'':<24}{'':<15}{eps}")


def bench_dp_clipping(table: Table, tok: Any, bb: Any, data: Any, layer_params: int, steps: int) -> None:
    """opacus' ways to clip per-sample gradients, on the DP-SGD strong model's own setting (the top two layers'
    biases and the head, DP-BiTFiT; privacy's dp_batch_size e-mails per step; bf16 autocast with float32
    attention, as the trainer runs it): hooks (what runs: per-sample gradients materialised by module hooks),
    functorch (per-sample gradients by vmap), ghost (fast gradient clipping: per-sample gradient norms without
    the gradients, then a second backward pass weighted by the clipping factors; Li et al. 2022, Bu et al. 2023).
    Fixed batches and no noise, so the three must end at the same parameters: the largest difference from the
    hooks run is printed. The epsilon is the accountant's, which reads only the noise multiplier, sample rate and
    steps: the same for every mode by construction."""
    from opacus import PrivacyEngine

    from w2sbench.training.classifier import Classifier
    from w2sbench.training.precision import training_autocast
    from w2sbench.training.prefix import PrefixCache, TopLayers
    from w2sbench_plugins.privacy import Privacy

    batch = int(Privacy.default_options["dp_batch_size"])
    texts, labels = data.texts[: batch * steps], torch.as_tensor(data.labels[: batch * steps])
    prefix = PrefixCache(Classifier(bb, tok, 2, 128), 2, "bf16")
    prefix.batch(texts)
    tokens = int(sum(len(prefix._states[t]) for t in texts))
    torch.manual_seed(0)
    start = Classifier(copy.deepcopy(bb), tok, 2, 128)
    top_names = {n for n, _ in TopLayers(start, 2).named_parameters()}
    for name, p in start.named_parameters():
        p.requires_grad_(name.startswith("head.") or (name.endswith("bias") and any(name.endswith(t) for t in top_names)))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(len(texts))), batch_size=batch)
    finals: dict[str, list[torch.Tensor]] = {}
    warnings.filterwarnings("ignore", message="Full backward hook is firing")  # ghost's first pass; expected
    warnings.filterwarnings("ignore", message=".*[Ss]ecure.*")  # seeded noise is deliberate here, as in the trainer
    for mode in ("warm-up", "hooks", "functorch", "ghost"):  # the first pass pays one-time kernel set-up, untimed
        model = copy.deepcopy(start)
        top = TopLayers(model, 2)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.02)
        criterion = torch.nn.CrossEntropyLoss()
        made = PrivacyEngine(accountant="rdp").make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=0.0, max_grad_norm=1.0,
            poisson_sampling=False, grad_sample_mode=mode.replace("warm-up", "hooks"), criterion=criterion)
        private, optimizer = made[0], made[1]
        loss_fn = made[2] if mode == "ghost" else criterion
        step = training_autocast(torch.device("cpu"), "bf16")
        with timed() as t:
            for (idx,) in made[-1]:
                optimizer.zero_grad()
                with step:
                    logits = prefix.logits(top, [texts[i] for i in idx.tolist()])
                loss_fn(logits.float(), labels[idx]).backward()
                optimizer.step()
        private._close()
        if mode == "warm-up":
            continue
        finals[mode] = [p.detach().clone() for p in model.parameters() if p.requires_grad]
        # forward (2) + gradient of the activations (2) FLOPs per parameter and token: no weight gradients
        table.row("DP-SGD step", mode, t[0], tokens, 4 * 2 * layer_params * tokens, "bf16")
        gap = max(float((a - b).abs().max()) for a, b in zip(finals[mode], finals["hooks"], strict=True))
        print(f"{'':<24}{'':<15} largest parameter difference from hooks: {gap:.2e}")


def bench_predict(table: Table, tok: Any, bb: Any, prefixes: dict[str, Any], texts: list[str], layer_params: int) -> None:
    from w2sbench.training.classifier import Classifier
    from w2sbench.training.prefix import TopLayers

    for precision in ("fp32", "bf16", "bf16w"):
        prefix = prefixes[precision]
        prefix.batch(texts)
        clf = Classifier(copy.deepcopy(bb), tok, 2, 64)
        top = TopLayers(clf, 2)
        if prefix.weights == "bf16":
            prefix._bf16_top(top)  # the one-time copy, untimed
        with timed() as t:
            prefix.predict_proba(top, texts)
        tokens = int(sum(len(prefix._states[x]) for x in texts))
        variant = {"bf16w": "bf16 weights", "bf16": "bf16 autocast"}.get(precision, precision)
        table.row("predict (cached)", variant, t[0], tokens, 2 * 2 * layer_params * tokens, precision[:4])


def bench_attacks(table: Table, tok: Any, bb: Any, train: Any, examples: Any, layer_params: int, budget: int) -> None:
    from w2sbench.interfaces import NoRegularizer
    from w2sbench.training.classifier import Classifier
    from w2sbench.training.config import default_train_config
    from w2sbench.training.prefix import PrefixCache, TopLayers
    from w2sbench.training.trainer import train_classifier
    from w2sbench_plugins.adversarial import ATTACKS, _search, attack_scores, run_attack

    # a model that is right on most examples (an untrained head would skip about half of them)
    trained = Classifier(copy.deepcopy(bb), tok, 2, 64)
    config = default_train_config("full", trainable_layers=2, epochs=1, lr=2e-4, precision="bf16")
    train_classifier(trained, "full", train.texts, np.eye(2)[train.labels], {}, NoRegularizer(), config, 0,
                     prefix=PrefixCache(Classifier(bb, tok, 2, 64), 2, "bf16"))
    for attack in ATTACKS:
        for precision in ("fp32", "bf16", "bf16w", "bf16w+memo", "bf16w+memo+stop"):
            weights = "bf16" if precision.startswith("bf16w") else "fp32"
            prefix = PrefixCache(Classifier(bb, tok, 2, 64), 2, precision if weights == "fp32" else "fp32", weights=weights)
            prefix.batch(examples.texts)  # the originals: test texts, cached before a run's attacks
            before = prefix.tokens
            clf = copy.deepcopy(trained)
            clf.use_prefix(prefix, TopLayers(clf, 2))
            _search.forget_shared_candidates()  # each variant builds its candidates, as a run's first model does
            with counted_queries() as queries, timed() as t:
                outcomes = run_attack(clf, examples, attack, budget, 0, memoize_words="memo" in precision,
                                      stop_early=precision.endswith("stop"))
            summary = attack_scores(outcomes)
            tokens = prefix.tokens - before
            flops = 2 * (prefix.bottom + 2) * layer_params * tokens
            variant = {"bf16w": "bf16 weights", "bf16": "bf16 autocast", "bf16w+memo": "+words memo",
                       "bf16w+memo+stop": "+early stop"}.get(precision, precision)
            table.row(f"attack {attack}", variant, t[0], tokens, flops, precision[:4])
            print(f"{'':<24}{'':<15} {t[0] / len(examples):.2f} s per example, success rate {summary['success_rate']}")
            print(f"{'':<24}{'':<15} {queries.summary()}")


class QueryCounts:
    """textattack's model queries per attacked example (what ``query_budget`` bounds) and its model calls."""

    def __init__(self) -> None:
        self.per_example: list[int] = []
        self.call_sizes: list[int] = []

    def summary(self) -> str:
        q = np.asarray(self.per_example or [0])
        at_budget = sum(1 for n in self.per_example if n >= q.max())
        return (f"queries/example median {np.median(q):.0f}, max {q.max()} ({at_budget} at max); "
                f"{len(self.call_sizes)} model calls, {np.mean(self.call_sizes or [0]):.1f} texts each")


@contextlib.contextmanager
def counted_queries() -> Iterator[QueryCounts]:
    """Count textattack's queries per example (the search's ``num_queries``, cached answers included) and its
    uncached model calls (the texts the model actually ran) while the block runs."""
    import textattack
    from textattack.goal_functions import GoalFunction

    counts = QueryCounts()
    attack, uncached = textattack.Attack.attack, GoalFunction._call_model_uncached

    def attack_counted(self: Any, example: Any, label: Any) -> Any:
        result = attack(self, example, label)
        counts.per_example.append(int(result.perturbed_result.num_queries))
        return result

    def uncached_counted(self: Any, texts: Any) -> Any:
        counts.call_sizes.append(len(texts))
        return uncached(self, texts)

    textattack.Attack.attack, GoalFunction._call_model_uncached = attack_counted, uncached_counted
    try:
        yield counts
    finally:
        textattack.Attack.attack, GoalFunction._call_model_uncached = attack, uncached


def bench_weak(table: Table, tok: Any, bb: Any, data: Any) -> None:
    from w2sbench.interfaces import NoRegularizer
    from w2sbench.training.classifier import Classifier
    from w2sbench.training.config import default_train_config
    from w2sbench.training.trainer import train_classifier

    probe = Classifier(bb, tok, 2, 64)
    with timed() as t:
        x = probe.features(data.texts)
    tokens = real_tokens(tok, data.texts)
    table.row("feature extraction", "minilm-l0", t[0], tokens, 0.0, "fp32")
    clf = Classifier(bb, tok, 2, 64)
    with timed() as t:
        train_classifier(clf, "head", data.texts, np.eye(2)[data.labels], {}, NoRegularizer(),
                         default_train_config("head"), 0, features=lambda s: x if s is data.texts else probe.features(s))
    table.row("weak head", "40 epochs", t[0], tokens * 40, 40 * 6 * x.shape[1] * 2 * len(data), "fp32")


def bench_attack_sharing(table: Table, tok: Any, bb: Any, train: Any, examples: Any, layer_params: int, budget: int) -> None:
    """A second strong model attacked after a first one on the same frozen bottom (every strong cell and seed
    of a run): with its own store of perturbed states (old) and reading the store the first attack filled."""
    from w2sbench.interfaces import NoRegularizer
    from w2sbench.training.classifier import Classifier
    from w2sbench.training.config import default_train_config
    from w2sbench.training.prefix import PrefixCache, TopLayers
    from w2sbench.training.trainer import train_classifier
    from w2sbench_plugins.adversarial import ATTACKS, _search, run_attack

    config = default_train_config("full", trainable_layers=2, epochs=1, lr=2e-4)
    models = []
    for seed in (0, 1):  # two strong models: what two cells of a run are
        model = Classifier(copy.deepcopy(bb), tok, 2, 64)
        train_classifier(model, "full", train.texts, np.eye(2)[train.labels], {}, NoRegularizer(), config, seed,
                         prefix=PrefixCache(Classifier(bb, tok, 2, 64), 2))
        models.append(model)

    def attack(prefix: Any, model: Any, recipe: str) -> tuple[float, int]:
        clf = copy.deepcopy(model)
        clf.use_prefix(prefix, TopLayers(clf, 2))
        with timed() as t:
            run_attack(clf, examples, recipe, budget, 0)
        return t[0], prefix.tokens

    for recipe in ATTACKS:
        _search.forget_shared_candidates()
        alone = PrefixCache(Classifier(bb, tok, 2, 64), 2)
        seconds, tokens = attack(alone, models[1], recipe)
        table.row(f"2nd model {recipe}", "own store", seconds, tokens, 2 * (alone.bottom + 2) * layer_params * tokens, "fp32")
        _search.forget_shared_candidates()
        shared = PrefixCache(Classifier(bb, tok, 2, 64), 2)
        attack(shared, models[0], recipe)
        before = shared.tokens
        seconds, tokens = attack(shared, models[1], recipe)
        table.row(f"2nd model {recipe}", "shared store", seconds, tokens - before,
                  2 * (alone.bottom + 2) * layer_params * (tokens - before), "fp32")
        print(f"{'':<24}{'':<15} frozen-layer tokens run for the 2nd model: {tokens - before} of {alone.tokens} "
              f"({(tokens - before) / max(1, alone.tokens):.0%})")


def main() -> None:
    from w2sbench.interfaces import DataContext, NoRegularizer
    from w2sbench_plugins._sst2 import fixed_subset
    from w2sbench_plugins.adversarial import Adversarial
    from w2sbench_plugins.fairness import Fairness
    from w2sbench_plugins.privacy import Privacy

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=256, help="Adult rows per training / extraction stage")
    parser.add_argument("--attack-examples", type=int, default=4)
    parser.add_argument("--train-data", default="adult", choices=("adult", "emails"),
                        help="texts of the training rows: Adult rows (fairness; short) or e-mails (privacy; 128 tokens, "
                        "no fairness-regularized row)")
    parser.add_argument("--skip", default="", help="comma-separated kinds to skip: weak,train,dpclip,predict,attack,sharing")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 measures per-core efficiency on a busy machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    skip = set(args.skip.split(","))
    data_dir = Path(os.environ.get("W2SBENCH_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ctx = DataContext(data_dir, Path("/tmp/w2sbench-bench"))
    peaks = {"fp32": ceiling(torch.float32), "bf16": ceiling(torch.bfloat16)}
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}; ceiling fp32 "
          f"{peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    models = load_pair()
    tok, bb = models["minilm-l6"]
    bb.eval()
    from w2sbench.training.classifier import transformer_layers

    layer_params = params_of(transformer_layers(bb)[:1])
    fair = Fairness()
    fopts = fair.options({})
    adult = fair.load_data(ctx, fopts).train.subset(np.arange(args.rows))
    table = Table(peaks)
    if "weak" not in skip:
        bench_weak(table, *models["minilm-l0"], adult)
    prefixes = bench_frozen(table, tok, bb, adult.texts, layer_params)
    if "train" not in skip:
        adv = Adversarial()
        regs = {
            "plain": (NoRegularizer(), 1),
            "fairness": (fair.regularizer(fopts).for_training("strong", "full"), 1),
            "adversarial": (adv.regularizer(adv.options({})).for_training("strong", "full"), 3),
            "DP-SGD": (Privacy().regularizer(Privacy().options({})).for_training("strong", "full"), 1),
        }
        rows = adult
        if args.train_data == "emails":
            from w2sbench.training.classifier import Classifier
            from w2sbench.training.prefix import PrefixCache

            rows = Privacy().load_data(ctx, Privacy().options({})).train.subset(np.arange(args.rows))
            del regs["fairness"]  # e-mails have no sensitive attribute
            train_prefixes = {p: PrefixCache(Classifier(bb, tok, 2, 128), 2, p) for p in ("fp32", "bf16")}
            for prefix in train_prefixes.values():
                prefix.batch(rows.texts)
        else:
            train_prefixes = prefixes
        bench_training(table, tok, bb, train_prefixes, rows, layer_params, regs)
    if "dpclip" not in skip:
        emails = Privacy().load_data(ctx, Privacy().options({})).train
        bench_dp_clipping(table, tok, bb, emails, layer_params, max(1, args.rows // 128))
    if "predict" not in skip:
        bench_predict(table, tok, bb, prefixes, adult.texts, layer_params)
    if "attack" not in skip:
        adv = Adversarial()
        sst2 = adv.load_data(ctx, adv.options({}))
        dev = sst2.tests["sst2_dev"]
        examples = dev.subset(fixed_subset(len(dev), args.attack_examples))
        bench_attacks(table, tok, bb, sst2.train.subset(np.arange(4 * args.rows)), examples, layer_params, int(adv.default_options["query_budget"]))
    if "sharing" not in skip:
        adv = Adversarial()
        sst2 = adv.load_data(ctx, adv.options({}))
        dev = sst2.tests["sst2_dev"]
        examples = dev.subset(fixed_subset(len(dev), args.attack_examples))
        bench_attack_sharing(table, tok, bb, sst2.train.subset(np.arange(4 * args.rows)), examples, layer_params,
                             int(adv.default_options["query_budget"]))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
