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


def test_list_options_keeps_keys_and_default_values_whole_at_80_columns(capsys, monkeypatch):
    from w2sbench.cli_tables import option_table

    monkeypatch.delenv("COLUMNS", raising=False)
    capsys.readouterr()
    assert main(["list", "options"]) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    words = {w for line in text.splitlines() for w in line.replace("│", " ").split()}
    rows = option_table(get_plugins().trust_properties.items.values())
    assert len(rows) > 50
    for setting, default, _ in rows:
        flag, name = setting.split(" ")
        owner, key = name.split(".", 1)
        assert f"{flag} {owner}.KEY=VALUE" in text, setting
        assert key in words, setting  # the key on one line, never cut
        for word in default.split():  # a list default wraps only between its items
            assert word in words, (setting, word)


def test_list_without_an_argument_lists_every_kind_as_list_what_does(capsys, monkeypatch):
    from w2sbench.cli_parser import LIST_KINDS

    monkeypatch.delenv("COLUMNS", raising=False)
    capsys.readouterr()
    alone = {}
    for what in LIST_KINDS:
        assert main(["list", what]) == 0
        alone[what] = capsys.readouterr().out
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 80
    headings = [line.strip(" ─") for line in text.splitlines() if line.startswith("─")]
    assert headings == [f"w2sbench list {what}" for what in LIST_KINDS]
    # under each heading, exactly what `w2sbench list WHAT` prints
    sections = text.split("\n")
    starts = [i for i, line in enumerate(sections) if line.startswith("─")] + [len(sections) - 1]
    for what, start, end in zip(LIST_KINDS, starts, starts[1:]):
        assert "\n".join(sections[start + 1:end]) + "\n" == alone[what], what
