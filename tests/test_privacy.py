"""The privacy plugin: Enron loader and labels, membership-inference AUC, DP-SGD's epsilon, an end-to-end run.

The Enron files hold real names and addresses: assertions here compare counts, never show the strings.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import DataContext
from w2sbench_plugins.privacy import DPSGD, Privacy, membership_auc, per_example_loss
from w2sbench_plugins.privacy._data import SPLITS, body_key, enron_examples, folder_label, load_aeslc

ROWS = {"train": 14_436, "dev": 1_960, "test": 1_906}
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def _raw(data_dir: Path) -> dict[str, list[dict]]:
    return {s: load_aeslc(data_dir / "enron_aeslc" / f"aeslc_{s}.jsonl.gz") for s in SPLITS}


def test_loader_reads_every_mirror_row_and_labels_by_folder(data_dir):
    raw = _raw(data_dir)
    assert {s: len(rows) for s, rows in raw.items()} == ROWS
    examples = enron_examples(raw)
    counts = Counter(body_key(r["body"]) for rows in raw.values() for r in rows)
    for split in SPLITS:
        ex = examples[split]
        # Kept rows: exactly those whose body occurs once in the whole corpus.
        assert len(ex) == sum(counts[body_key(r["body"])] == 1 for r in raw[split])
        assert all(re.fullmatch(rf"{split}-\d+", i) for i in ex.ids)  # no file name (employee names) in ids
        rows = [raw[split][int(i.split("-")[1]) - 1] for i in ex.ids]
        assert ex.labels.tolist() == [int("_sent_" in r["file"]) for r in rows]
        assert ex.attributes["has_address"].tolist() == [int(bool(r["emails_in_body"])) for r in rows]
    assert (len(examples["train"]), len(examples["dev"]), len(examples["test"])) == (12_917, 1_671, 1_625)
    assert int(examples["train"].labels.sum()) == 6_312  # 48.9% sent: a balanced task
    kept = [body_key(t) for s in SPLITS for t in examples[s].texts]
    assert len(kept) == len(set(kept))


def test_load_data_gives_pool_and_fixed_test_subset(data_dir):
    metric = Privacy()
    data = metric.load_data(DataContext(data_dir, data_dir), metric.options({"test_size": "300"}))
    again = metric.load_data(DataContext(data_dir, data_dir), metric.options({"test_size": "300"}))
    assert len(data.train) == 12_917 and data.main_test == "enron_test"
    # The loader's corpus-wide body deduplication leaves nothing for the shared check to drop.
    assert data.resources["hygiene"] == {
        "train_rows_read": 12_917,
        "conflicting_label_texts": 0,
        "conflicting_label_rows_dropped": 0,
        "test_rows_duplicated_in_train": 0,
        "test_rows_duplicated_in_train.enron_test": 0,
        "train_rows_dropped_as_test_duplicates": 0,
        "train_rows_kept": 12_917,
    }
    assert len(data.tests["enron_test"]) == 300
    assert data.tests["enron_test"].ids == again.tests["enron_test"].ids
    names = {f"decodingtrust/privacy/enron_data/{f}" for f in ("email2name.json", "five_shot.json")}
    assert set(data.sources) == {f"enron_aeslc/aeslc_{s}.jsonl.gz" for s in SPLITS} | names
    assert len(data.auxiliary["names"]["names"]) == 3333  # the extraction prompts' source, loaded up front


def test_bad_folder_and_bad_file_are_reported_without_content(tmp_path):
    with pytest.raises(W2SBenchError) as err:
        folder_label("someone-x_drafts_3.subject")
    assert "someone" not in str(err.value)
    broken = tmp_path / "aeslc_train.jsonl.gz"
    broken.write_bytes(gzip.compress(json.dumps({"body": "secret text"}).encode() + b"\n"))
    with pytest.raises(W2SBenchError) as err:
        load_aeslc(broken)
    assert "secret" not in str(err.value) and "line 1" in str(err.value)


def test_membership_auc_hand_computed():
    # Members' losses all below the non-members': the attack separates them perfectly.
    assert membership_auc(-np.array([0.1, 0.2]), -np.array([0.3, 0.4])) == 1.0
    # Pairs (member, non-member) ranked right: (0.1<0.2), (0.1<0.3); wrong: (0.4, 0.2), (0.4, 0.3) -> 2/4.
    assert membership_auc(-np.array([0.1, 0.4]), -np.array([0.2, 0.3])) == 0.5
    # Three of four pairs right -> 0.75; a tie counts one half -> (1 + 0.5) / 2.
    assert membership_auc(-np.array([0.1, 0.25]), -np.array([0.2, 0.3])) == 0.75
    assert membership_auc(np.array([1.0, 0.0]), np.array([0.0])) == 0.75
    assert membership_auc(-np.array([0.9]), -np.array([0.1])) == 0.0
    assert membership_auc(np.array([]), np.array([0.1])) is None
    losses = per_example_loss(np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]]), np.array([1, 0, 1]))
    assert np.allclose(losses[:2], [-np.log(0.8), np.log(2)]) and losses[2] == pytest.approx(-np.log(1e-12))


def test_regularizer_options_are_checked():
    metric = Privacy()
    reg = metric.regularizer(metric.options())
    assert reg.privacy.target_epsilon == 8.0 and reg.privacy.delta is None and reg.privacy.max_grad_norm == 1.0
    assert metric.regularizer(metric.options({"delta": "1e-5"})).privacy.delta == 1e-5
    assert reg.config() != metric.regularizer(metric.options({"target_epsilon": "2"})).config()
    for bad in ({"target_epsilon": "0"}, {"delta": "1.5"}, {"max_grad_norm": "-1"}):
        with pytest.raises(W2SBenchError):
            metric.regularizer(metric.options(bad))


@pytest.mark.parametrize("arch", ["bert", "neox"])
@pytest.mark.parametrize("mode", ["head", "full"])
def test_dp_sgd_reaches_target_epsilon(tiny_models, arch, mode):
    import copy

    import torch
    from transformers import AutoModel, AutoTokenizer

    from w2sbench.training.classifier import Classifier
    from w2sbench.training.config import TrainConfig
    from w2sbench.training.trainer import train_classifier

    tokenizer = AutoTokenizer.from_pretrained(tiny_models[arch])
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    backbone = AutoModel.from_pretrained(tiny_models[arch])
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(["good", "bad", "movie", "plot", "the", "fun"], 8)) for _ in range(96)]
    labels = np.array([int("good" in t) for t in texts])
    torch.manual_seed(0)
    classifier = Classifier(copy.deepcopy(backbone), tokenizer, 2, 16)
    before = {n: p.detach().clone() for n, p in classifier.named_parameters()}
    probe = Classifier(backbone, tokenizer, 2, 16)
    report = train_classifier(
        classifier, mode, texts, np.eye(2)[labels], {}, DPSGD(4.0, None, 1.0),
        TrainConfig(epochs=2, lr=1e-3, batch_size=32), seed=0,
        features=(lambda t: probe.features(list(t))) if mode == "head" else None,
    )
    assert report.delta == pytest.approx(1 / (100 * 96))  # the default delta, 1 / (100 N)
    assert 3.5 < report.epsilon <= 4.0 + 0.05  # opacus calibrates the noise to just under the target
    changed = [n for n, p in classifier.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert "head.weight" in changed
    assert (mode == "full") == any(n.startswith("backbone.") for n in changed)


@pytest.mark.slow
def test_end_to_end_run_reports_every_metric_and_leaks_no_address(tiny_models, data_dir, tmp_path, capfd):
    from w2sbench.cli import main
    from w2sbench.results import PREDICTIONS_FILE, load_results

    out = tmp_path / "run"
    small = [
        "weak_train_size=60", "transfer_size=60", "val_size=10", "test_size=80", "max_length=32",
        "mia_size=40", "reference_size=200", "target_epsilon=4", "extraction_size=4", "max_new_tokens=5",
    ]
    args = ["run", "--seeds", "0", "--pair", f"{tiny_models['bert']}:{tiny_models['neox']}", "--properties", "privacy",
            "--finetune", "head:full", "--data-dir", str(data_dir), "--out", str(out)]
    for option in small:
        args += ["--option", f"privacy.{option}"]
    assert main(args) == 0
    prop = load_results(out)["properties"]["privacy"]
    assert prop["primary_trust_metric"] == "mia_auc"
    live = {"mia_auc", "mia_auc_calibrated", "mia_auc_weak_train", "mia_auc_transfer"}
    for cell, entry in prop["cells"].items():
        scores = entry["seeds"]["0"]
        assert {"accuracy", "auroc"} | live <= set(scores), cell
        for k in live:  # 40 members vs 40 non-members (mia_size): a count of the 1,600 pairs, ties as halves
            assert round(scores[k] * 3200, 6) == round(scores[k] * 3200), (cell, k, scores[k])
        # each membership AUC carries its bootstrap standard error over members and non-members (LiveScores)
        assert all(isinstance(entry["stderr"]["0"][k], float) for k in live if scores[k] is not None), cell
        regularized = cell in {"weak-reg", "ceiling-reg", "weak-wts-tft"}
        assert ("dp_epsilon" in scores) == regularized, cell
        if regularized:
            assert 3.5 < scores["dp_epsilon"] <= 4.05 and entry["train"]["0"]["epsilon"] == scores["dp_epsilon"]
    # Address extraction needs a language model: the decoder strong models have rates, the encoder weak ones none.
    extraction = ("extraction_context_members", "extraction_context_unseen", "extraction_zero_shot", "extraction_few_shot")
    for cell, entry in prop["cells"].items():
        scores = entry["seeds"]["0"]
        if cell.startswith("weak") and cell != "weak-wts-tft" and cell != "weak-tft":
            assert all(scores.get(k) is None for k in extraction), cell
        else:
            # extraction_size=4: the name prompts are 4 targets (rates in quarters); the context prompts are the
            # first addresses of up to 4 e-mails (a share of 1 to 4 prompts, so a multiple of 1/12)
            assert [round(scores[k] * 4, 9) == round(scores[k] * 4) for k in extraction[2:]] == [True, True], cell
            assert [round(scores[k] * 12, 9) == round(scores[k] * 12) for k in extraction[:2]] == [True, True], cell
    # A weak model trained on A, a strong one on B: the primary score is the attack on its own split.
    cells = prop["cells"]
    assert cells["weak"]["seeds"]["0"]["mia_auc"] == cells["weak"]["seeds"]["0"]["mia_auc_weak_train"]
    assert cells["vanilla"]["seeds"]["0"]["mia_auc"] == cells["vanilla"]["seeds"]["0"]["mia_auc_transfer"]

    captured = capfd.readouterr()
    written = (out / "results.json").read_text() + gzip.decompress((out / PREDICTIONS_FILE).read_bytes()).decode()
    addresses = {a.lower() for rows in _raw(data_dir).values() for r in rows for a in r["emails_in_body"]}
    count = len(addresses)
    assert count > 300, f"only {count} distinct addresses to look for"  # never print the addresses themselves
    shown = (captured.out + captured.err + written).lower()
    leaked = sum(a in shown for a in addresses)
    assert leaked == 0, "an e-mail address from the data appears in the output or the results"
    assert len(_ADDRESS.findall(captured.out + captured.err)) == 0


def test_dp_bias_fine_tuning_trains_only_bias_terms_and_head_with_its_own_settings(tiny_models):
    """privacy.dp_* settings: DP-SGD fine-tuning trains the bias vectors and the head (DP-BiTFiT), with its
    own batch size and epochs (2 Poisson batches of expected size 48 from 96 rows, one epoch = 2 steps)."""
    import copy

    import torch
    from transformers import AutoModel, AutoTokenizer

    from w2sbench.training.classifier import Classifier
    from w2sbench.training.config import TrainConfig
    from w2sbench.training.trainer import train_classifier

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["bert"])
    backbone = AutoModel.from_pretrained(tiny_models["bert"])
    texts = [f"text number {i} is {'good' if i % 2 else 'bad'}" for i in range(96)]
    torch.manual_seed(0)
    classifier = Classifier(copy.deepcopy(backbone), tokenizer, 2, 16)
    before = {n: p.detach().clone() for n, p in classifier.named_parameters()}
    regularizer = DPSGD(8.0, None, 1.0, parameters="biases", batch_size=48, lr=1e-2, epochs=1)
    report = train_classifier(
        classifier, "full", texts, np.eye(2)[np.arange(96) % 2], {}, regularizer,
        TrainConfig(epochs=3, lr=1e-5, batch_size=8), seed=0,
    )
    assert report.steps == 2
    changed = {n for n, p in classifier.named_parameters() if not torch.equal(p.detach(), before[n])}
    trainable_biases = {n for n, p in classifier.named_parameters() if n.endswith("bias") and "pooler" not in n}
    assert changed == trainable_biases | {"head.weight"}


def test_a_dp_head_keeps_its_settings_and_its_cache_key():
    regularizer = Privacy().regularizer(Privacy().options({}))
    assert regularizer.privacy.key() == {
        "target_epsilon": 8.0, "delta": None, "max_grad_norm": 1.0, "accounting": "every-poisson-batch",
        "parameters": "biases", "batch_size": 128, "lr": 2e-2, "epochs": 5,
    }
    head = regularizer.for_training("weak", "head")
    assert head.config()["privacy"] == {
        "target_epsilon": 8.0, "delta": None, "max_grad_norm": 1.0, "accounting": "every-poisson-batch",
    }
    assert regularizer.for_training("strong", "full") is regularizer


def test_membership_auc_standard_error_resamples_members_and_non_members_separately():
    from w2sbench_plugins.privacy import _auc_statistic, membership_auc_stderr

    rng = np.random.default_rng(0)
    members, unseen = rng.normal(0.3, 1, 200), rng.normal(0.0, 1, 200)
    # the vectorized statistic is membership_auc (scikit-learn's ROC AUC), ties included
    assert math.isclose(_auc_statistic(members, unseen)[0], membership_auc(members, unseen))
    assert _auc_statistic(np.array([1.0, 0.0]), np.array([0.0]))[0] == 0.75
    se = membership_auc_stderr(members, unseen, seed=0)
    # Hanley & McNeil (1982) for AUC ~0.58 with 200 + 200: about 0.029
    auc = membership_auc(members, unseen)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    hanley = math.sqrt((auc * (1 - auc) + 199 * (q1 - auc**2) + 199 * (q2 - auc**2)) / (200 * 200))
    assert math.isclose(se, hanley, rel_tol=0.1)
    assert membership_auc_stderr(np.array([2.0, 3.0]), np.array([0.0, 1.0]), seed=0) == 0.0  # always separated
    assert membership_auc_stderr(np.array([1.0]), unseen, seed=0) is None
