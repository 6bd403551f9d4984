"""Every hook is documented: a one-line docstring and a section in CONTRIBUTING.md."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from w2sbench import hookspecs

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("w2sbench_")]


def test_there_are_hooks():
    assert "w2sbench_register_trust_metrics" in HOOKS


def test_every_hook_has_a_one_line_docstring():
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc, f"hook {name} has no docstring"
        assert len(doc.strip().splitlines()) == 1, f"hook {name}'s docstring is not one line"


def documented_signature(name: str) -> str:
    """``name(params) -> return``, as the hook is declared (annotations are strings under PEP 563)."""
    signature = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(str(p) for p in signature.parameters.values())
    assert signature.return_annotation is not inspect.Signature.empty, f"hook {name} declares no return type"
    return f"{name}({params}) -> {signature.return_annotation}"


def test_every_hook_has_a_section_headed_by_its_signature():
    """As datasette's test_plugin_hooks_are_documented: a CONTRIBUTING.md heading per hook, with its signature."""
    headings = [line for line in (Path(__file__).parents[1] / "CONTRIBUTING.md").read_text().splitlines() if line.startswith("### ")]
    for name in HOOKS:
        assert f"### `{documented_signature(name)}`" in headings, f"hook {name} has no section headed by its signature"


def test_signature_check_fails_for_a_missing_return_type():
    def w2sbench_register_widgets():  # a hook as someone might add it, without a return type
        """Return widgets."""

    hookspecs.w2sbench_register_widgets = w2sbench_register_widgets  # type: ignore[attr-defined]
    try:
        with pytest.raises(AssertionError, match="declares no return type"):
            documented_signature("w2sbench_register_widgets")
    finally:
        del hookspecs.w2sbench_register_widgets  # type: ignore[attr-defined]


def test_the_old_trust_metric_names_work_for_one_release_with_a_warning():
    import w2sbench.interfaces as interfaces
    from w2sbench import hookimpl
    from w2sbench.plugin_manager import Plugins
    from w2sbench_plugins.fairness import Fairness

    with pytest.warns(DeprecationWarning, match="renamed TrustProperty"):
        assert interfaces.TrustMetric is interfaces.TrustProperty

    class OldStyle:
        @staticmethod
        @hookimpl
        def w2sbench_register_trust_metrics():
            return [Fairness()]

    plugins = Plugins(extra_plugins=[("old-style", OldStyle)], load_entry_points=False)
    with pytest.warns(DeprecationWarning, match='plugin "old-style" implements w2sbench_register_trust_metrics, renamed'):
        assert plugins.trust_properties.names() == ["fairness"]
    assert plugins.trust_metrics is plugins.trust_properties


def test_the_old_metrics_flag_still_selects_properties_with_a_warning(capsys):
    from w2sbench.cli import main

    with pytest.warns(FutureWarning, match="--metrics is renamed --properties; the old name works for one more release."):
        assert main(["run", "--metrics", "fairnes", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert 'Unknown trust property "fairnes". Did you mean "fairness"?' in err
