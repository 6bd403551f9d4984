"""Every `w2sbench list` table reads in an 80-column log file: identifiers whole, nothing truncated."""

from __future__ import annotations

import pytest

from w2sbench.cli import main
from w2sbench.plugin_manager import get_plugins


@pytest.mark.parametrize("what", ["pairs", "models", "strategies", "metrics", "exporters"])
def test_list_tables_fit_80_columns_with_identifiers_whole(what, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # output to a pipe: rich lays out for 80 columns
    capsys.readouterr()
    assert main(["list", what]) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    plugins = get_plugins()
    plugins.collect_all()
    names = {
        "pairs": list(plugins.pairs.names()),
        "models": [m for f in plugins.model_families.items.values() for m in f.names()],
        "strategies": list(plugins.strategies.names()),
        "metrics": [x.name for m in plugins.trust_properties.items.values() for x in m.metrics],
        "exporters": list(plugins.exporters.names()),
    }[what]
    assert names
    for name in names:
        assert name in text, name
