"""Hook specifications: the whole plugin surface of w2sbench.

Every hook returns a list of objects; the core collects them into registries. Built-in plugins
(``w2sbench_plugins``) implement these hooks exactly like a third-party package does, through the
``w2sbench`` entry-point group. Each hook has a one-line docstring; ``tests/test_hookspecs.py``
fails when a hook is added without one or without a CONTRIBUTING.md section headed by its signature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from w2sbench.interfaces import (
        Exporter,
        ModelFamily,
        NamedPair,
        Strategy,
        TrustProperty,
    )

__all__ = ["hookspec", "hookimpl", "PROJECT_NAME"]

PROJECT_NAME = "w2sbench"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def w2sbench_register_models() -> list[ModelFamily]:  # type: ignore[empty-body]
    """Return a list of ``ModelFamily`` objects that turn model names (e.g. ``pythia-1b``) into ``ModelSpec``s."""


@hookspec
def w2sbench_register_pairs() -> list[NamedPair]:  # type: ignore[empty-body]
    """Return a list of ``NamedPair`` objects: named weak/strong combinations such as the offline default."""


@hookspec
def w2sbench_register_strategies() -> list[Strategy]:  # type: ignore[empty-body]
    """Return a list of ``Strategy`` objects: which phases are regularized and the weak-to-strong transfer loss."""


@hookspec
def w2sbench_register_trust_properties() -> list[TrustProperty]:  # type: ignore[empty-body]
    """Return a list of ``TrustProperty`` objects: a trust property's data, regularizer and metrics."""


@hookspec
def w2sbench_register_trust_metrics() -> list[TrustProperty]:  # type: ignore[empty-body]
    """Deprecated name of ``w2sbench_register_trust_properties`` (one release); works the same, with a warning."""


@hookspec
def w2sbench_register_exporters() -> list[Exporter]:  # type: ignore[empty-body]
    """Return a list of ``Exporter`` objects that write run results in some format (leaderboard submission, CSV, ...)."""
