"""Plugin registries: a name bound to a builder ``build(cfg) -> object``.

Every plugin, built-in or third-party, arrives the same way: an entry point in one of the groups

    emseg_plugins.models   emseg_plugins.losses   emseg_plugins.datasets   emseg_plugins.configs

whose name is the plugin name and whose value is the builder (``package.module:function``). A
registry reads its group the first time it is used. A plugin whose module fails to import is kept
as *broken*: a warning names it and its distribution, every other plugin still loads, and selecting
it raises :class:`PluginError` with the original error. Two sources claiming one name make that
name *conflicting*: a warning at discovery, an error naming both sources when selected.

In-process code (notebooks, tests) may also use ``@MODELS.register("name")``. A *provider* contributes
records computed at run time under a name prefix, for frameworks whose plugins are only known once they are
imported. Providers arrive like every plugin, through the entry-point group ``emseg_plugins.providers``:
the entry-point name is the prefix and its value a :class:`Provider` (``ext = ext_bridge:PROVIDER`` offers
the framework's architectures as ``ext.<name>``). A registry imports a provider only when a name under its
prefix is looked up or the registry is listed in full; a provider's records must carry its prefix
(``ext.<name>``, or the prefix itself for a config node). In-process providers use ``Registry.add_provider``.
A registry may check what a builder returns (``check``): a model builder must return an ``nn.Module``, a
dataset one an object with ``train_dataset``/``val_dataset``; anything else is a :class:`PluginError` naming
plugin and distribution.
"""
from __future__ import annotations

import difflib
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from emseg_plugins.errors import PluginError, PluginWarning

Builder = Callable[..., Any]
Check = Callable[[Any], "str | None"]
RecordSource = Callable[[], "list[PluginRecord]"]
PROVIDERS_GROUP = "emseg_plugins.providers"


@dataclass
class PluginRecord:
    """One registered name: its builder (or the import error) and where it came from."""

    name: str
    source: str  # distribution name, or the defining module for in-process registrations
    target: str  # "module:function"
    builder: Builder | None = None
    error: str | None = None
    rivals: list[str] = field(default_factory=list)  # other sources claiming the same name
    version: str = ""  # the distribution's version ("" for in-process registrations)

    @property
    def doc(self) -> str:
        """The first line of the builder's docstring, else of its module's ("" when neither has one)."""
        if self.builder is None:
            return ""
        module = sys.modules.get(getattr(self.builder, "__module__", "") or "")
        text = (self.builder.__doc__ or getattr(module, "__doc__", None) or "").strip()
        return text.splitlines()[0].strip() if text else ""

    @property
    def status(self) -> str:
        if self.rivals:
            return "conflict"
        return "broken" if self.error else "ok"


class Provider(Protocol):
    """What an ``emseg_plugins.providers`` entry point names. Keep its module light: import the framework it
    bridges inside ``records``/``status``, which run only when one of its names is wanted."""

    def records(self, kind: str) -> list[PluginRecord]:
        """The records for the registry of ``kind`` (``model``, ``loss``, ``dataset``, ``config``), names prefixed."""

    def status(self) -> str:
        """One line for ``emseg plugins``: whether the framework was found, and what it provides."""


@dataclass
class ProviderEntry:
    """One ``emseg_plugins.providers`` entry point: its prefix (the entry-point name) and where it comes from."""

    name: str
    source: str
    target: str
    entry_point: EntryPoint

    @property
    def prefix(self) -> str:
        return f"{self.name}."

    def load(self) -> Provider:
        """The provider object (imported on the first call); :class:`PluginError` when its module fails to import."""
        return _load_provider(self.entry_point)

    def records(self, kind: str) -> list[PluginRecord]:
        """The provider's records for ``kind``; :class:`PluginError` for a record outside its prefix."""
        records = list(self.load().records(kind))
        for record in records:
            if not _claims(self.prefix, record.name):
                raise PluginError(f"provider {self.name!r} from distribution {self.source!r} ({self.target}) offered "
                                  f"{kind} {record.name!r}, outside its prefix {self.prefix!r}")
        return records


@cache
def _load_provider(ep: EntryPoint) -> Provider:
    try:
        return ep.load()
    except Exception as exc:  # any import-time failure of a third-party provider
        raise PluginError(f"provider {ep.name!r} from distribution {_dist_name(ep)!r} ({ep.value}) failed to load "
                          f"({type(exc).__name__}: {exc})") from None


def providers() -> list[ProviderEntry]:
    """Every installed provider entry point, by name; reading them imports nothing."""
    eps = sorted(entry_points(group=PROVIDERS_GROUP), key=lambda e: (e.name, _dist_name(e)))
    return [ProviderEntry(ep.name, _dist_name(ep), ep.value, ep) for ep in eps]


def _claims(prefix: str, name: str) -> bool:
    """Whether a provider registered under ``prefix`` (``ext.``) owns ``name`` (``ext.unet``, or ``ext`` itself)."""
    return name.startswith(prefix) or name == prefix.rstrip(".")


class Registry:
    """Names -> builders for one plugin kind (``model``, ``loss``, ...), fed by one entry-point group."""

    def __init__(self, kind: str, group: str, check: Check | None = None, expects: str = ""):
        self.kind = kind
        self.group = group
        self.check = check  # check(obj) -> problem or None, applied to what build() returns
        self.expects = expects  # what a builder must return, for error messages
        self._records: dict[str, PluginRecord] = {}
        self._discovered = False
        self._providers: list[tuple[str, RecordSource]] = []  # (name prefix, record source) not yet loaded
        self._provider_errors: dict[str, str] = {}  # prefix -> why its provider gave no records

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
        """Load every entry point of this registry's group (once) and note the providers (not imported yet)."""
        if self._discovered:
            return
        self._discovered = True
        for ep in sorted(entry_points(group=self.group), key=lambda e: (e.name, _dist_name(e))):
            self._add_entry_point(ep)
        for entry in providers():
            self._providers.append((entry.prefix, partial(entry.records, self.kind)))

    def add_provider(self, provider: RecordSource, prefix: str = "") -> None:
        """Take extra records from ``provider()`` the first time a name under ``prefix`` is looked up
        (or the registry is listed). Its records obey the same rules as entry points (conflicts, broken)."""
        self._providers.append((prefix, provider))

    def _load_providers(self, name: str | None = None) -> None:
        """Run the pending providers that claim ``name`` (all of them when ``name`` is None)."""
        self.discover()
        pending = [(p, f) for p, f in self._providers if name is None or _claims(p, name)]
        for item in pending:
            self._providers.remove(item)
            prefix, provider = item
            try:
                records = list(provider())
            except Exception as exc:  # noqa: BLE001  # a provider's failure must not hide the other plugins
                self._provider_errors[prefix] = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
                warnings.warn(f"{self.kind} plugins under {prefix!r}* could not be listed ({self._provider_errors[prefix]})",
                              PluginWarning, stacklevel=3)
                continue
            for record in records:
                self._add_record(record)

    def _add_entry_point(self, ep: EntryPoint) -> None:
        source = _dist_name(ep)
        dist = getattr(ep, "dist", None)
        record = PluginRecord(ep.name, source, ep.value, version=getattr(dist, "version", "") or "")
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
        self._add_record(record)

    def _add_record(self, record: PluginRecord) -> None:
        existing = self._records.get(record.name)
        if existing is None:
            self._records[record.name] = record
        elif existing.target != record.target or existing.source != record.source:
            if existing.builder is not None and existing.builder is record.builder:
                return  # same object reached twice (e.g. decorator + entry point)
            existing.rivals.append(f"{record.source} ({record.target})")
            warnings.warn(
                f"{self.kind} {record.name!r} is claimed by {existing.source} ({existing.target}) and by "
                f"{record.source} ({record.target}); selecting it is an error until one is renamed",
                PluginWarning,
                stacklevel=3,
            )

    # -- lookup -----------------------------------------------------------------------------
    def get(self, name: str) -> Builder:
        """The builder registered under ``name``; :class:`PluginError` if unknown, broken or conflicting."""
        record = self.record(name)
        return record.builder  # type: ignore[return-value]  # record() refused the ones without

    def record(self, name: str) -> PluginRecord:
        """The usable record of ``name``; :class:`PluginError` if unknown, broken or conflicting."""
        self._load_providers(name)
        record = self._records.get(name)
        if record is None:
            failed = [why for prefix, why in self._provider_errors.items() if _claims(prefix, name)]
            if failed:
                raise PluginError(f"unknown {self.kind} {name!r}: the plugins under its prefix could not be listed ({failed[0]})")
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
        return record

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Look ``name`` up, call its builder and check what it returned (``check``)."""
        record = self.record(name)
        obj = record.builder(*args, **kwargs)  # type: ignore[misc]
        problem = self.check(obj) if self.check is not None else None
        if problem:
            raise PluginError(f"{self.kind} {name!r} from distribution {record.source!r} ({record.target}) {problem}; "
                              f"its builder must return {self.expects}")
        return obj

    def names(self) -> list[str]:
        self._load_providers()
        return sorted(self._records)

    def records(self) -> list[PluginRecord]:
        """Every registered name with its source and status, sorted by name."""
        self._load_providers()
        return [self._records[n] for n in sorted(self._records)]

    def __contains__(self, name: str) -> bool:
        self._load_providers(name)
        return name in self._records

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r})"


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "<unknown distribution>"


def _target_of(builder: Builder) -> str:
    return f"{builder.__module__}:{getattr(builder, '__qualname__', repr(builder))}"


def _kind_of(obj: Any) -> str:
    return "None" if obj is None else f"a {type(obj).__module__}.{type(obj).__qualname__}"


def _check_model(obj: Any) -> str | None:
    import torch  # here, so that listing plugins does not import torch

    return None if isinstance(obj, torch.nn.Module) else f"returned {_kind_of(obj)}, not a torch.nn.Module"


def _check_loss(obj: Any) -> str | None:
    return None if callable(obj) else f"returned {_kind_of(obj)}, which is not callable"


def _check_dataset(obj: Any) -> str | None:
    missing = [m for m in ("train_dataset", "val_dataset") if not callable(getattr(obj, m, None))]
    return f"returned {_kind_of(obj)} without {' and '.join(f'{m}()' for m in missing)}" if missing else None


def _check_target(obj: Any) -> str | None:
    missing = [a for a in ("name", "channels", "compute") if not hasattr(obj, a)]
    return f"returned {_kind_of(obj)} without {', '.join(missing)}" if missing else None


def _check_decoder(obj: Any) -> str | None:
    missing = [a for a in ("needs", "foreground_of", "decode") if not hasattr(obj, a)]
    return f"returned {_kind_of(obj)} without {', '.join(missing)}" if missing else None


MODELS = Registry("model", "emseg_plugins.models", _check_model, "a torch.nn.Module returning logits (docs/schemas.md)")
LOSSES = Registry("loss", "emseg_plugins.losses", _check_loss, "a callable loss(logits, label, valid_mask=None)")
DATASETS = Registry("dataset", "emseg_plugins.datasets", _check_dataset,
                    "an object with train_dataset(num_samples) and val_dataset() (and volumes(split) for inference)")
CONFIGS = Registry("config", "emseg_plugins.configs")

TARGETS = Registry("target", "emseg_plugins.targets", _check_target,
                   "an emseg_plugins.targets.Target (name, channels, compute(ids) -> maps, default loss)")
DECODERS = Registry("decoder", "emseg_plugins.decoders", _check_decoder,
                    "an object with needs, foreground_of(maps) and decode(maps, origin) (postprocess/decoders.py)")

REGISTRIES: dict[str, Registry] = {"models": MODELS, "losses": LOSSES, "datasets": DATASETS, "configs": CONFIGS,
                                   "targets": TARGETS, "decoders": DECODERS}
