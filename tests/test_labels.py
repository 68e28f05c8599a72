"""Labels on montage tiles are legible: inside the tile, one line each, no overprint."""
import numpy as np

from hgpipe import draw

LONG = "demo_100287 p1\nflip r+14 s1.46"


def _bright_rows_and_cols(image, background):
    changed = np.any(image != background, axis=-1)
    bright = np.all(image > 200, axis=-1)
    return changed, np.nonzero(bright.any(axis=1))[0], np.nonzero(bright.any(axis=0))[0]


def test_label_lines_fit_the_tile_on_their_own_bands():
    tile = np.full((192, 192, 3), 120, np.uint8)
    labelled = draw.put_label(tile, LONG)
    changed, rows, cols = _bright_rows_and_cols(labelled, 120)
    assert cols.max() < 192 - 2, "text runs off the tile"
    # two text lines: two separate groups of rows with white strokes
    groups = np.split(rows, np.nonzero(np.diff(rows) > 1)[0] + 1)
    assert len(groups) == 2, groups
    # nothing drawn outside the bands at the top-left; the rest of the tile untouched
    band_rows = np.nonzero(changed.any(axis=1))[0]
    assert band_rows.min() == 0 and band_rows.max() < 40
    assert not changed[band_rows.max() + 1:].any()
    # every drawn pixel is the darkened band (120 * 0.25) or lighter text on it: no
    # second, offset copy of the text in black (what a thick black outline under a thin
    # stroke becomes, since OpenCV advances glyphs by the stroke thickness)
    assert labelled[changed].min() >= 30

def test_a_label_too_long_for_a_small_tile_is_shrunk_not_cut():
    tile = np.full((64, 64, 3), 120, np.uint8)
    labelled = draw.put_label(tile, "015601864 p12")
    _, rows, cols = _bright_rows_and_cols(labelled, 120)
    assert len(cols) and cols.max() < 64 - 1
