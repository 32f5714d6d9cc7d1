"""The registries: entry-point discovery, did-you-mean, broken and conflicting plugins."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli
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
