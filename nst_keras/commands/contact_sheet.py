"""The contact sheet of a batch: contents down the side, styles along the top, each result in
its cell, failed cells marked. The first thing a person wants to see of a batch.

Drawn with Pillow alone (no matplotlib state), at a fixed cell height so that a sheet of
many jobs stays a reasonable size; `sheet_geometry` gives its layout, so its size is known
before it is drawn (and tested).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

#: Pixels: the height of a cell's image, the gap between cells, the label band's height.
CELL_HEIGHT, GAP, LABEL = 128, 6, 16

#: Cell colours by status: background, text.
MARKS = {"failed": ((250, 215, 215), (160, 0, 0)), "missing": ((235, 235, 235), (110, 110, 110))}


def sheet_geometry(rows: int, cols: int, aspect: float) -> Dict[str, Tuple[int, int]]:
    """Where the sheet's parts go.

    Args:
        rows: Contents (one row each).
        cols: Styles, or style combinations (one column each).
        aspect: Width over height of a cell (the widest content's).

    Returns:
        `cell` (width, height) of a result's image; `origin` (x, y) of the first result
        cell (the inputs' margin is left and above it); `pitch` (x, y) from one cell to the
        next; `size` (width, height) of the whole sheet.
    """
    cell = (max(1, round(CELL_HEIGHT * aspect)), CELL_HEIGHT)
    pitch = (cell[0] + GAP, cell[1] + LABEL + GAP)
    origin = (GAP + pitch[0], GAP + pitch[1] + LABEL)
    size = (origin[0] + cols * pitch[0], origin[1] + rows * pitch[1] - LABEL)
    return {"cell": cell, "origin": origin, "pitch": pitch, "size": size}


def draw_sheet(contents: Sequence[Tuple[str, np.ndarray]], styles: Sequence[Tuple[str, np.ndarray]],
               cells: Dict[Tuple[int, int], Tuple[str, Optional[np.ndarray], str]]):
    """Draws the sheet.

    Args:
        contents: (label, RGB image) of each row's content.
        styles: (label, RGB image) of each column's style (several styles: the first's image,
            the label naming all).
        cells: (row, col) -> (status, RGB image or None, label): `"done"` shows the image,
            `"failed"` and anything else a marked cell with the status written in it; the
            label goes above the cell (e.g. the loss).

    Returns:
        A PIL image (RGB).
    """
    from PIL import Image, ImageDraw

    aspect = max([img.shape[1] / img.shape[0] for _, img in contents] or [4 / 3])
    geo = sheet_geometry(len(contents), len(styles), aspect)
    sheet = Image.new("RGB", geo["size"], "white")
    draw = ImageDraw.Draw(sheet)
    (cw, ch), (ox, oy), (px, py) = geo["cell"], geo["origin"], geo["pitch"]

    def paste(image, x, y, label, status=None):
        draw.text((x + 2, y - LABEL + 2), label[: max(4, cw // 7)], fill=(40, 40, 40))
        if image is not None and status in (None, "done"):
            thumb = Image.fromarray(np.asarray(image, np.uint8))
            thumb.thumbnail((cw, ch), Image.LANCZOS)
            sheet.paste(thumb, (x + (cw - thumb.width) // 2, y + (ch - thumb.height) // 2))
            return
        fill, ink = MARKS.get(status, MARKS["missing"])
        draw.rectangle([x, y, x + cw - 1, y + ch - 1], fill=fill, outline=ink)
        draw.text((x + 6, y + ch // 2 - 6), status or "missing", fill=ink)

    for col, (label, image) in enumerate(styles):  # The styles along the top.
        paste(image, ox + col * px, GAP + LABEL, label)
    for row, (label, image) in enumerate(contents):  # The contents down the side.
        paste(image, GAP, oy + row * py, label)
        for col in range(len(styles)):
            status, result, text = cells.get((row, col), ("missing", None, ""))
            paste(result, ox + col * px, oy + row * py, text, status)
    return sheet
