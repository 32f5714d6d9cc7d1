"""The plugin kit: `emseg plugins` (+ --check), config-node collisions, builder kinds, `emseg new-plugin`."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import BIN, run_cli, tiny_args
from yacs.config import CfgNode as CN

from emseg_plugins.errors import PluginError
from emseg_plugins.plugin_kit import config_nodes
from emseg_plugins.registry import DATASETS, LOSSES, MODELS, PluginRecord, Registry

BAD_PLUGIN = {
    "setup.py": '''
        from setuptools import setup
        setup(name="emseg-bad-plugin", version="0.3.0", packages=["emseg_bad_plugin"], entry_points={
            "emseg_plugins.models": ["bad_net = emseg_bad_plugin:build_bad_net"],
            "emseg_plugins.datasets": ["bad_data = emseg_bad_plugin:build_bad_data"],
            "emseg_plugins.configs": ["bad_node = emseg_bad_plugin:add_bad_node"]})
    ''',
    "emseg_bad_plugin/__init__.py": '''
        """A plugin that gets every contract wrong."""

        def build_bad_net(cfg):
            """Returns a string instead of a model."""
            return "not a network"

        class HalfDataset:
            def train_dataset(self, n):
                return []

        def build_bad_data(cfg):
            """Returns an object without val_dataset()."""
            return HalfDataset()

        def add_bad_node(cfg):
            cfg.MODEL.FILTERS = [1, 2]  # overwrites a core key instead of adding its own node
    ''',
}


def _install(source: Path, target: Path) -> Path:
    """pip-install a plugin distribution into ``target`` as tests/conftest.py does."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(source)], check=True, capture_output=True, cwd=source.parent)
    return target


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("bad") / "emseg-bad-plugin"
    for relative, text in BAD_PLUGIN.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(textwrap.dedent(text))
    return _install(source, tmp_path_factory.mktemp("site-bad"))


def _errors(result) -> list[str]:
    assert "Traceback" not in result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_listing_shows_distribution_version_doc_and_config_nodes_and_check_passes(plugin_sites):
    result = run_cli("emseg", "plugins", "--check", "--json", pythonpath=[plugin_sites["example"]])
    assert result.returncode == 0, result.stderr
    listing = {group: {r["name"]: r for r in rows} for group, rows in json.loads(result.stdout).items()}
    tiny = listing["models"]["tiny_unet"]
    assert (tiny["distribution"], tiny["version"], tiny["status"]) == ("emseg-plugin-example", "0.2.0", "ok")
    assert tiny["doc"] == "Two-level 2D U-Net: IN_PLANES x INPUT_SLICES inputs, one logit channel per class."
    assert listing["datasets"]["blobs"]["doc"].startswith("Train on the slices outside DATASET.BLOBS.VAL_Z")
    assert listing["configs"]["blobs"]["adds"] == ["DATASET.BLOBS"]
    assert listing["configs"]["unetv3"]["adds"] == ["MODEL.UNETV3"]
    assert listing["losses"]["ohem"]["version"] == listing["models"]["joenet"]["version"] != ""
    # --check built every model and loss with the defaults, and the selected dataset
    assert tiny["check"] == "ok" and listing["losses"]["soft_l1"]["check"] == "ok" and listing["datasets"]["synthetic"]["check"] == "ok"
    assert listing["models"]["unetv3"]["check"].startswith("skipped: not built with this config: config: MODEL.ARCHITECTURE unetv3 is a 3D model")
    assert listing["datasets"]["blobs"]["check"].startswith("not built")


def test_check_builds_every_plugin_and_reports_each_broken_one_on_one_line(bad_site):
    bad = run_cli("emseg", "plugins", "--check", "DATASET.NAME", "bad_data", pythonpath=[bad_site])
    assert bad.returncode == 2
    errors = _errors(bad)
    assert len(errors) == 3, errors
    assert ("error: config node 'bad_node' from distribution 'emseg-bad-plugin' (emseg_bad_plugin:add_bad_node) changes core key "
            "MODEL.FILTERS ([32, 64, 128, 256] -> [1, 2]); a plugin must only add its own node, e.g. cfg.MODEL.BAD_NODE = CN()") in errors
    assert any(e.startswith("error: model 'bad_net' from distribution 'emseg-bad-plugin' (emseg_bad_plugin:build_bad_net) "
                            "returned a builtins.str, not a torch.nn.Module") for e in errors)
    assert any("dataset 'bad_data' from distribution 'emseg-bad-plugin'" in e and "without val_dataset()" in e for e in errors)


def test_training_refuses_a_config_node_that_changes_a_core_key_and_writes_nothing(bad_site, tmp_path):
    run = tmp_path / "run"
    result = run_cli("pytc-train", *tiny_args(run), pythonpath=[bad_site])
    assert result.returncode == 2
    expected = ("error: config node 'bad_node' from distribution 'emseg-bad-plugin' (emseg_bad_plugin:add_bad_node) changes core key "
                "MODEL.FILTERS ([32, 64, 128, 256] -> [1, 2]); a plugin must only add its own node, e.g. cfg.MODEL.BAD_NODE = CN()")
    assert _errors(result) == [expected]
    assert not run.exists()


def test_config_node_collisions_name_the_owner_of_the_key():
    def adds(cfg):
        cfg.MODEL.MINE = CN()
        cfg.MODEL.MINE.WIDTH = 4

    def changes_it(cfg):
        cfg.MODEL.MINE.WIDTH = 8

    def wipes(cfg):
        cfg.SOLVER = CN()

    records = [PluginRecord(n, f"dist-{n}", f"m:{f.__name__}", builder=f) for n, f in (("a", adds), ("b", changes_it), ("c", wipes))]
    nodes = {n.record.name: n for n in config_nodes(records)}
    assert nodes["a"].adds == ["MODEL.MINE"] and nodes["a"].problem is None
    assert nodes["b"].problem.startswith("config node 'b' from distribution 'dist-b' (m:changes_it) changes key "
                                         "(added by config node 'a' (dist-a)) MODEL.MINE.WIDTH (4 -> 8)")
    assert "removes core key SOLVER.NAME" in nodes["c"].problem


def test_registry_providers_are_loaded_by_prefix_and_builds_are_checked():
    calls = []
    registry = Registry("model", "emseg_plugins.tests.none", check=lambda obj: None if isinstance(obj, int) else "returned no int",
                        expects="an int")

    def provide():
        calls.append(1)
        return [PluginRecord("ext.seven", "ext-dist", "ext:seven", builder=lambda cfg: 7, version="1.2"),
                PluginRecord("ext.text", "ext-dist", "ext:text", builder=lambda cfg: "x")]

    registry.add_provider(provide, prefix="ext.")
    registry.register("local")(lambda cfg: 1)
    assert registry.build("local", None) == 1 and calls == []  # other prefixes never load the provider
    assert registry.build("ext.seven", None) == 7 and calls == [1]
    assert registry.names() == ["ext.seven", "ext.text", "local"] and calls == [1]
    with pytest.raises(PluginError, match=r"^model 'ext.text' from distribution 'ext-dist' \(ext:text\) returned no int; "
                                          r"its builder must return an int$"):
        registry.build("ext.text", None)
    # the real registries' checks
    assert MODELS.check("x") == "returned a builtins.str, not a torch.nn.Module" and MODELS.check(torch.nn.Identity()) is None
    assert DATASETS.check(object()) == "returned a builtins.object without train_dataset() and val_dataset()"
    assert LOSSES.check(len) is None and LOSSES.check(3) == "returned a builtins.int, which is not callable"


def _emseg(*argv: str) -> tuple[int, list[str]]:
    """``emseg ARGV`` in this process: exit status and the ``error:`` lines."""
    from emseg_plugins.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert "Traceback" not in err.getvalue()
    return exit_.value.code, [line for line in err.getvalue().splitlines() if line.startswith("error:")]


def test_new_plugin_scaffold_passes_its_own_tests(tmp_path):
    package = tmp_path / "emseg-mito-net"
    assert _emseg("new-plugin", "mito-net", "--output", str(package)) == (0, [])
    assert {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()} == {
        "setup.py", "README.md", "mito_net.yaml", "emseg_mito_net/__init__.py", "emseg_mito_net/plugin.py",
        "emseg_mito_net/config.py", "tests/test_mito_net.py"}
    assert '"emseg_plugins.models": ["mito_net = emseg_mito_net.plugin:build_model"]' in (package / "setup.py").read_text()
    assert '"emseg_plugins.configs": ["mito_net = emseg_mito_net.config:add_config"]' in (package / "setup.py").read_text()
    assert "import torch" not in (package / "emseg_mito_net" / "config.py").read_text()  # the config node stays light
    site = _install(package, tmp_path / "site")
    tests = subprocess.run([str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=package,
                           env={"PATH": str(BIN), "PYTHONPATH": str(site), "HOME": str(tmp_path)}, capture_output=True,
                           text=True, timeout=300, check=False)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "4 passed" in tests.stdout

    assert _emseg("new-plugin", "mito_net", "--output", str(package)) == (
        2, [f"error: new-plugin: {package} already exists; choose another --output directory"])
    assert _emseg("new-plugin", "joenet", "--output", str(tmp_path / "x")) == (
        2, ["error: new-plugin: model 'joenet' is already installed; choose another name"])
    code, errors = _emseg("new-plugin", "9lives", "--output", str(tmp_path / "y"))
    assert code == 2 and len(errors) == 1 and "'9lives' is not a valid plugin name" in errors[0] and not (tmp_path / "y").exists()
