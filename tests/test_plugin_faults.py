"""Plugin faults are contained and named; names get did-you-mean errors."""

from __future__ import annotations

import pytest

from w2sbench import hookimpl
from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import Strategy
from w2sbench.plugin_manager import Plugins


class Raising:
    @hookimpl
    def w2sbench_register_strategies(self):
        raise RuntimeError("boom")


class Malformed:
    @hookimpl
    def w2sbench_register_strategies(self):
        return ["not a strategy"]


class Duplicate:
    @hookimpl
    def w2sbench_register_strategies(self):
        return [Strategy("vanilla", "a second vanilla", False, False)]


class Extra:
    @hookimpl
    def w2sbench_register_strategies(self):
        return [Strategy("extra", "fine", False, True)]


class FunctionLoss:
    @hookimpl
    def w2sbench_register_strategies(self):
        return [Strategy("fn-loss", "a plain function as loss", False, False, loss=lambda lo, t, w, p: lo.sum())]


def test_faulty_plugins_are_named_and_others_keep_working():
    plugins = Plugins(
        extra_plugins=[("raising", Raising()), ("malformed", Malformed()), ("dup", Duplicate()), ("extra", Extra()), ("fn", FunctionLoss())]
    )
    names = plugins.strategies.names()
    assert {"vanilla", "weak-tft", "weak-wts-tft", "extra"} <= set(names)
    assert plugins.strategies.get("vanilla").description != "a second vanilla"
    problems = {p.plugin: p.problem for p in plugins.problems}
    assert "boom" in problems["raising"]
    assert "not a named Strategy" in problems["malformed"]
    assert "already registered" in problems["dup"]
    assert 'Strategy "fn-loss": loss must be a TransferLoss, got the function' in problems["fn"]
    assert "extra" not in problems


def test_disable_env_var_skips_a_named_plugin(monkeypatch):
    monkeypatch.setenv("W2SBENCH_DISABLE_PLUGINS", "fairness")
    plugins = Plugins()
    assert "fairness" not in plugins.trust_properties
    assert "fairness" in plugins.disabled


def test_unknown_names_get_did_you_mean():
    plugins = Plugins()
    with pytest.raises(W2SBenchError, match='Did you mean "weak-tft"'):
        plugins.strategies.get("weak-tfts")
    with pytest.raises(W2SBenchError, match='Did you mean "fairness"'):
        plugins.trust_properties.get("fairnes")


def test_builtin_plugins_come_from_entry_points():
    plugins = Plugins()
    assert {"models", "strategies", "fairness"} <= set(plugins.info)
    assert plugins.info["fairness"].package == "w2sbench"
    assert plugins.info["fairness"].module == "w2sbench_plugins.fairness"


def test_an_unknown_name_points_at_the_plugins_that_failed_to_register():
    from w2sbench.plugin_manager import PluginProblem

    plugins = Plugins(extra_plugins=[("raising", Raising())])
    with pytest.raises(W2SBenchError) as err:
        plugins.strategies.get("broken-strat")
    assert err.value.problem.startswith(
        'Unknown strategy "broken-strat". It may belong to plugin "raising" (package (registered in code)), which '
        "failed to register (the warning above says why)."
    )
    assert err.value.fix.startswith("Fix or reinstall that plugin (`w2sbench plugins` shows its error; "
                                    "W2SBENCH_DISABLE_PLUGINS=raising silences it), or choose one of: ")
    with pytest.raises(W2SBenchError) as err:  # its strategies hook failed: the trust properties are not its
        plugins.trust_properties.get("telepathy")
    assert "raising" not in err.value.problem and err.value.fix.startswith("Choose one of: ")

    unloaded = Plugins()  # a plugin that never imported may have registered anything
    unloaded.problems.append(PluginProblem("gone", "gone-pkg", "failed to load (ImportError: no numpyy)"))
    with pytest.raises(W2SBenchError, match='plugin "gone" \\(package gone-pkg\\), which failed to register'):
        unloaded.trust_properties.get("telepathy")
