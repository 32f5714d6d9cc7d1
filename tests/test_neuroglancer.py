"""emseg view --neuroglancer in a real headless Chromium (Debian's `chromium` package).

The in-process test renders a screenshot through the browser and finds the class colours where the
masks are; the CLI test reads the layers and their load state from the page over the Chrome DevTools
Protocol. Both are skipped, saying why, where chromium or neuroglancer is missing.
"""
from __future__ import annotations

import asyncio
import io
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import BIN

pytest.importorskip("neuroglancer", reason="neuroglancer not installed (pip install -c constraints.txt neuroglancer)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)")


def _browser(url: str, profile: Path, debug_port: int | None = None) -> subprocess.Popen:
    args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
            f"--user-data-dir={profile}", "--window-size=1000,800"]
    if debug_port:
        args.append(f"--remote-debugging-port={debug_port}")
    return subprocess.Popen([*args, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_viewer_renders_masks_in_class_colours(tmp_path):
    from PIL import Image

    from emseg_plugins.visualize.neuroglancer_view import Layer, serve

    image = np.full((8, 64, 96), 100, np.uint8)
    nuc, mito = np.zeros(image.shape, np.uint8), np.zeros(image.shape, np.uint8)
    nuc[:, 8:30, 8:40] = 1  # top left
    mito[:, 36:56, 50:90] = 1  # bottom right
    viewer = serve([Layer("image", "image", image), Layer("nuc", "segmentation", nuc, (255, 0, 0)),
                    Layer("mito", "segmentation", mito, (0, 255, 255))])
    with viewer.txn() as state:
        state.layout = "xy"
    url = viewer.get_viewer_url()
    assert url.startswith("http://127.0.0.1:")  # bound to the loopback interface by default
    browser = _browser(url, tmp_path / "profile")
    try:
        result = {}
        shooter = threading.Thread(target=lambda: result.update(shot=viewer.screenshot(size=[320, 240])), daemon=True)
        shooter.start()
        shooter.join(90)
        assert "shot" in result, "the browser never connected to the viewer"
    finally:
        browser.terminate()
        browser.wait(10)
    rgb = np.asarray(Image.open(io.BytesIO(result["shot"].screenshot.image)).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red, cyan = (r > g + 60) & (r > b + 60), (g > r + 60) & (b > r + 60)
    assert red.sum() > 200 and cyan.sum() > 200
    (ry, rx), (cy, cx) = (np.argwhere(red).mean(0), np.argwhere(cyan).mean(0))
    assert ry < cy and rx < cx  # nuclei drawn above and left of mito, as in the data (x right, y down)
    assert [layer.name for layer in viewer.state.layers] == ["image", "nuc", "mito"]


def test_cli_serves_image_labels_and_predictions(tmp_path):
    from emseg_plugins.inference.writers import write_predictions

    image = (np.arange(6 * 32 * 32) % 251).astype(np.uint8).reshape(6, 32, 32)
    nuc = np.zeros(image.shape, np.uint8)
    nuc[:, 4:12, 4:12] = 1
    with h5py.File(tmp_path / "vol.h5", "w") as f:
        f["raw"], f["nuc"] = image, nuc
    probs = np.stack([nuc, np.zeros_like(nuc)]).astype(np.float32)
    write_predictions(tmp_path / "pred.h5", probs, ["nuc", "mito"], 0.5)
    server = subprocess.Popen(
        [str(BIN / "emseg"), "view", "--neuroglancer", "--image", f"{tmp_path / 'vol.h5'}:/raw",
         "--labels", f"nuc={tmp_path / 'vol.h5'}:/nuc", "--predictions", str(tmp_path / "pred.h5"), "--serve-seconds", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for line in server.stdout:
            if line.startswith("neuroglancer: "):
                url = line.split()[1]
                break
        assert url and url.startswith("http://127.0.0.1:"), "the command printed no viewer URL"
        port = _free_port()
        browser = _browser(url, tmp_path / "profile", port)
        try:
            layers = asyncio.run(_page_layers(_page_socket(port)))
        finally:
            browser.terminate()
            browser.wait(10)
    finally:
        server.terminate()
        server.wait(10)
    assert layers == [["image", "loaded"], ["nuc", "loaded"], ["pred nuc", "loaded"], ["pred mito", "loaded"]]


def _page_socket(port: int, timeout: float = 30) -> str:
    """The DevTools websocket URL of chromium's page."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2))
            return next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]
        except (OSError, StopIteration):
            assert time.monotonic() < deadline, "chromium's DevTools endpoint never came up"
            time.sleep(0.2)


async def _page_layers(socket_url: str, timeout: float = 60) -> list:
    """[[layer name, "loaded" | "error: ..."]] from the page's neuroglancer viewer, once every source has settled."""
    from tornado.websocket import websocket_connect

    deadline = time.monotonic() + timeout
    ws = await websocket_connect(socket_url)
    script = ("typeof viewer === 'undefined' ? null : JSON.stringify(viewer.layerManager.managedLayers.map(l => [l.name, "
              "l.layer ? l.layer.dataSources.map(d => d.loadState === undefined ? 'loading' : "
              "(d.loadState.error ? 'error: ' + d.loadState.error : 'loaded')).join() : 'loading']))")
    while True:
        await ws.write_message(json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {"expression": script, "returnByValue": True}}))
        while (reply := json.loads(await ws.read_message())).get("id") != 1:
            pass
        value = reply["result"]["result"].get("value")
        layers = json.loads(value) if value else []
        if layers and all(state != "loading" for _, state in layers):
            ws.close()
            return layers
        assert time.monotonic() < deadline, f"layers never finished loading: {layers}"
        await asyncio.sleep(0.2)
