"""``emseg new-plugin NAME``: write a plugin package (setup.py with entry points, module, config, test).

The templates (``templates/*.tmpl``, package data) use ``string.Template`` placeholders: ``$name``
(plugin name, e.g. ``mito_net``), ``$NAME`` (its config node, ``MITO_NET``), ``$package``
(``emseg_mito_net``), ``$distribution`` (``emseg-mito-net``) and ``$Class`` (``MitoNet``).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from string import Template

from emseg_plugins.errors import ConfigError

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# template -> path in the new package ("$package" is replaced)
FILES = {
    "setup.py.tmpl": "setup.py",
    "README.md.tmpl": "README.md",
    "config.yaml.tmpl": "$name.yaml",
    "init.py.tmpl": "$package/__init__.py",
    "plugin.py.tmpl": "$package/plugin.py",
    "config.py.tmpl": "$package/config.py",
    "test_plugin.py.tmpl": "tests/test_$name.py",
}


def names(name: str) -> dict[str, str]:
    """Every spelling of the plugin name the templates use; :class:`ConfigError` if it is not a valid name."""
    plugin = name.strip().lower().replace("-", "_")
    plugin = plugin.removeprefix("emseg_")
    if not NAME_RE.match(plugin):
        raise ConfigError(f"new-plugin: {name!r} is not a valid plugin name; use lowercase letters, digits and _ "
                          "(starting with a letter), e.g. mito_net")
    return {"name": plugin, "NAME": plugin.upper(), "package": f"emseg_{plugin}",
            "distribution": f"emseg-{plugin.replace('_', '-')}", "Class": "".join(p.title() for p in plugin.split("_"))}


def render(name: str, destination: Path) -> list[Path]:
    """Write the package for plugin ``name`` into ``destination`` (which must not exist); returns the files."""
    values = names(name)
    if destination.exists():
        raise ConfigError(f"new-plugin: {destination} already exists; choose another --output directory")
    templates = resources.files(__name__) / "templates"
    rendered = {Template(path).substitute(values): Template((templates / tmpl).read_text()).substitute(values)
                for tmpl, path in FILES.items()}  # every template renders before anything is written
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
    try:  # written beside the destination and renamed: never a half-written package
        for relative, text in rendered.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_text(text)
        os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [destination / relative for relative in rendered]
