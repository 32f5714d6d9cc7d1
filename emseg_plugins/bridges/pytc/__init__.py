"""The PyTorch Connectomics (PyTC) provider: ``pytc = emseg_plugins.bridges.pytc:PROVIDER`` in ``setup.py``.

Importing this module imports neither PyTC nor the bridge's PyTC code; :meth:`PyTCProvider.records` does, and
only for the ``model`` and ``loss`` registries, which ask when a ``pytc.<name>`` is looked up or listed. The
``pytc`` config node (``MODEL.PYTC``, ``LOSS.PYTC``) is always there, so a config means the same with or
without PyTC installed.

The bridge, by module:

- :mod:`.detect`: find PyTC at run time (and recognise Google's unrelated ``connectomics``);
- :mod:`.line`: what one PyTC line does (install our plugins, build its own, run its trainer);
  :mod:`.v1` (yacs, ``zudi-lin/pytorch_connectomics`` v1.0.0) and :mod:`.v2` (Hydra/OmegaConf,
  ``PytorchConnectomics/pytorch_connectomics`` 2.x) implement it;
- :mod:`.adapters`: emseg models/losses in PyTC's calling convention and PyTC's losses in ours;
- :mod:`.records`: PyTC's own architectures and losses as ``pytc.<name>`` records;
- :mod:`.config`: the ``pytc`` config node.
"""
from __future__ import annotations

from emseg_plugins.bridges.pytc.config import add_pytc_config
from emseg_plugins.registry import PluginRecord

CONFIG_RECORD = PluginRecord("pytc", "emseg-plugins", f"{add_pytc_config.__module__}:add_pytc_config", builder=add_pytc_config)


class PyTCProvider:
    """The :class:`emseg_plugins.registry.Provider` for PyTC."""

    def records(self, kind: str) -> list[PluginRecord]:
        """PyTC's own architectures (``model``) or losses (``loss``) as ``pytc.<name>``; the ``pytc`` config node."""
        if kind == "config":
            return [CONFIG_RECORD]
        from emseg_plugins.bridges.pytc.records import provided_records  # imports torch and probes PyTC: kept lazy

        return provided_records(kind)

    def status(self) -> str:
        """One line for ``emseg plugins``: PyTC found (and how much), absent, or not PyTC."""
        from emseg_plugins.bridges.pytc.records import status_line  # imports torch and probes PyTC: kept lazy

        return status_line()


PROVIDER = PyTCProvider()
