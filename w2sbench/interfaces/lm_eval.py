"""An lm-eval task a trust property exports (``LmEvalTask``, returned by ``TrustProperty.lm_eval_tasks``):
its name, its lm-eval YAML settings and its data rows. ``w2sbench export-lm-eval DIR`` writes them.

The YAML keys are lm-eval's task configuration (lm-evaluation-harness, docs/task_guide.md); the core adds
``task``, ``tag``, ``dataset_path: json`` and ``dataset_kwargs`` (the absolute paths of the JSONL files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LmEvalTask"]

Rows = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class LmEvalTask:
    """One lm-eval task: written as ``DIR/<folder>/<name>.yaml`` with its JSONL files beside it.

    - ``name``: the lm-eval task name (letters, digits and underscores).
    - ``folder``: the sub-folder of DIR it is written to (one plain folder name; tasks may share one).
    - ``config``: the lm-eval YAML keys after ``task``, ``tag``, ``dataset_path`` and ``dataset_kwargs``
      (which the core writes), in the order they are written: ``test_split``, ``output_type``,
      ``doc_to_text`` ... Values must be YAML-safe (str, int, float, bool, lists and dicts of them).
    - ``data``: lm-eval split name -> (JSONL file name inside ``folder``, rows); each row a JSON object
      of finite values (the fields ``doc_to_text`` / ``doc_to_target`` refer to).
    - ``tags``: lm-eval tags besides ``w2sbench`` (which every task gets), each with a one-line
      description for the export's README.
    """

    name: str
    folder: str
    config: Mapping[str, Any]
    data: Mapping[str, tuple[str, Rows]]
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def multiple_choice(
        cls, name: str, folder: str, data: Mapping[str, tuple[str, Rows]], doc_to_text: str,
        choices: Sequence[str], description: str, source: str, tags: Mapping[str, str] | None = None,
    ) -> LmEvalTask:
        """A multiple-choice task scored by accuracy (``acc``): rows carry an integer ``label`` indexing
        ``choices``; ``data`` holds a ``"test"`` split and a ``"train"`` split whose first rows are the
        few-shot demonstrations (lm-eval's ``first_n`` sampler). ``description`` precedes every prompt;
        ``source`` is recorded under ``metadata``."""
        config = {
            "test_split": "test",
            "fewshot_split": "train",
            "fewshot_config": {"sampler": "first_n"},
            "output_type": "multiple_choice",
            "description": description,
            "doc_to_text": doc_to_text,
            "doc_to_choice": list(choices),
            "doc_to_target": "label",
            "target_delimiter": " ",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0, "source": source},
        }
        return cls(name, folder, config, data, dict(tags or {}))
