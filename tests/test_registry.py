"""The registries: entry-point discovery, did-you-mean, broken and conflicting plugins."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, run_cli
from emseg_plugins.errors import PluginError
from emseg_plugins.registry import DATASETS, LOSSES, MODELS, Registry


def test_builtin_plugins_come_from_entry_points_of_this_distribution():
    for registry, name in ((MODELS, "joenet"), (LOSSES, "dice_bce"), (DATASETS, "synthetic")):
        record = {r.name: r for r in registry.records()}[name]
        assert record.source == "emseg-plugins"
        assert record.status == "ok"
        assert callable(registry.get(name))


def test_unknown_name_suggests_the_closest():
    with pytest.raises(PluginError, match=r"unknown model 'joenett'; did you mean 'joenet'\?"):
        MODELS.get("joenett")


def test_register_decorator_and_duplicate_names():
    registry = Registry("model", "emseg_plugins.tests.none")

    @registry.register("net")
    def build_a(cfg):
        return "a"

    assert registry.build("net", None) == "a"
    registry.register("net")(build_a)  # the same builder twice is harmless
    with pytest.raises(PluginError, match=r"model 'net' is registered twice: by .*build_a.* and by .*build_b"):

        @registry.register("net")
        def build_b(cfg):
            return "b"


def test_plugins_command_lists_third_party_broken_and_conflicting(plugin_sites):
    sites = [plugin_sites["example"], plugin_sites["broken"], plugin_sites["rival"]]
    result = run_cli("emseg", "plugins", "--json", pythonpath=sites)
    assert result.returncode == 0, result.stderr
    listing = {group: {r["name"]: r for r in rows} for group, rows in json.loads(result.stdout).items()}
    assert listing["models"]["tiny_unet"]["distribution"] == "emseg-plugin-example"
    assert listing["models"]["tiny_unet"]["status"] == "ok"
    assert listing["configs"]["tiny_unet"]["distribution"] == "emseg-plugin-example"
    assert listing["losses"]["soft_l1"]["status"] == "ok"
    broken = listing["models"]["broken_net"]
    assert broken["status"] == "broken" and "not installed" in broken["problem"]
    assert listing["models"]["joenet"]["status"] == "conflict"
    assert "emseg-rival-plugin" in listing["models"]["joenet"]["problem"]
    # one warning line per problem, naming the plugin and its distribution
    assert "model plugin 'broken_net' from distribution 'emseg-broken-plugin' failed to load" in result.stderr
    assert "model 'joenet' is claimed by emseg-plugins" in result.stderr


def test_selecting_a_broken_plugin_is_one_clear_error(plugin_sites, tmp_path):
    from conftest import tiny_args

    result = run_cli("pytc-train", *tiny_args(tmp_path / "run", "MODEL.ARCHITECTURE", "broken_net"),
                     pythonpath=[plugin_sites["broken"]])
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: model 'broken_net' from distribution 'emseg-broken-plugin' failed to load: "
                      "ImportError: this plugin needs a library that is not installed"]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_selecting_a_conflicting_name_names_both_sources(plugin_sites, tmp_path):
    from conftest import tiny_args

    result = run_cli("pytc-train", *tiny_args(tmp_path / "run"), pythonpath=[plugin_sites["rival"]])
    assert result.returncode == 2
    assert "error: model 'joenet' is claimed by emseg-plugins" in result.stderr
    assert "emseg-rival-plugin (emseg_rival_plugin:build)" in result.stderr
    assert not (tmp_path / "run").exists()


# -- providers: another framework's plugins under a prefix, from an emseg_plugins.providers entry point ----------
EXT_PROVIDER = {
    "ext_provider.py": '''
        """A third-party provider: one model under ext., and one record outside its prefix (refused)."""
        import torch

        from emseg_plugins.registry import PluginRecord

        ASKED = []  # the kinds the registries asked for, in order

        def identity(cfg):
            """The ext framework's identity network."""
            return torch.nn.Identity()

        class Provider:
            def records(self, kind):
                ASKED.append(kind)
                if kind == "model":
                    return [PluginRecord("ext.identity", "emseg-ext-provider", "ext_provider:identity", builder=identity, version="1.0")]
                if kind == "loss":
                    return [PluginRecord("dice_bce", "emseg-ext-provider", "ext_provider:identity", builder=identity)]
                return []

            def status(self):
                return "ext: a test framework with 1 model"

        PROVIDER = Provider()
    ''',
    "emseg_ext_provider-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: emseg-ext-provider\nVersion: 1.0\n",
    "emseg_ext_provider-1.0.dist-info/entry_points.txt": "[emseg_plugins.providers]\next = ext_provider:PROVIDER\n",
    "emseg_ext_provider-1.0.dist-info/RECORD": "ext_provider.py,,\n",
}
LAZY_CHECK = '''
import sys
import warnings
from emseg_plugins.registry import LOSSES, MODELS, providers
print("entry", [(p.name, p.source, p.target) for p in providers()])
MODELS.record("joenet")
print("after joenet", "ext_provider" in sys.modules)
from emseg_plugins.config import load_config
MODELS.build("joenet", load_config())
print("after a config load", sys.modules["ext_provider"].ASKED)
print("after unknown", "ext.nope" in MODELS, sys.modules["ext_provider"].ASKED)
record = MODELS.record("ext.identity")
print("record", record.source, record.version, record.target, type(MODELS.build("ext.identity", None)).__name__)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    LOSSES.names()
print("loss warning", [str(w.message) for w in caught])
'''


def _site(root, files):
    """Write ``files`` (a distribution's modules and its hand-written dist-info) under ``root``."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_provider_entry_point_is_imported_only_when_its_prefix_is_asked_for(tmp_path):
    site = _site(tmp_path / "site", EXT_PROVIDER)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", LAZY_CHECK], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "entry [('ext', 'emseg-ext-provider', 'ext_provider:PROVIDER')" in lines[0]
    assert lines[1] == "after joenet False"  # a name outside its prefix never imports the provider
    assert lines[2] == "after a config load ['config']"  # a config lists every config node: only those are asked for
    assert lines[3] == "after unknown False ['config', 'model']"  # a name under its prefix asks for its models
    assert lines[4] == "record emseg-ext-provider 1.0 ext_provider:identity Identity"
    assert ("could not be listed (provider 'ext' from distribution 'emseg-ext-provider' (ext_provider:PROVIDER) offered "
            "loss 'dice_bce', outside its prefix 'ext.')") in lines[5]

    listing = run_cli("emseg", "plugins", pythonpath=[site])
    assert listing.returncode == 0, listing.stderr
    assert "ext: a test framework with 1 model" in listing.stdout.splitlines()
    row = next(line for line in listing.stdout.splitlines() if line.strip().startswith("ext.identity"))
    assert "emseg-ext-provider 1.0" in row and "The ext framework's identity network." in row


def test_a_provider_that_fails_to_import_is_named_when_its_prefix_is_asked_for(tmp_path):
    broken = {**EXT_PROVIDER, "ext_provider.py": "raise ImportError('ext needs a library that is not installed')\n"}
    site = _site(tmp_path / "site", broken)
    result = run_cli("pytc-train", "--config-file", str(ROOT / "tests" / "configs" / "tiny.yaml"), "MODEL.ARCHITECTURE", "ext.net",
                     "DATASET.OUTPUT_PATH", str(tmp_path / "run"), pythonpath=[site])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and errors == [
        "error: unknown model 'ext.net': the plugins under its prefix could not be listed (provider 'ext' from distribution "
        "'emseg-ext-provider' (ext_provider:PROVIDER) failed to load (ImportError: ext needs a library that is not installed))"]
    assert not (tmp_path / "run").exists()


def test_the_registry_module_imports_no_bridge():
    source = ROOT / "emseg_plugins" / "registry.py"
    imported = {node.module for node in ast.walk(ast.parse(source.read_text())) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(ast.parse(source.read_text())) if isinstance(node, ast.Import) for alias in node.names}
    assert {m for m in imported if m.startswith("emseg_plugins")} == {"emseg_plugins.errors"}
    code = "import sys, emseg_plugins.registry; print(sorted(m for m in sys.modules if m.startswith('emseg_plugins')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "['emseg_plugins', 'emseg_plugins.errors', 'emseg_plugins.registry']"
