"""Two ways textattack's attacks cost less without changing an outcome: a greedy search that stops at the first
successful candidate (``early_stopping``), and Pruthi's candidate texts shared by every model a process attacks
(``shared_transformations``).

textattack's ``GreedySearch`` (a beam search of width 1) sends every candidate of a step to the model at
once (up to the query budget) and only then looks for a successful one. Whether the step succeeds does not
depend on the order it looks in: a step succeeds when any candidate does, and the best-scoring candidate of
an untargeted attack is then a successful one. Evaluating the candidates in chunks of the goal function's
own batch size (textattack sends the model batches of that size anyway) and stopping at the first chunk with
a success therefore gives the same outcome (successful, failed or skipped) with fewer queries; only which
successful perturbation is reported may differ, and the benchmark records outcomes. Pruthi2019 edits one
word, so its whole search is that one step: about 100 candidates per sentence at the default query budget,
of which a successful attack needs on average far fewer.

Source: ``textattack.search_methods.BeamSearch.perform_search`` (textattack 0.3.10, MIT licence), with the
chunked evaluation added.
"""

from __future__ import annotations

import copy
from typing import Any

import lru  # lru-dict: textattack's own dependency and the type of its caches
import numpy as np

from w2sbench_plugins.adversarial._perturbations import import_textattack

__all__ = ["early_stopping", "forget_shared_candidates", "shared_transformations"]

# Sentences whose candidate lists one process keeps for the next model attacked (per recipe): a run attacks
# 200 sentences per model; each list holds a few hundred perturbed texts (Pruthi).
SHARED_TRANSFORMATION_ENTRIES = 512
_transformation_caches: dict[str, Any] = {}


def _search_class() -> type:
    """The search method's class; made on first use because textattack is imported lazily (slow to import)."""
    ta = import_textattack()
    succeeded = ta.goal_function_results.GoalFunctionResultStatus.SUCCEEDED

    class EarlyStoppingGreedySearch(ta.search_methods.GreedySearch):  # type: ignore[name-defined]  # imported lazily
        """``GreedySearch`` whose steps evaluate their candidates ``chunk`` at a time and stop at a success."""

        def __init__(self, chunk: int) -> None:
            super().__init__()
            self.chunk = chunk

        def perform_search(self, initial_result: Any) -> Any:
            beam = [initial_result.attacked_text]
            best_result = initial_result
            while best_result.goal_status != succeeded:
                candidates = [
                    t for text in beam for t in self.get_transformations(text, original_text=initial_result.attacked_text)
                ]
                if not candidates:
                    return best_result  # no perturbation left to try: give up, as textattack does
                results: list[Any] = []
                search_over = False
                for start in range(0, len(candidates), self.chunk):
                    chunk_results, search_over = self.get_goal_results(candidates[start : start + self.chunk])
                    results += chunk_results
                    if search_over or any(r.goal_status == succeeded for r in chunk_results):
                        break
                if not results:  # the query budget was spent before this step
                    return best_result
                scores = np.array([r.score for r in results])
                best_result = results[scores.argmax()]
                if search_over:
                    return best_result
                # a success ends the loop above; otherwise every candidate was evaluated, as in textattack
                beam = [candidates[i] for i in (-scores).argsort()[: self.beam_width]]
            return best_result

    return EarlyStoppingGreedySearch


def early_stopping(attack: Any) -> Any:
    """``attack`` with its ``GreedySearch`` replaced by the early-stopping one (same goal function, constraints
    and transformation); any other search method is returned unchanged."""
    ta = import_textattack()
    if type(attack.search_method) is not ta.search_methods.GreedySearch:
        return attack
    search = _search_class()(chunk=attack.goal_function.batch_size)
    constraints = [*attack.pre_transformation_constraints, *attack.constraints]
    return ta.Attack(attack.goal_function, constraints, attack.transformation, search)


def _detached(texts: tuple[Any, ...]) -> tuple[Any, ...]:
    """Copies of textattack's AttackedText objects with their own ``attack_attrs``: textattack edits a result's
    attributes when the attack ends (``free_memory``), which must not reach the copies other models read."""
    copies = []
    for text in texts:
        twin = copy.copy(text)
        twin.attack_attrs = dict(text.attack_attrs)
        copies.append(twin)
    return tuple(copies)


class _SharedCandidates:
    """textattack's transformation cache, least-recently-used, that keeps its entries when textattack clears its
    caches (it does after every attacked example); entries go in and out as copies (``_detached``)."""

    def __init__(self, entries: int) -> None:
        self._entries: Any = lru.LRU(entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __getitem__(self, key: Any) -> Any:
        return _detached(self._entries[key])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._entries[key] = _detached(tuple(value))

    def clear(self) -> None:
        pass  # the next example, or the next model's attack, may need them


def shared_transformations(attack: Any, recipe: str) -> Any:
    """``attack`` reading and filling one cache of perturbed candidates per recipe for the whole process.

    textattack caches a deterministic transformation's candidates per text (Pruthi's are deterministic;
    DeepWordBug's are random and not cached), but only while one example is attacked. A run attacks every
    strong cell and seed on the same sentences, and would build each sentence's few hundred candidate texts
    again for every model (about a quarter of an attacked sentence's time, profiled). Candidates depend only
    on the text and the transformation, not on the model, so the models share them; the cache keeps at most
    ``SHARED_TRANSFORMATION_ENTRIES`` texts' lists, least recently used out first."""
    if attack.use_transformation_cache:
        attack.transformation_cache = _transformation_caches.setdefault(recipe, _SharedCandidates(SHARED_TRANSFORMATION_ENTRIES))
    return attack


def forget_shared_candidates() -> None:
    """Empty the process's shared candidate caches (benchmarks measure a first model's attack with it)."""
    _transformation_caches.clear()
