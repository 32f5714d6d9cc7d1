"""One PyTC line behind one small interface: what it is, its registries, and what the bridge does with them.

:class:`PyTCLine` installs our models and losses into PyTC's registries (the same way for every line) and
leaves to each line (:mod:`.v1`, :mod:`.v2`) only what differs: its adapters, how it builds its own models
and losses from our config, and how its trainer is run.
"""
from __future__ import annotations

import importlib.util
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn
from yacs.config import CfgNode as CN

from emseg_plugins.bridges.pytc.adapters import is_adapter
from emseg_plugins.errors import PluginWarning
from emseg_plugins.registry import LOSSES, MODELS

PREFIX = "pytc."  # PyTC's own plugins appear in our registries as pytc.<name>
ALIAS = "emseg."  # ours appear in PyTC as emseg.<name> always, and as <name> where PyTC has no <name> of its own


@dataclass
class Installation:
    """Where the importable ``connectomics`` comes from."""

    version: str
    distribution: str
    location: str


class Table:
    """One PyTC registry as a mapping: name -> PyTC's class or builder (ours are adapters).

    ``read_only``: why nothing can be added to it ("" when it can); ``builds``: what builds the names that
    PyTC lists without an object (``module:function``).
    """

    def __init__(self, entries: Callable[[], dict[str, Any]], add: Callable[[str, Any], Any] | None = None,
                 read_only: str = "", builds: str = ""):
        self._entries, self._add, self.read_only, self.builds = entries, add, read_only, builds

    def entries(self) -> dict[str, Any]:
        """Every registered name -> its object (None where PyTC only lists names)."""
        return self._entries()

    def own(self) -> dict[str, Any]:
        """PyTC's own entries: every one but our adapters."""
        return {name: obj for name, obj in self.entries().items() if not is_adapter(obj)}

    def add(self, name: str, obj: Any) -> None:
        self._add(name, obj)  # type: ignore[misc]  # only called when not read_only


def dict_table(mapping: dict) -> Table:
    """A PyTC registry that is a plain dict (v1's ``MODEL_MAP`` and ``Criterion.loss_dict``)."""
    return Table(lambda: dict(mapping), mapping.__setitem__)


class PyTCLine(ABC):
    """The PyTC found at run time: one line (``v1``/``v2``), its version and its registries."""

    line: ClassVar[str]

    def __init__(self, where: Installation, models: Table, losses: Table):
        self.version, self.distribution, self.location = where.version, where.distribution, where.location
        self.models, self.losses = models, losses

    def describe(self) -> str:
        """``PyTorch Connectomics VERSION (LINE.x, DISTRIBUTION) at LOCATION``."""
        return f"PyTorch Connectomics {self.version} ({self.line}.x, {self.distribution}) at {self.location}"

    # -- what each line implements --------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def probe(cls, where: Installation) -> PyTCLine | None:
        """This line's view of the importable ``connectomics``, or None when it has not this line's registries."""

    @abstractmethod
    def model_adapter(self, name: str) -> Any:
        """What PyTC's model registry holds for our model ``name``."""

    def loss_adapter(self, name: str) -> Any:
        """What PyTC's loss registry holds for our loss ``name`` (only called when it has one)."""
        raise NotImplementedError(f"PyTC {self.line} has no loss registry")

    @abstractmethod
    def build_own_model(self, name: str, cfg: CN) -> nn.Module:
        """PyTC's architecture ``name`` with channels and patch size from our config (``MODEL.PYTC.OPTS`` applied)."""

    @abstractmethod
    def create_own_loss(self, name: str, kwargs: dict[str, Any]) -> nn.Module:
        """PyTC's loss ``name`` built with ``kwargs``; TypeError when they do not suit it."""

    def takes_weight_mask(self, fn: nn.Module) -> bool:
        """Whether PyTC's loss ``fn`` takes a ``weight_mask`` (ignored voxels get weight 0)."""
        return False

    def default_activation(self, name: str) -> str:
        """``sigmoid`` or ``none``: what PyTC's loss ``name`` expects on top of logits (``LOSS.PYTC.ACTIVATION: auto``)."""
        return "none"

    @abstractmethod
    def run(self, argv: list[str]) -> int:
        """PyTC's own ``scripts/main.py`` with ``argv`` (after :meth:`install`); the exit status."""

    # -- the same for every line ----------------------------------------------------------------------------
    def install(self) -> dict[str, list[str]]:
        """Add every emseg model and loss to PyTC's registries; returns the names added per kind.

        ``{"models": [...], "losses": [...], "aliased": [...], "skipped": [...]}``: every one is registered as
        ``emseg.<name>``, and as ``<name>`` too unless PyTC has its own ``<name>`` (then it is ``aliased``, with
        a warning naming both). ``skipped``: what PyTC has no registry for. Installing twice replaces nothing.
        """
        report: dict[str, list[str]] = {"models": [], "losses": [], "aliased": [], "skipped": []}
        for kind, group, registry, table, adapter in (("model", "models", MODELS, self.models, self.model_adapter),
                                                      ("loss", "losses", LOSSES, self.losses, self.loss_adapter)):
            ours = [r for r in registry.records() if r.status == "ok" and "." not in r.name]  # dotted: a provider's
            if table.read_only:
                report["skipped"] += [f"{group} ({', '.join(r.name for r in ours)}): {table.read_only}"] if ours else []
                continue
            for record in ours:
                entries = table.entries()
                theirs = entries.get(record.name)
                collides = theirs is not None and not is_adapter(theirs)
                for key in (ALIAS + record.name,) if collides else (ALIAS + record.name, record.name):
                    if not is_adapter(entries.get(key)):  # PyTC v2 warns when a name is registered again
                        table.add(key, adapter(record.name))
                if collides:
                    warnings.warn(f"PyTC {self.line} has its own {kind} {record.name!r} ({target_of(theirs)}); emseg's "
                                  f"{record.name!r} ({record.source}, {record.target}) is registered in PyTC as "
                                  f"{ALIAS + record.name!r}", PluginWarning, stacklevel=2)
                    report["aliased"].append(record.name)
                else:
                    report[group].append(record.name)
        return report


def find_module(name: str) -> Any:
    """The import spec of module ``name`` without importing it (its parent packages are), or None."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a missing parent package, or a module without __spec__
        return None


def target_of(obj: Any) -> str:
    """``module:qualname`` of a class or function."""
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__qualname__)}"
