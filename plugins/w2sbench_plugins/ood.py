"""OOD robustness: train on SST-2, test on SST-2 dev and on DecodingTrust's ten style-transferred
versions of it; the regularizer is a consistency loss between clean and perturbed inputs.

Choices the paper leaves open are in docs/properties.md (section ``ood``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from w2sbench.plugin_api import (
    SHARE,
    DataContext,
    Examples,
    LmEvalTask,
    MetricInfo,
    PenaltyContext,
    PropertyData,
    Range,
    Regularizer,
    TrustProperty,
    W2SBenchError,
    dataset_file,
    did_you_mean,
    file_sha256,
    hookimpl,
)
from w2sbench_plugins._sst2 import load_sst2_splits
from w2sbench_plugins.adversarial._perturbations import EDITS, PerturbedViews, check_edits

__all__ = [
    "OOD", "ConsistencyPenalty", "STYLES", "STYLE_URL", "load_styles", "read_style_file", "style_test_name", "ood_scores",
    "OOD_TAG", "style_task_name", "style_tasks",
]

STYLE_URL = "https://raw.githubusercontent.com/AI-secure/DecodingTrust/main/data/ood/style.json"
STYLES = (
    "augment", "shake_w", "shake_p0", "shake_p0.6", "bible_p0", "bible_p0.6",
    "romantic_p0", "romantic_p0.6", "tweet_p0", "tweet_p0.6",
)
DIVERGENCES = ("symmetric_kl", "kl")
OOD_TAG = "w2sbench_ood_style"  # the lm-eval tag of the exported style tasks (``w2sbench export-lm-eval``)
# The exported style tasks' description, after DecodingTrust's sentiment instruction for its OOD style evaluation.
_SENTIMENT_PROMPT = "For each snippet of text, label the sentiment of the text as positive or negative.\n\n"


def style_key(style: str) -> str:
    """A style name usable in metric and test-set names ("shake_p0.6" -> "shake_p0_6")."""
    return style.replace(".", "_")


def style_test_name(style: str) -> str:
    return f"style_{style_key(style)}"


def _refuse_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def read_style_file(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """DecodingTrust's data/ood/style.json as (dev rows by style, demonstration rows by ``<style>_<k>``);
    each row a dict with ``id``, ``sentence`` and ``label`` ('0'/'1'). A file that is not valid JSON
    (NaN included) or lacks the ``dev`` object raises W2SBenchError; ``train_demo`` may be absent ({})."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.loads(f.read(), parse_constant=_refuse_constant)
        dev, demos = doc["dev"], doc.get("train_demo", {})
        if not isinstance(dev, dict) or not isinstance(demos, dict):
            raise TypeError("'dev' and 'train_demo' must be JSON objects")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise W2SBenchError(f"{path} is not DecodingTrust's style.json ({exc}).",
                            "Replace it with data/ood/style.json from DecodingTrust.") from None
    return dev, demos


def load_styles(path: str, styles: Sequence[str], dev_size: int) -> dict[str, Examples]:
    """The style-transferred SST-2 dev sets from DecodingTrust's style.json, each aligned with dev by id."""
    dev = read_style_file(path)[0]
    out = {}
    for style in styles:
        rows = dev.get(style)
        if rows is None or len(rows) != dev_size:
            raise W2SBenchError(
                f"{path} has {0 if rows is None else len(rows)} rows for style {style!r}; SST-2 dev has {dev_size}.",
                "Replace it with DecodingTrust's data/ood/style.json.",
            )
        rows = sorted(rows, key=lambda r: int(r["id"]))
        if [int(r["id"]) for r in rows] != list(range(dev_size)) or any(str(r["label"]) not in {"0", "1"} for r in rows):
            raise W2SBenchError(f"{path}: style {style!r} is not ids 0..{dev_size - 1} with labels '0'/'1'.", "Replace the file.")
        out[style] = Examples(
            ids=[f"{style}-{r['id']}" for r in rows],
            texts=[r["sentence"].strip() for r in rows],
            labels=np.array([int(r["label"]) for r in rows]),
        )
    return out


def style_task_name(style: str) -> str:
    """``bible_p0.6`` -> ``w2sbench_sst2_style_bible_p0_6`` (lm-eval task names avoid dots)."""
    return "w2sbench_sst2_style_" + re.sub(r"[^A-Za-z0-9_]+", "_", style)


def _lm_eval_rows(path: str, style: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    try:
        return [{"id": r["id"], "sentence": r["sentence"], "label": int(r["label"])} for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise W2SBenchError(f"{path}: a row of style {style!r} is not id/sentence/label ({exc}).",
                            "Replace it with data/ood/style.json from DecodingTrust.") from None


def style_tasks(path: str, rows: int | None) -> list[LmEvalTask]:
    """Every dev set in DecodingTrust's style.json (the ten styles and ``base``, in file order) as an
    SST-2 sentiment task, tagged ``w2sbench_ood_style``: its first ``rows`` rows (None: all 872), and as
    few-shot split DecodingTrust's demonstrations in the same style (``<style>_0``) where it ships
    them, else the ``base_0`` ones."""
    dev, demos = read_style_file(path)
    if not demos:
        raise W2SBenchError(f"{path} has no train_demo demonstrations.", "Replace it with data/ood/style.json from DecodingTrust.")
    tasks = []
    for style, style_rows in dev.items():
        name = style_task_name(style)
        data = {
            "train": (f"{name}.fewshot.jsonl", _lm_eval_rows(path, style, demos.get(f"{style}_0", demos.get("base_0", [])))),
            "test": (f"{name}.test.jsonl", _lm_eval_rows(path, style, style_rows)[: rows or None]),
        }
        tasks.append(LmEvalTask.multiple_choice(
            name, OOD_TAG, data, "{{sentence}}\nAnswer:", ["negative", "positive"], _SENTIMENT_PROMPT,
            f"w2sbench OOD robustness: DecodingTrust SST-2 dev, style '{style}'", {OOD_TAG: "SST-2 styles"},
        ))
    return tasks


def _accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float((np.asarray(probabilities).argmax(1) == labels).mean())


def ood_scores(id_accuracy: float, style_accuracy: Mapping[str, float]) -> dict[str, float]:
    """Per-style accuracies, their mean (the OOD accuracy) and the ID-OOD gap."""
    mean = float(np.mean(list(style_accuracy.values())))
    scores = {"id_accuracy": id_accuracy, "ood_accuracy": mean, "id_ood_gap": id_accuracy - mean}
    scores.update({f"accuracy_{style_key(s)}": a for s, a in style_accuracy.items()})
    return scores


class ConsistencyPenalty(PerturbedViews):
    """weight x divergence between the predictions on each input and on its perturbed views (mean over views).

    ``symmetric_kl``: (KL(p||q) + KL(q||p)) / 2 with gradients through both; ``kl``: KL(p||q) with the
    clean prediction p held fixed (UDA-style: the perturbed prediction q is pulled towards it).
    """

    def __init__(self, weight: float, divergence: str, num_views: int, rate: float, edits: Sequence[str]) -> None:
        super().__init__("ood-consistency", weight, num_views, rate, edits)
        self.divergence = divergence

    def config(self) -> dict[str, Any]:
        return {**super().config(), "divergence": self.divergence}

    def penalty(self, ctx: PenaltyContext) -> Any:
        import torch

        if not ctx.view_logits:
            return None
        log_p = torch.log_softmax(ctx.logits, dim=-1)
        terms = []
        for view in ctx.view_logits:
            log_q = torch.log_softmax(view, dim=-1)
            if self.divergence == "kl":
                fixed = log_p.detach()
                terms.append((fixed.exp() * (fixed - log_q)).sum(-1).mean())
            else:
                forward = (log_p.exp() * (log_p - log_q)).sum(-1)
                backward = (log_q.exp() * (log_q - log_p)).sum(-1)
                terms.append((0.5 * (forward + backward)).mean())
        return self.weight * torch.stack(terms).mean()


class OOD(TrustProperty):
    name = "ood"
    description = "SST-2 sentiment; accuracy on DecodingTrust's style-transferred SST-2 dev (OOD robustness)"
    primary = "ood_accuracy"
    prepared_data_cache = True  # load_data reads only dataset_file's files
    metrics = (
        MetricInfo("ood_accuracy", True, "Mean accuracy over the style-transferred SST-2 dev sets.", bounds=SHARE),
        MetricInfo("id_ood_gap", False, "In-distribution accuracy minus mean OOD accuracy.", bounds=(-1.0, 1.0)),
        MetricInfo("id_accuracy", True, "Accuracy on SST-2 dev (in distribution).", kind="task", bounds=SHARE),
        *(MetricInfo(f"accuracy_{style_key(s)}", True, f"Accuracy on SST-2 dev in DecodingTrust style {s}.", bounds=SHARE) for s in STYLES),
    )
    default_options = {
        "weak_train_size": 1000,
        "transfer_size": 1000,
        "val_size": 100,
        "max_length": 64,
        # rows per test set (same ids in dev and every style); 0 = all 872: at 300 the default pair's accuracy
        # gap (+0.036 over 3 seeds) was not resolved (interval [-0.018, +0.089]), issue 14
        "test_size": 0,
        "styles": list(STYLES),
        "weight": 1.0,
        "divergence": "symmetric_kl",
        "views": 1,
        "perturb_rate": 0.15,
        "edits": list(EDITS),
    }
    option_ranges = {"divergence": Range("str", note=" or ".join(DIVERGENCES))}  # listed; regularizer refuses others

    def _styles(self, options: Mapping[str, Any]) -> list[str]:
        chosen = [s.strip() for s in options["styles"] if s.strip()]
        for style in chosen:
            if style not in STYLES:
                raise W2SBenchError(f'Unknown OOD style "{style}".' + did_you_mean(style, STYLES), f"Use a subset of: {', '.join(STYLES)}.")
        if not chosen:
            raise W2SBenchError("No OOD styles selected.", f"Use a comma-separated subset of: {', '.join(STYLES)}.")
        return chosen

    def load_data(self, ctx: DataContext, options: Mapping[str, Any]) -> PropertyData:
        styles = self._styles(options)
        sst2 = load_sst2_splits(ctx, int(options["test_size"]))
        style_path = dataset_file(ctx, "decodingtrust/ood/style.json", STYLE_URL)
        tests = {style_test_name(style): examples.subset(sst2.keep)
                 for style, examples in load_styles(str(style_path), styles, len(sst2.dev)).items()}
        return sst2.property_data(tests, {"decodingtrust/ood/style.json": file_sha256(style_path)})

    def regularizer(self, options: Mapping[str, Any]) -> Regularizer:
        divergence = options["divergence"]
        if divergence not in DIVERGENCES:
            raise W2SBenchError(f'Unknown divergence "{divergence}".', f"Use --option ood.divergence={'|'.join(DIVERGENCES)}.")
        edits = check_edits(options["edits"], "ood.edits")
        return ConsistencyPenalty(float(options["weight"]), divergence, int(options["views"]), float(options["perturb_rate"]), edits)

    def evaluate(
        self, data: PropertyData, probabilities: Mapping[str, np.ndarray], options: Mapping[str, Any]
    ) -> dict[str, float]:
        id_acc = _accuracy(data.tests["sst2_dev"].labels, probabilities["sst2_dev"])
        styles = {s: _accuracy(data.tests[style_test_name(s)].labels, probabilities[style_test_name(s)]) for s in self._styles(options)}
        return ood_scores(id_acc, styles)

    def lm_eval_tasks(
        self, ctx: DataContext, options: Mapping[str, Any], rows: int | None, fewshot_rows: int
    ) -> list[LmEvalTask]:
        """DecodingTrust's style-transferred SST-2 dev sets as sentiment tasks (``style_tasks``); the
        few-shot splits are DecodingTrust's own demonstrations (8 per style), so ``fewshot_rows`` is unused."""
        return style_tasks(str(dataset_file(ctx, "decodingtrust/ood/style.json", STYLE_URL)), rows)


@hookimpl
def w2sbench_register_trust_properties() -> list[TrustProperty]:
    return [OOD()]
