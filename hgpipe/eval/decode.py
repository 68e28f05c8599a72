"""Heatmaps -> joint coordinates, and the coordinate maps from heatmap to image pixels.

Frames are those of :mod:`hgpipe.data.schema`: heatmap and crop pixels are 0-based with
pixel centres at integers, ``crop = stride * heatmap + (stride - 1) / 2``, and each
sample's ``crop_to_image`` 2x3 affine gives 1-based image pixels.  Because both frames put
pixel centres at integers, mirroring a crop of width ``S`` (``x -> S - 1 - x``) is exactly
mirroring its heatmap of width ``W`` (``x -> W - 1 - x``): :func:`flip_back` needs no
one-pixel shift (the shift some code bases add comes from a frame without the
``(stride - 1) / 2`` centring).
"""
import numpy as np

# the frame conversions live with the rest of the crop geometry; re-exported here for
# callers that decode
from hgpipe.data.transforms import crop_to_heatmap, heatmap_to_crop, invert_affine  # noqa: F401
from hgpipe.joints import FLIP_PERMUTATION, NUM_JOINTS

QUARTER_STEP = 0.25


def decode_heatmaps(heatmaps):
    """(N, H, W, J) heatmaps -> coords (N, J, 2) float64 (x, y heatmap pixels), conf (N, J).

    The argmax, moved a quarter pixel along each axis toward the higher of its two
    neighbours (Newell's and bearpaw's rule).  As there, the step is only taken when the
    argmax is strictly inside the map on both axes.  Works on uint8 heatmaps too: values
    are compared as floats, never subtracted in uint8.
    """
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim != 4:
        raise ValueError("heatmaps must be (N, H, W, J), got shape %s" % (heatmaps.shape,))
    n, h, w, j = heatmaps.shape
    flat = np.moveaxis(heatmaps, 3, 1).reshape(n, j, h * w)  # (N, J, H*W)
    best = np.argmax(flat, axis=-1)
    ys, xs = np.divmod(best, w)
    confidence = np.take_along_axis(flat, best[..., None], axis=-1)[..., 0].astype(np.float64)

    inside = (xs > 0) & (xs < w - 1) & (ys > 0) & (ys < h - 1)
    # Neighbour indices clipped so the gather is always valid; `inside` masks the result.
    def value(dy, dx):
        yy = np.clip(ys + dy, 0, h - 1)
        xx = np.clip(xs + dx, 0, w - 1)
        idx = (yy * w + xx)[..., None]
        return np.take_along_axis(flat, idx, axis=-1)[..., 0].astype(np.float64)

    step_x = np.sign(value(0, 1) - value(0, -1)) * QUARTER_STEP
    step_y = np.sign(value(1, 0) - value(-1, 0)) * QUARTER_STEP
    coords = np.stack([xs, ys], axis=-1).astype(np.float64)
    coords[..., 0] += np.where(inside, step_x, 0.0)
    coords[..., 1] += np.where(inside, step_y, 0.0)
    return coords, confidence


def flip_back(heatmaps):
    """Heatmaps of a horizontally mirrored input -> heatmaps in the original's frame.

    Mirrors the width axis and swaps left/right joint channels, so that averaging with
    the unflipped output (flip test) adds like to like.  Input (N, H, W, J) or (H, W, J).
    """
    heatmaps = np.asarray(heatmaps)
    if heatmaps.shape[-1] != NUM_JOINTS:
        raise ValueError("flip_back needs %d joint channels last, got shape %s"
                         % (NUM_JOINTS, heatmaps.shape))
    return heatmaps[..., ::-1, :][..., list(FLIP_PERMUTATION)]


def crop_to_image_coords(coords, affine):
    """(N, J, 2) crop pixels -> image pixels with each sample's (N, 2, 3) ``crop_to_image``."""
    coords = np.asarray(coords, dtype=np.float64)
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape[-2:] != (2, 3) or affine.shape[:-2] != coords.shape[:-2]:
        raise ValueError("affine must be (N, 2, 3) for coords %s, got %s"
                         % (coords.shape, affine.shape))
    return np.einsum("nij,nkj->nki", affine[..., :2], coords) + affine[:, None, :, 2]


def heatmaps_to_image_coords(heatmaps, affine, input_size):
    """Convenience: decode (N, H, W, J) heatmaps straight to image pixels and confidences."""
    heatmaps = np.asarray(heatmaps)
    coords, confidence = decode_heatmaps(heatmaps)
    crop = heatmap_to_crop(coords, input_size, heatmaps.shape[2])
    return crop_to_image_coords(crop, affine), confidence
