"""Loads plugins from the ``w2sbench`` entry-point group and collects what they register.

A plugin that fails to import, raises inside a hook, returns a malformed object or registers a
name that is already taken is reported by name; the other plugins keep working. Set
``W2SBENCH_DISABLE_PLUGINS=name1,name2`` to skip named entry points.
"""

from __future__ import annotations

import importlib.metadata
import os
import traceback
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Generic, TypeVar

import pluggy

from w2sbench import hookspecs
from w2sbench.errors import W2SBenchError, did_you_mean
from w2sbench.interfaces import Exporter, ModelFamily, NamedPair, Strategy, TrustProperty

__all__ = ["PluginInfo", "PluginProblem", "Registry", "Plugins", "get_plugins", "reset_plugins", "DISABLE_ENV"]

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
DISABLE_ENV = "W2SBENCH_DISABLE_PLUGINS"

T = TypeVar("T")


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin came from."""

    name: str
    package: str
    version: str
    module: str


@dataclass(frozen=True)
class PluginProblem:
    """A plugin fault that was contained: the plugin is named so the user knows whom to blame."""

    plugin: str
    package: str
    problem: str
    detail: str = ""
    # the hook that failed; None when the plugin never loaded (it may have registered anything)
    hook: str | None = None

    def __str__(self) -> str:
        return f'plugin "{self.plugin}" (package {self.package}): {self.problem}'


@dataclass
class Registry(Generic[T]):
    """Named objects of one kind, with did-you-mean lookups."""

    kind: str  # "strategy", "trust property", ...
    items: dict[str, T] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # name -> plugin name
    # plugins that failed before registering anything of this kind: an unknown name may be theirs
    broken: list[PluginProblem] = field(default_factory=list)

    def get(self, name: str) -> T:
        try:
            return self.items[name]
        except KeyError:
            listing = ", ".join(sorted(self.items)) or "(none registered)"
            problem = f'Unknown {self.kind} "{name}".'
            fix = f"Choose one of: {listing}. `w2sbench list` shows everything registered."
            if self.broken:
                failed = ", ".join(f'"{p.plugin}" (package {p.package})' for p in self.broken)
                problem += f" It may belong to plugin {failed}, which failed to register (the warning above says why)."
                fix = (f"Fix or reinstall that plugin (`w2sbench plugins` shows its error; {DISABLE_ENV}="
                       f"{','.join(p.plugin for p in self.broken)} silences it), or " + fix[0].lower() + fix[1:])
            raise W2SBenchError(problem + did_you_mean(name, self.items), fix) from None

    def names(self) -> list[str]:
        return list(self.items)

    def __contains__(self, name: object) -> bool:
        return name in self.items


_DEPRECATED_HOOKS = {"w2sbench_register_trust_metrics": "w2sbench_register_trust_properties"}

_HOOKS: dict[str, tuple[str, type, str]] = {
    # hook name -> (registry attribute, expected type, kind shown to users)
    "w2sbench_register_models": ("model_families", ModelFamily, "model family"),
    "w2sbench_register_pairs": ("pairs", NamedPair, "pair"),
    "w2sbench_register_strategies": ("strategies", Strategy, "strategy"),
    "w2sbench_register_trust_properties": ("trust_properties", TrustProperty, "trust property"),
    # Deprecated name of the hook above (one release): collected into the same registry, with a warning.
    "w2sbench_register_trust_metrics": ("trust_properties", TrustProperty, "trust property"),
    "w2sbench_register_exporters": ("exporters", Exporter, "exporter"),
}


class Plugins:
    """The loaded plugin set: a pluggy manager plus the registries its hooks filled."""

    def __init__(self, extra_plugins: Iterable[tuple[str, Any]] = (), load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.problems: list[PluginProblem] = []
        disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        self.disabled = sorted(disabled)
        if load_entry_points:
            self._load_entry_points(disabled)
        for name, plugin in extra_plugins:
            if name not in disabled:
                self.manager.register(plugin, name=name)
                self.info[name] = PluginInfo(name, "(registered in code)", "", getattr(plugin, "__name__", repr(plugin)))

    def _load_entry_points(self, disabled: set[str]) -> None:
        """Load the entry-point group through pluggy's own loader, one name at a time.

        pluggy skips blocked names (``set_blocked``) and names already registered; loading each name
        on its own keeps a plugin that fails to import from stopping the others.
        """
        for name in disabled:
            self.manager.set_blocked(name)
        first_value: dict[str, tuple[str, str]] = {}  # entry-point name -> (value, package)
        for dist in importlib.metadata.distributions():
            package = dist.metadata["name"] or "?"
            for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
                if ep.name in disabled:
                    continue
                if ep.name not in first_value:
                    first_value[ep.name] = (ep.value, package)
                elif first_value[ep.name][0] != ep.value:  # the same distribution seen twice on sys.path is fine
                    self.problems.append(
                        PluginProblem(ep.name, package, f'entry point name "{ep.name}" is already used by another package')
                    )
        for name, (value, package) in first_value.items():
            try:
                self.manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
            except Exception as exc:  # noqa: BLE001 - any import error is the plugin's fault
                self.problems.append(
                    PluginProblem(
                        name,
                        package,
                        f"failed to load ({type(exc).__name__}: {exc}); disable it with {DISABLE_ENV}={name}",
                        traceback.format_exc(),
                        hook=None,
                    )
                )
                continue
            self.info[name] = PluginInfo(name, package, "", value)
        # The versions pluggy recorded while loading, read once for every plugin.
        versions = {plugin: dist.version for plugin, dist in self.manager.list_plugin_distinfo()}
        for name, info in self.info.items():
            self.info[name] = replace(info, version=versions.get(self.manager.get_plugin(name), ""))

    # ----------------------------------------------------------------- registries

    def _collect(self, hook_name: str, registry: Registry[Any] | None = None) -> Registry[Any]:
        attribute, expected, kind = _HOOKS[hook_name]
        registry = registry if registry is not None else Registry(kind)
        hook = getattr(self.manager.hook, hook_name)
        for impl in hook.get_hookimpls():  # registration order: the first registration of a name wins
            if hook_name in _DEPRECATED_HOOKS:
                warnings.warn(
                    f'plugin "{impl.plugin_name}" implements {hook_name}, renamed {_DEPRECATED_HOOKS[hook_name]}; '
                    "the old name works for one more release.",
                    DeprecationWarning,
                    stacklevel=2,
                )
            plugin_name = impl.plugin_name
            package = self.info[plugin_name].package if plugin_name in self.info else "?"
            try:
                returned = impl.function()
            except Exception as exc:  # noqa: BLE001 - a plugin bug must not take the others down
                self.problems.append(
                    PluginProblem(
                        plugin_name,
                        package,
                        f"{hook_name} raised {type(exc).__name__}: {exc}",
                        traceback.format_exc(),
                        hook=hook_name,
                    )
                )
                continue
            if returned is None:
                continue
            if not isinstance(returned, (list, tuple)):
                returned = [returned]
            for obj in returned:
                name = getattr(obj, "name", None)
                if not isinstance(obj, expected) or not isinstance(name, str) or not name:
                    self.problems.append(
                        PluginProblem(
                            plugin_name,
                            package,
                            f"{hook_name} returned {obj!r}, which is not a named {expected.__name__}",
                            hook=hook_name,
                        )
                    )
                    continue
                if name in registry.items:
                    self.problems.append(
                        PluginProblem(
                            plugin_name,
                            package,
                            f'{kind} "{name}" is already registered by plugin "{registry.owners[name]}"; '
                            "the first registration is kept",
                        )
                    )
                    continue
                registry.items[name] = obj
                registry.owners[name] = plugin_name
        registry.broken = [p for p in self.problems if p.hook is None or _HOOKS[p.hook][0] == attribute]
        return registry

    @cached_property
    def model_families(self) -> Registry[ModelFamily]:
        return self._collect("w2sbench_register_models")

    @cached_property
    def pairs(self) -> Registry[NamedPair]:
        return self._collect("w2sbench_register_pairs")

    @cached_property
    def strategies(self) -> Registry[Strategy]:
        return self._collect("w2sbench_register_strategies")

    @cached_property
    def trust_properties(self) -> Registry[TrustProperty]:
        registry = self._collect("w2sbench_register_trust_properties")
        return self._collect("w2sbench_register_trust_metrics", registry)

    @property
    def trust_metrics(self) -> Registry[TrustProperty]:
        """Deprecated name of ``trust_properties`` (one release)."""
        return self.trust_properties

    @cached_property
    def exporters(self) -> Registry[Exporter]:
        return self._collect("w2sbench_register_exporters")

    def collect_all(self) -> None:
        """Fill every registry now, so that every plugin problem is known."""
        for attribute in dict.fromkeys(a for a, _, _ in _HOOKS.values()):
            getattr(self, attribute)


_PLUGINS: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide plugin set, loaded on first use."""
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = Plugins()
    return _PLUGINS


def reset_plugins(plugins: Plugins | None = None) -> None:
    """Replace the process-wide plugin set (tests use this to register plugins in code)."""
    global _PLUGINS
    _PLUGINS = plugins
