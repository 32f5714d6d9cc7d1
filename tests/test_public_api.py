"""The public API of ``emseg_plugins``: every documented name resolves, and importing the package is cheap."""
from __future__ import annotations

import subprocess
import sys

import emseg_plugins


def test_every_public_name_resolves():
    for name in emseg_plugins.__all__:
        assert getattr(emseg_plugins, name) is not None, name
    assert set(emseg_plugins.list_plugins()) == {"model", "loss", "dataset", "config", "target", "decoder"}
    assert issubclass(emseg_plugins.ConfigError, emseg_plugins.EmsegError)


def test_import_does_not_import_torch():
    code = "import sys, emseg_plugins; print('torch' in sys.modules, emseg_plugins.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split()[0] == "False", result.stdout


def test_unknown_name_is_an_attribute_error():
    try:
        emseg_plugins.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("no AttributeError")
