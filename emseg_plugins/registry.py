"""Plugin registries: a name bound to a builder ``build(cfg) -> object``.

Every plugin, built-in or third-party, arrives the same way: an entry point in one of the groups

    emseg_plugins.models   emseg_plugins.losses   emseg_plugins.datasets   emseg_plugins.configs

whose name is the plugin name and whose value is the builder (``package.module:function``). A
registry reads its group the first time it is used. A plugin whose module fails to import is kept
as *broken*: a warning names it and its distribution, every other plugin still loads, and selecting
it raises :class:`PluginError` with the original error. Two sources claiming one name make that
name *conflicting*: a warning at discovery, an error naming both sources when selected.

In-process code (notebooks, tests) may also use ``@MODELS.register("name")``.
"""
from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

from emseg_plugins.errors import PluginError, PluginWarning

Builder = Callable[..., Any]


@dataclass
class PluginRecord:
    """One registered name: its builder (or the import error) and where it came from."""

    name: str
    source: str  # distribution name, or the defining module for in-process registrations
    target: str  # "module:function"
    builder: Builder | None = None
    error: str | None = None
    rivals: list[str] = field(default_factory=list)  # other sources claiming the same name

    @property
    def status(self) -> str:
        if self.rivals:
            return "conflict"
        return "broken" if self.error else "ok"


class Registry:
    """Names -> builders for one plugin kind (``model``, ``loss``, ...), fed by one entry-point group."""

    def __init__(self, kind: str, group: str):
        self.kind = kind
        self.group = group
        self._records: dict[str, PluginRecord] = {}
        self._discovered = False

    # -- registration ---------------------------------------------------------------------
    def register(self, name: str | None = None, *, source: str | None = None) -> Callable[[Builder], Builder]:
        """Decorator registering ``builder`` under ``name`` (default: the function's name)."""

        def decorator(builder: Builder) -> Builder:
            key = name or builder.__name__
            record = PluginRecord(key, source or builder.__module__, _target_of(builder), builder=builder)
            existing = self._records.get(key)
            if existing is not None and existing.builder is not builder:
                raise PluginError(
                    f"{self.kind} {key!r} is registered twice: by {existing.source} ({existing.target}) "
                    f"and by {record.source} ({record.target}); rename one of them"
                )
            self._records[key] = record
            return builder

        return decorator

    def discover(self) -> None:
        """Load every entry point of this registry's group (once)."""
        if self._discovered:
            return
        self._discovered = True
        for ep in sorted(entry_points(group=self.group), key=lambda e: (e.name, _dist_name(e))):
            self._add_entry_point(ep)

    def _add_entry_point(self, ep: EntryPoint) -> None:
        source = _dist_name(ep)
        record = PluginRecord(ep.name, source, ep.value)
        try:
            record.builder = ep.load()
        except Exception as exc:  # any import-time failure of a third-party plugin
            record.error = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"{self.kind} plugin {ep.name!r} from distribution {source!r} failed to load "
                f"({record.error}); the other plugins are unaffected",
                PluginWarning,
                stacklevel=2,
            )
        existing = self._records.get(ep.name)
        if existing is None:
            self._records[ep.name] = record
        elif existing.target != record.target or existing.source != record.source:
            if existing.builder is not None and existing.builder is record.builder:
                return  # same object reached twice (e.g. decorator + entry point)
            existing.rivals.append(f"{record.source} ({record.target})")
            warnings.warn(
                f"{self.kind} {ep.name!r} is claimed by {existing.source} ({existing.target}) and by "
                f"{record.source} ({record.target}); selecting it is an error until one is renamed",
                PluginWarning,
                stacklevel=2,
            )

    # -- lookup -----------------------------------------------------------------------------
    def get(self, name: str) -> Builder:
        """The builder registered under ``name``; :class:`PluginError` if unknown, broken or conflicting."""
        self.discover()
        record = self._records.get(name)
        if record is None:
            close = difflib.get_close_matches(name, list(self._records), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"available: {', '.join(self.names()) or 'none'}"
            raise PluginError(f"unknown {self.kind} {name!r}; {hint} (`emseg plugins` lists them all)")
        if record.rivals:
            sources = " and ".join([f"{record.source} ({record.target})", *record.rivals])
            raise PluginError(f"{self.kind} {name!r} is claimed by {sources}; uninstall or rename one")
        if record.builder is None:
            raise PluginError(
                f"{self.kind} {name!r} from distribution {record.source!r} failed to load: {record.error}"
            )
        return record.builder

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Look ``name`` up and call its builder."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._records)

    def records(self) -> list[PluginRecord]:
        """Every registered name with its source and status, sorted by name."""
        self.discover()
        return [self._records[n] for n in sorted(self._records)]

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._records

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r})"


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "<unknown distribution>"


def _target_of(builder: Builder) -> str:
    return f"{builder.__module__}:{getattr(builder, '__qualname__', repr(builder))}"


MODELS = Registry("model", "emseg_plugins.models")
LOSSES = Registry("loss", "emseg_plugins.losses")
DATASETS = Registry("dataset", "emseg_plugins.datasets")
CONFIGS = Registry("config", "emseg_plugins.configs")

REGISTRIES: dict[str, Registry] = {"models": MODELS, "losses": LOSSES, "datasets": DATASETS, "configs": CONFIGS}
