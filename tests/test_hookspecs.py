"""Every hook is documented: a one-line docstring and a section in CONTRIBUTING.md."""

from __future__ import annotations

import inspect
from pathlib import Path

from w2sbench import hookspecs

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("w2sbench_")]


def test_there_are_hooks():
    assert "w2sbench_register_trust_metrics" in HOOKS


def test_every_hook_has_a_one_line_docstring():
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc, f"hook {name} has no docstring"
        assert len(doc.strip().splitlines()) == 1, f"hook {name}'s docstring is not one line"


def test_every_hook_is_documented_in_contributing():
    text = (Path(__file__).parents[1] / "CONTRIBUTING.md").read_text()
    for name in HOOKS:
        assert f"`{name}`" in text, f"hook {name} is not documented in CONTRIBUTING.md"
