"""Find PyTorch Connectomics at run time by its registries; say so when the importable ``connectomics`` is not PyTC.

PyTC is not on the package registry, and the registry's ``connectomics`` is Google's unrelated library with the
same import name: it is recognised and reported as such.
"""
from __future__ import annotations

import importlib
import importlib.metadata

from emseg_plugins.bridges.pytc.line import Installation, PyTCLine, find_module
from emseg_plugins.bridges.pytc.v1 import V1
from emseg_plugins.bridges.pytc.v2 import V2
from emseg_plugins.errors import PluginError

REPOSITORY = "https://github.com/zudi-lin/pytorch_connectomics"
LINES: tuple[type[PyTCLine], ...] = (V1, V2)


def detect() -> PyTCLine | None:
    """The installed PyTC line, or None when no ``connectomics`` is importable.

    :class:`PluginError` when ``connectomics`` is importable but is not PyTC (e.g. Google's package),
    when PyTC fails to import, or when it has neither the v1 nor the v2 registry shape.
    """
    if find_module("connectomics") is None:
        return None
    top = importlib.import_module("connectomics")
    location = str(getattr(top, "__file__", None) or list(getattr(top, "__path__", [])) or "?")
    distribution, version, about = _distribution()
    where = Installation(version or str(getattr(top, "__version__", "") or "unknown version"), distribution, location)
    try:
        found = next((line for line in (cls.probe(where) for cls in LINES) if line is not None), None)
    except ImportError as exc:  # PyTC itself is there but one of its requirements is not
        if (getattr(exc, "name", None) or "").startswith("connectomics"):
            raise PluginError(f"PyTorch Connectomics {where.version} at {location} is incomplete ({exc}); reinstall it") from None
        raise PluginError(f"PyTorch Connectomics at {location} failed to import ({type(exc).__name__}: {exc}); "
                          "install its requirements (see docs/plugins.md)") from None
    if found is not None:
        return found
    if not any(find_module(f"connectomics.{sub}") for sub in ("model", "models", "engine", "training")):
        google = "google" in about.lower() or any(find_module(f"connectomics.{sub}") for sub in ("common", "volume", "segclr"))
        which = ("it is Google's connectomics package (google-research/connectomics), which only shares the import name"
                 if google else "it has none of PyTC's packages (connectomics.model, connectomics.models)")
        raise PluginError(f"the importable 'connectomics' ({distribution} {where.version}, {location}) is not PyTorch "
                          f"Connectomics: {which}; install PyTC from {REPOSITORY} to use the PyTC bridge")
    raise PluginError(f"PyTorch Connectomics {where.version} at {location} has neither registry shape the bridge knows "
                      "(v1.x: connectomics.model.build.MODEL_MAP and connectomics.model.loss.Criterion.loss_dict; "
                      "v2.x: register_architecture in connectomics.models.architectures or connectomics.models.arch); "
                      "use a PyTC v1.x or v2.x release")


def require() -> PyTCLine:
    """:func:`detect`, but :class:`PluginError` when nothing named ``connectomics`` is installed."""
    found = detect()
    if found is None:
        raise PluginError(f"PyTorch Connectomics is not installed (no 'connectomics' module); install it from {REPOSITORY} "
                          "(it is not on the package registry)")
    return found


def _distribution() -> tuple[str, str, str]:
    """(distribution name, version, summary + home page) of whatever provides the ``connectomics`` module."""
    for name in importlib.metadata.packages_distributions().get("connectomics") or []:
        try:
            meta = importlib.metadata.metadata(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        about = " ".join(str(meta.get(k) or "") for k in ("Summary", "Home-page", "Author", "Author-email"))
        about += " " + " ".join(meta.get_all("Project-URL") or [])
        return name, meta.get("Version") or "", about
    return "source checkout", "", ""
