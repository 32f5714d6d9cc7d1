"""Side-by-side panels: input | ground truth | prediction, and PNG writing.

Each panel is RGB uint8 (Y, X, 3) of one slice; panels are joined left to right with a white gap,
under an optional title band drawn with Pillow's built-in font.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from emseg_plugins.utils.atomic import atomic_write_bytes
from emseg_plugins.visualize.composite import Colour, composite, gray_rgb

GAP = 4  # pixels between panels
TITLE_HEIGHT = 14  # pixels of the title band (0 = no titles)


def side_by_side(panels: Sequence[np.ndarray], titles: Sequence[str] | None = None, gap: int = GAP) -> np.ndarray:
    """Panels (Y, X_i, 3) of one height -> one RGB uint8 image; with ``titles`` a band above each panel."""
    height = max(p.shape[0] for p in panels)
    band = TITLE_HEIGHT if titles else 0
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    canvas = np.full((band + height, width, 3), 255, np.uint8)
    x = 0
    for panel in panels:
        canvas[band : band + panel.shape[0], x : x + panel.shape[1]] = panel
        x += panel.shape[1] + gap
    if titles:
        picture = Image.fromarray(canvas)
        draw, font = ImageDraw.Draw(picture), ImageFont.load_default()
        x = 0
        for panel, title in zip(panels, titles):
            draw.text((x + 2, 1), title, fill=(0, 0, 0), font=font)
            x += panel.shape[1] + gap
        canvas = np.asarray(picture)
    return canvas


def slice_panels(
    image: np.ndarray, labels: np.ndarray | None, colours: Sequence[Colour], prediction: np.ndarray | None = None,
    titles: bool = True,
) -> np.ndarray:
    """input | ground truth | prediction for one slice: image (Y, X), labels and prediction (K, Y, X).

    The ground truth and the prediction are both filled tints (same colours), so they compare at a glance;
    panels whose array is None are left out.
    """
    panels, names = [gray_rgb(image)], ["input"]
    if labels is not None:
        panels.append(composite(image, labels, colours))
        names.append("ground truth")
    if prediction is not None:
        panels.append(composite(image, prediction, colours))
        names.append("prediction")
    return side_by_side(panels, names if titles else None)


def grid(images: Sequence[np.ndarray], columns: int = 4, gap: int = 3 * GAP) -> np.ndarray:
    """Images (Y, X, 3) on a white contact sheet, ``columns`` per row, each cell the largest size."""
    cell_y, cell_x = max(i.shape[0] for i in images), max(i.shape[1] for i in images)
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    sheet = np.full((rows * cell_y + (rows - 1) * gap, columns * cell_x + (columns - 1) * gap, 3), 255, np.uint8)
    for n, picture in enumerate(images):
        y, x = (n // columns) * (cell_y + gap), (n % columns) * (cell_x + gap)
        sheet[y : y + picture.shape[0], x : x + picture.shape[1]] = picture
    return sheet


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write RGB uint8 (Y, X, 3) as PNG atomically; returns the path."""
    atomic_write_bytes(path, png_bytes(rgb))
    return Path(path)
